/**
 * The DER reader/writer, CSR sanitising and certificate profile of certify, checked against
 * OpenSSL (asn1parse, req, x509) as the independent implementation, plus hostile encodings.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { csrSignature, evidenceDigests, isDnsSafe, isEmailSafe, keyIdentifier, makeIssuing, makeRoot, newCaKey, sanitizeCsr, viewCertificate, OID } from '../../src/cert';
import * as der from '../../src/cert/der';
import { makeCsr, newKey, workDir } from '../support/certify';

const OPTS = { allowedKeyTypes: ['RSA', 'EC'], maxBytes: 10000 };

function asn1parse(buf: Buffer): string {
  const f = join(workDir(), `a${Math.random().toString(16).slice(2)}.der`);
  writeFileSync(f, buf);
  return execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-in', f], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { reason?: string }).reason ?? (e as Error).name;
  }
  return 'no error';
}

describe('cert/der: writer and strict reader', () => {
  it('encodes OIDs, integers, strings, times and named bits as openssl reads them', () => {
    const v = der.seq(
      der.oid('1.3.6.1.4.1.65993.5'), der.oid('2.5.29.17'), der.oid('2.999.3'),
      der.int(0), der.int(127), der.int(128), der.int(256), der.int(2n ** 130n), der.int(Buffer.from([0, 0, 0x80])),
      der.utf8('grüße'), der.ia5('a@b'), der.bool(true), der.nul(),
      der.time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59))), der.time(new Date(Date.UTC(2050, 0, 1))),
      der.namedBits([0]), der.namedBits([5, 6]),
    );
    const t = asn1parse(v);
    for (const want of [':1.3.6.1.4.1.65993.5', ':X509v3 Subject Alternative Name', ':2.999.3', 'INTEGER           :00', 'INTEGER           :7F', 'INTEGER           :80',
      'INTEGER           :0100', 'INTEGER           :0400000000000000000000000000000000', 'INTEGER           :80', 'UTF8STRING        :grüße', 'IA5STRING         :a@b',
      'BOOLEAN           :255', 'NULL', 'UTCTIME           :491231235959Z', 'GENERALIZEDTIME   :20500101000000Z']) assert.ok(t.includes(want), `${want} in\n${t}`);
    assert.deepEqual(der.namedBits([0]), Buffer.from([0x03, 0x02, 0x07, 0x80]));
    assert.deepEqual(der.namedBits([5, 6]), Buffer.from([0x03, 0x02, 0x01, 0x06]));
    // Round trip through the reader.
    const parts = der.children(der.parse(v));
    assert.equal(der.readOid(parts[0]), '1.3.6.1.4.1.65993.5');
    assert.equal(der.readOid(parts[2]), '2.999.3');
    assert.equal(der.readInt(parts[7]), 2n ** 130n);
    assert.equal(der.readInt(parts[8]), 128n);
    assert.equal(der.readString(parts[9]), 'grüße');
    assert.equal(der.readTime(parts[13]).toISOString(), '2049-12-31T23:59:59.000Z');
    assert.equal(der.readTime(parts[14]).toISOString(), '2050-01-01T00:00:00.000Z');
  });

  it('uses long-form lengths exactly when needed (127, 128, 65536 bytes)', () => {
    for (const n of [127, 128, 255, 256, 65536]) {
      const v = der.octets(Buffer.alloc(n, 1));
      const node = der.parse(v);
      assert.equal(node.content.length, n);
      assert.match(asn1parse(v), new RegExp(`l=\\s*${n} prim: OCTET STRING`));
    }
  });

  it('refuses what DER forbids: indefinite and non-minimal lengths, trailing bytes, truncation, high tags, deep nesting, bad booleans', () => {
    const bad: Array<[string, Buffer]> = [
      ['indefinite', Buffer.from([0x30, 0x80, 0x00, 0x00])],
      ['non-minimal long', Buffer.from([0x04, 0x81, 0x05, 1, 2, 3, 4, 5])],
      ['leading zero length', Buffer.from([0x04, 0x82, 0x00, 0x81, ...Buffer.alloc(0x81)])],
      ['trailing', Buffer.from([0x05, 0x00, 0x00])],
      ['truncated', Buffer.from([0x04, 0x05, 1, 2])],
      ['huge length', Buffer.from([0x04, 0x85, 1, 0, 0, 0, 0])],
      ['high tag', Buffer.from([0x1f, 0x81, 0x00, 0x00])],
      ['empty', Buffer.alloc(0)],
    ];
    for (const [what, b] of bad) assert.throws(() => der.parse(b), der.DerError, what);
    assert.throws(() => der.readBool(der.parse(Buffer.from([0x01, 0x01, 0x01]))), der.DerError);
    assert.throws(() => der.readInt(der.parse(Buffer.from([0x02, 0x02, 0x00, 0x01]))), der.DerError);
    assert.throws(() => der.readOid(der.parse(Buffer.from([0x06, 0x02, 0x80, 0x01]))), der.DerError);
    let deep = der.nul();
    for (let i = 0; i < 40; i++) deep = der.seq(deep);
    const walk = (n: der.DerNode, d: number): void => {
      for (const c of n.constructed ? der.children(n, d) : []) walk(c, d + 1);
    };
    assert.throws(() => walk(der.parse(deep), 0), /nested too deeply/);
  });

  it('pem/unpem round-trip in 64-column lines', () => {
    const b = Buffer.alloc(100, 7);
    const p = der.pem('CERTIFICATE', b);
    assert.ok(p.split('\n').every((l) => l.length <= 64));
    assert.deepEqual(der.unpem(p + p, 'CERTIFICATE'), [b, b]);
  });
});

describe('cert/csr: parse, proof of possession, key policy, subject and SANs', () => {
  it('accepts openssl CSRs (EC P-256/P-384, RSA-3072 PKCS#1 v1.5 and PSS) and returns the agent binding key', () => {
    const rsaKey = newKey('rsa-3072');
    for (const [c, type, bits] of [
      [makeCsr(newKey('ec-p256')), 'EC', 256], [makeCsr(newKey('ec-p384'), { digest: 'sha384' }), 'EC', 384], [makeCsr(rsaKey), 'RSA', 3072],
    ] as const) {
      const s = sanitizeCsr(Buffer.from(c.pem), OPTS);
      assert.equal(s.keyType, type);
      assert.equal(s.keyBits, bits);
      assert.deepEqual(s.bindingKey, c.bindingKey);
      assert.deepEqual(sanitizeCsr(c.der, OPTS).spki, s.spki);
    }
    // RSA-PSS signed CSR (openssl req -sigopt rsa_padding_mode:pss).
    const f = join(workDir(), 'pss.csr');
    execFileSync('openssl', ['req', '-new', '-key', rsaKey, '-subj', '/CN=pss', '-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32', '-out', f], { stdio: 'pipe' });
    const s = sanitizeCsr(readFileSync(f), OPTS);
    assert.equal(s.signatureAlgorithm, 'rsassa-pss-sha256');
  });

  it('refuses SHA-1 signatures, weak or unknown keys, key types not allowed, oversize input, and a signature by another key', () => {
    const k = newKey('ec-p256');
    assert.equal(reason(() => sanitizeCsr(Buffer.from(makeCsr(k, { digest: 'sha1' }).pem), OPTS)), 'CSR_MALFORMED');
    assert.equal(reason(() => sanitizeCsr(Buffer.from(makeCsr(newKey('rsa-2048')).pem), OPTS)), 'CSR_KEY_WEAK');
    assert.equal(reason(() => sanitizeCsr(Buffer.from(makeCsr(newKey('ec-p521')).pem), OPTS)), 'CSR_KEY_WEAK');
    assert.equal(reason(() => sanitizeCsr(Buffer.from(makeCsr(newKey('ed25519')).pem), OPTS)), 'CSR_KEY_TYPE_NOT_ALLOWED');
    assert.equal(reason(() => sanitizeCsr(Buffer.from(makeCsr(k).pem), { allowedKeyTypes: ['RSA'], maxBytes: 10000 })), 'CSR_KEY_TYPE_NOT_ALLOWED');
    const c = makeCsr(k);
    assert.equal(reason(() => sanitizeCsr(c.der, { ...OPTS, maxBytes: c.der.length - 1 })), 'CSR_TOO_LARGE');
    assert.equal(reason(() => sanitizeCsr(Buffer.concat([c.der, Buffer.from([0])]), OPTS)), 'CSR_MALFORMED');
    assert.equal(reason(() => sanitizeCsr(Buffer.from(c.pem + c.pem), OPTS)), 'CSR_MALFORMED');
    // Swap in another key's SPKI: the signature no longer matches (proof of possession).
    const other = createPublicKey(readFileSync(newKey('ec-p256'))).export({ type: 'spki', format: 'der' });
    const mine = createPublicKey(readFileSync(k)).export({ type: 'spki', format: 'der' });
    const swapped = Buffer.from(c.der.toString('hex').replace(mine.toString('hex'), other.toString('hex')), 'hex');
    assert.equal(reason(() => sanitizeCsr(swapped, OPTS)), 'CSR_SIGNATURE_INVALID');
  });

  it('keeps DNS-safe names, valid IPs and emails, drops URIs and invalid entries, caps each kind, refuses unsafe or repeated CNs', () => {
    const k = newKey('ec-p256');
    const s = sanitizeCsr(Buffer.from(makeCsr(k, { sans: 'DNS:a.example,DNS:a.example,DNS:*.wild.example,DNS:-bad.example,IP:192.0.2.1,IP:::1,email:x@y.example,email:bad@@x,URI:https://x,URI:spiffe://a/b' }).pem), OPTS);
    assert.deepEqual(s.dns, ['a.example']);
    assert.deepEqual(s.ipText, ['192.0.2.1', '::1']);
    assert.deepEqual(s.emails, ['x@y.example']);
    assert.deepEqual(s.dropped, { uri: 2, dns: 2, ip: 0, email: 1, other: 0 });
    const many = Array.from({ length: 17 }, (_, i) => `DNS:h${i}.example`).join(',');
    assert.equal(reason(() => sanitizeCsr(Buffer.from(makeCsr(k, { sans: many }).pem), OPTS)), 'CSR_SAN_TOO_MANY');
    assert.equal(reason(() => sanitizeCsr(Buffer.from(makeCsr(k, { subj: '/CN=a/CN=b' }).pem), OPTS)), 'CSR_SUBJECT_INVALID');
    assert.equal(reason(() => sanitizeCsr(Buffer.from(makeCsr(k, { subj: `/CN=${'a'.repeat(64)}` }).pem), OPTS)), 'CSR_SUBJECT_INVALID');
    assert.equal(reason(() => sanitizeCsr(Buffer.from(makeCsr(k, { subj: '/CN=a;rm -rf' }).pem), OPTS)), 'CSR_SUBJECT_INVALID');
    assert.equal(sanitizeCsr(Buffer.from(makeCsr(k, { subj: '/O=x' }).pem), OPTS).commonName, undefined);
    for (const [v, ok] of [['a.b', true], ['1.2.3.4', false], ['a..b', false], ['a-.b', false], [`${'a'.repeat(64)}.b`, false], ['a_b', false]] as const) assert.equal(isDnsSafe(v), ok, v);
    for (const [v, ok] of [['a+b@c.d', true], ['.a@c.d', false], ['a@b@c', false], ['a@1.2.3.4', false]] as const) assert.equal(isEmailSafe(v), ok, v);
  });

  it('mutated CSRs (byte flips, truncations, insertions) only ever give a CSR or a 400 CERT_CSR_INVALID, never another error', () => {
    const c = makeCsr(newKey('ec-p256'), { sans: 'DNS:a.example,IP:10.1.2.3,email:a@b.example,URI:x:y' });
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.from(c.der);
      const kind = rnd(3);
      let input: Buffer;
      if (kind === 0) {
        for (let k = 0; k <= rnd(3); k++) b[rnd(b.length)] = rnd(256);
        input = b;
      } else if (kind === 1) input = b.subarray(0, rnd(b.length));
      else {
        const at = rnd(b.length);
        input = Buffer.concat([b.subarray(0, at), Buffer.from([rnd(256)]), b.subarray(at)]);
      }
      try {
        sanitizeCsr(input, OPTS);
      } catch (e) {
        assert.equal((e as { code?: string }).code, 'CERT_CSR_INVALID', `mutation ${i}: ${(e as Error).stack}`);
        refused++;
      }
    }
    assert.ok(refused > 2500, `most mutations are refused (${refused})`);
  });

  it('csrSignature refuses PSS with SHA-1 defaults', () => {
    const node = der.parse(der.seq(der.oid(OID.rsassaPss), der.seq()));
    assert.throws(() => csrSignature(node), /SHA-1 defaults|hash and MGF1/);
  });
});

describe('cert/profile: CA certificates and evidence digests', () => {
  it('root and issuing CA certificates verify with openssl and carry CA:true, keyCertSign/cRLSign, pathlen 0, SKI = openssl hash', () => {
    for (const kt of ['EC', 'RSA'] as const) {
      const root = newCaKey(kt);
      const rootDer = makeRoot(root.privateKey, 'r', 10);
      const ca = newCaKey(kt);
      const v = viewCertificate(rootDer);
      const caDer = makeIssuing({ key: root.privateKey, cert: rootDer, subject: v.subject, spki: v.spki }, ca.publicKey.export({ type: 'spki', format: 'der' }), 'i', 5);
      const d = workDir();
      writeFileSync(join(d, `root-${kt}.pem`), der.pem('CERTIFICATE', rootDer));
      writeFileSync(join(d, `ca-${kt}.pem`), der.pem('CERTIFICATE', caDer));
      const out = execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', join(d, `root-${kt}.pem`), join(d, `ca-${kt}.pem`)]).toString();
      assert.match(out, /OK/);
      const text = execFileSync('openssl', ['x509', '-in', join(d, `ca-${kt}.pem`), '-noout', '-text', '-ext', 'subjectKeyIdentifier']).toString();
      const ski = keyIdentifier(ca.publicKey.export({ type: 'spki', format: 'der' })).toString('hex').toUpperCase().match(/../g)!.join(':');
      assert.ok(text.includes(ski), `${ski} in ${text}`);
      const full = execFileSync('openssl', ['x509', '-in', join(d, `ca-${kt}.pem`), '-noout', '-text']).toString();
      assert.match(full, /CA:TRUE, pathlen:0/);
      assert.match(full, /Key Usage: critical\n\s+Certificate Sign, CRL Sign/);
      assert.ok(new X509Certificate(caDer).ca);
    }
  });

  it('evidence digests: CPU first, then slots in numeric order; caps on entries and bytes', () => {
    const e = (slot: number) => ({ platformId: 'gpu-nvidia', evidenceType: 'gpu-attestation-report', slot, raw: Buffer.from([slot]) });
    const text = evidenceDigests([e(10), e(2), { platformId: 'AMD-SEV-SNP', evidenceType: 'sev-snp-report', role: 'CPU', raw: Buffer.from('r') }], { maxEntries: 17, maxBytes: 4096 });
    const doc = JSON.parse(text) as { version: number; entries: Array<Record<string, unknown>> };
    assert.equal(doc.version, 1);
    assert.deepEqual(doc.entries.map((x) => x.role ?? x.slot), ['cpu', 2, 10]);
    assert.equal(doc.entries[0]!.platform_id, 'amd-sev-snp');
    assert.ok(text.startsWith('{"entries":[{"digest":'));
    assert.throws(() => evidenceDigests([e(1), e(2)], { maxEntries: 1, maxBytes: 4096 }), /MAX_ENTRIES/);
    assert.throws(() => evidenceDigests([e(1)], { maxEntries: 17, maxBytes: 100 }), /MAX_BYTES/);
  });
});
