/**
 * ConsumedMarkers holds the embedded store's consumed-by-owner markers (Store.consume,
 * Store.unconsume) packed into typed arrays: one per nonce consumed in the last lease or so whose
 * owner has not said it is done with it (forgetOwned) — with the pipeline's forgetConsumed, only
 * the consumes whose outcome their request never learned; without it, request rate × ~40 s of
 * them. As a Map of small objects each marker cost ~580 bytes (measured)
 * in six or more heap objects (the nonce key as a slice of its quoted JSON string, the owner, the
 * marker, two heap numbers, the map entry): at 800 attestations/s a third of the daemon's live
 * heap, all of it traced by every full GC (the owner alone, a UUID as crypto.randomUUID() builds
 * it, is a tree of ~20 string pieces until something flattens it: ~490 bytes). Here a marker slot
 * is 105 bytes outside the JavaScript heap — 32 nonce bytes, the owner's bytes (printable ASCII, up
 * to 48; a longer owner is kept as a string beside), two float64 times and an index link — plus
 * its prefix's index entry: ~128 bytes a marker with the ring's slack (measured).
 *
 * Markers are kept in insertion order in a ring (their keep times are nearly in that order, and
 * they are dropped oldest first, as the Map was). Lookups go through a hash of the nonce's first
 * 28 bits: an index from that prefix to the newest marker with it, and per marker a link to the
 * previous one with the same prefix; a link to a marker older than the ring's head is the end of
 * the chain. No operation scans the ring.
 *
 * Most markers are forgotten as soon as their owner has its answer (forgetOwned, from
 * Store.forgetConsumed): a deleted marker leaves from the head at the next purge. A marker that
 * stays (an owner that never learned its consume's outcome keeps it for the lease) would hold every
 * deleted one behind it in the ring; once fewer than a quarter of the held markers are live, purge
 * copies the live ones into a fresh ring (amortised O(1) per marker: it takes three deletions per
 * survivor to get there again).
 */

const NONCE_BYTES = 32;
/** Owner slot: one length byte (0: no marker, deleted) and up to OWNER_INLINE ASCII bytes. */
const OWNER_INLINE = 48;
const OWNER_SLOT = OWNER_INLINE + 1;
const INLINE_OWNER = /^[\x20-\x7e]{1,48}$/;
const MIN_CAPACITY = 1024;

export interface ConsumedMarker {
  readonly owner: string;
  /** The nonce's original expiry (monotonic ms), for unconsume. */
  readonly exp: number;
  /** When the marker may be forgotten (monotonic ms). */
  readonly keep: number;
}

export class ConsumedMarkers {
  /** Sequence numbers: markers head..tail-1 are in the ring; a marker's slot is seq & (cap - 1). */
  private head = 0;
  private tail = 0;
  private cap = MIN_CAPACITY;
  private nonceBytes = Buffer.alloc(MIN_CAPACITY * NONCE_BYTES);
  private times = new Float64Array(MIN_CAPACITY * 2); // exp, keep
  /** Previous marker with the same nonce prefix (a sequence number; < head: none). */
  private prev = new Float64Array(MIN_CAPACITY);
  /** Owner per slot (length 0: deleted before its time, by unconsume); longer owners aside by seq. */
  private ownerBytes = Buffer.alloc(MIN_CAPACITY * OWNER_SLOT);
  private readonly longOwners = new Map<number, string>();
  /** Nonce prefix -> sequence number of the newest marker with that prefix. */
  private readonly index = new Map<number, number>();
  private readonly probe = Buffer.alloc(NONCE_BYTES);
  /** Markers held and not deleted. */
  private liveCount = 0;
  /** Times the ring was compacted (tests). */
  compactions = 0;

  /** size is the number of markers held, deleted ones included until the head passes them. */
  get size(): number {
    return this.tail - this.head;
  }

  /** live is the number of markers held that are not deleted. */
  get live(): number {
    return this.liveCount;
  }

  /** bytes is the memory of the packed arrays (tests; the index and any long owners not counted). */
  get bytes(): number {
    return this.nonceBytes.length + this.ownerBytes.length + this.times.byteLength + this.prev.byteLength;
  }

  /** set adds the marker of a nonce (64 lowercase hex characters, checked by the caller). */
  set(nonce: string, m: ConsumedMarker): void {
    this.delete(nonce); // one marker per nonce, as in a Map
    if (this.tail - this.head === this.cap) this.resize(this.cap * 2);
    const seq = this.tail++;
    this.liveCount++;
    const slot = seq & (this.cap - 1);
    this.nonceBytes.write(nonce, slot * NONCE_BYTES, NONCE_BYTES, 'hex');
    this.times[slot * 2] = m.exp;
    this.times[slot * 2 + 1] = m.keep;
    const o = slot * OWNER_SLOT;
    if (INLINE_OWNER.test(m.owner)) {
      this.ownerBytes[o] = m.owner.length;
      this.ownerBytes.write(m.owner, o + 1, OWNER_INLINE, 'latin1');
    } else {
      this.ownerBytes[o] = OWNER_SLOT; // not a length: the owner is in longOwners
      this.longOwners.set(seq, m.owner);
    }
    const key = prefixAt(this.nonceBytes, slot * NONCE_BYTES);
    const older = this.index.get(key);
    this.prev[slot] = older ?? -1;
    this.index.set(key, seq);
  }

  /** get returns the live (not deleted) marker of a nonce, if one is held. */
  get(nonce: string): ConsumedMarker | undefined {
    const seq = this.find(nonce);
    if (seq < 0) return undefined;
    const slot = seq & (this.cap - 1);
    return { owner: this.ownerOf(seq), exp: this.times[slot * 2]!, keep: this.times[slot * 2 + 1]! };
  }

  /** delete forgets the marker of a nonce (it stays in the ring, as deleted, until its turn). */
  delete(nonce: string): boolean {
    const seq = this.find(nonce);
    if (seq < 0) return false;
    this.forget(seq);
    return true;
  }

  /** forgetOwned deletes the marker of a nonce if owner holds it (and only then). */
  forgetOwned(nonce: string, owner: string): boolean {
    const seq = this.find(nonce);
    if (seq < 0 || this.ownerOf(seq) !== owner) return false;
    this.forget(seq);
    return true;
  }

  /**
   * purge drops markers past their keep time, oldest first, stopping at the first live one (a
   * marker kept longer only delays the ones behind it; each is gone a lease after its keep time).
   */
  purge(now: number): void {
    while (this.head < this.tail) {
      const seq = this.head;
      const slot = seq & (this.cap - 1);
      if (this.ownerBytes[slot * OWNER_SLOT] !== 0 && this.times[slot * 2 + 1]! > now) break;
      const key = prefixAt(this.nonceBytes, slot * NONCE_BYTES);
      // Newest with its prefix: nothing older is left either, so the prefix leaves the index.
      if (this.index.get(key) === seq) this.index.delete(key);
      this.forget(seq);
      this.head++;
    }
    // Deleted markers held behind a live one: keep only the live ones.
    if (this.tail - this.head >= MIN_CAPACITY && this.liveCount * 4 < this.tail - this.head) this.compact();
    // A storm's worth of capacity is given back once it has passed.
    if (this.cap > MIN_CAPACITY && this.tail - this.head < this.cap / 4) this.resize(this.cap / 2);
  }

  clear(): void {
    this.index.clear();
    this.longOwners.clear();
    this.head = this.tail = 0;
    this.liveCount = 0;
    this.resize(MIN_CAPACITY);
  }

  /** compact re-adds the live markers, oldest first, to an emptied ring. */
  private compact(): void {
    this.compactions++;
    const keep: Array<[string, ConsumedMarker]> = [];
    for (let seq = this.head; seq < this.tail; seq++) {
      const slot = seq & (this.cap - 1);
      if (this.ownerBytes[slot * OWNER_SLOT] === 0) continue;
      const nonce = this.nonceBytes.toString('hex', slot * NONCE_BYTES, (slot + 1) * NONCE_BYTES);
      keep.push([nonce, { owner: this.ownerOf(seq), exp: this.times[slot * 2]!, keep: this.times[slot * 2 + 1]! }]);
    }
    this.clear();
    if (keep.length > MIN_CAPACITY) this.resize(ceilPow2(keep.length));
    for (const [nonce, m] of keep) this.set(nonce, m);
  }

  /** find returns the sequence number of the live marker of nonce, or -1. */
  private find(nonce: string): number {
    this.probe.write(nonce, 0, NONCE_BYTES, 'hex');
    let seq: number | undefined = this.index.get(prefixAt(this.probe, 0));
    if (seq === undefined) return -1;
    while (seq >= this.head) {
      const slot: number = seq & (this.cap - 1);
      const off = slot * NONCE_BYTES;
      if (this.ownerBytes[slot * OWNER_SLOT] !== 0 && this.nonceBytes.compare(this.probe, 0, NONCE_BYTES, off, off + NONCE_BYTES) === 0) return seq;
      seq = this.prev[slot]!;
    }
    return -1;
  }

  private resize(cap: number): void {
    const nonceBytes = Buffer.alloc(cap * NONCE_BYTES);
    const times = new Float64Array(cap * 2);
    const prev = new Float64Array(cap);
    const ownerBytes = Buffer.alloc(cap * OWNER_SLOT);
    for (let seq = this.head; seq < this.tail; seq++) {
      const from = seq & (this.cap - 1);
      const to = seq & (cap - 1);
      this.nonceBytes.copy(nonceBytes, to * NONCE_BYTES, from * NONCE_BYTES, (from + 1) * NONCE_BYTES);
      times[to * 2] = this.times[from * 2]!;
      times[to * 2 + 1] = this.times[from * 2 + 1]!;
      prev[to] = this.prev[from]!;
      this.ownerBytes.copy(ownerBytes, to * OWNER_SLOT, from * OWNER_SLOT, (from + 1) * OWNER_SLOT);
    }
    this.cap = cap;
    this.nonceBytes = nonceBytes;
    this.times = times;
    this.prev = prev;
    this.ownerBytes = ownerBytes;
  }

  private ownerOf(seq: number): string {
    const o = (seq & (this.cap - 1)) * OWNER_SLOT;
    const len = this.ownerBytes[o]!;
    return len === OWNER_SLOT ? this.longOwners.get(seq)! : this.ownerBytes.toString('latin1', o + 1, o + 1 + len);
  }

  private forget(seq: number): void {
    const o = (seq & (this.cap - 1)) * OWNER_SLOT;
    if (this.ownerBytes[o] === 0) return;
    if (this.ownerBytes[o] === OWNER_SLOT) this.longOwners.delete(seq);
    this.ownerBytes[o] = 0;
    this.liveCount--;
  }
}

function ceilPow2(n: number): number {
  let c = MIN_CAPACITY;
  while (c < n) c *= 2;
  return c;
}

/** prefixAt is the first 28 bits of the nonce bytes at `off`: a small integer map key. */
function prefixAt(b: Buffer, off: number): number {
  return ((b[off]! << 20) | (b[off + 1]! << 12) | (b[off + 2]! << 4) | (b[off + 3]! >> 4)) >>> 0;
}
