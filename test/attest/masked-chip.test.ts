/**
 * Masked CHIP_ID against chip rules (issue #14, finding 2; PROTOCOL.md §3.4): the verified VCEK's
 * hwID is the claim `signer.hw_id`; a policy with a `chip_id` rule must have a `chip_id_masked`
 * rule or it is refused at store time; a masked report (MASK_CHIP_ID: CHIP_ID all zero) is judged
 * by `chip_id_masked` and the VCEK's hwID, never by its zero CHIP_ID. Real daemon composition
 * (embedded store, mock broker, SNP verifier), fake AMD chains, the VCEK sent in tee-certificates
 * (a masked report names no chip for KDS).
 */
import assert from 'node:assert/strict';
import { agentKeys, createLab, decryptReply, getNonce, getSecret, policyDoc, reportData, SECRET, storePolicy, type Lab } from '../support/lab';
import type { Product } from '../support/fake-amd';

describe('attest: a masked CHIP_ID never passes a chip rule it would fail unmasked', function () {
  this.timeout(120_000);
  let lab: Lab;
  before(async () => {
    lab = await createLab({ products: ['Genoa', 'Turin'] });
  });
  after(async () => lab?.close());

  const hwHex = (p: Product): string => lab.kits[p].hwIdFor().toString('hex');
  const chipHex = (p: Product): string => lab.kits[p].chipId.toString('hex');

  async function attempt(product: Product, policyId: string, o: { masked: boolean; vlek?: boolean; noCerts?: boolean }): Promise<{ status: number; body: Record<string, unknown>; keys: ReturnType<typeof agentKeys> }> {
    const kit = lab.kits[product];
    const keys = agentKeys();
    const nonce = await getNonce(lab);
    const report = kit.signReport({
      reportData: reportData(nonce, keys.wire, true),
      ...(o.masked ? { chipId: Buffer.alloc(64), maskChipKey: true } : {}),
      ...(o.vlek ? { signingKey: 'VLEK' as const } : {}),
    });
    const leaf = o.vlek ? kit.vlekPem() : kit.vcekPem();
    const certificates = Buffer.from(`${leaf}${o.vlek ? kit.asvkPem : kit.askPem}`);
    const r = await getSecret(lab, { nonce, report, keys, policyId, ...(o.noCerts ? {} : { certificates }) });
    return { ...r, keys };
  }

  it('refuses at store time a policy with a chip_id rule and no chip_id_masked rule', async () => {
    const r = await storePolicy(lab, policyDoc('chip-deny-only', { chip_id: { deny_list: [chipHex('Genoa')] } }));
    assert.equal(r.status, 400);
    assert.match(JSON.stringify(await r.json()), /Invalid policy/);
    const ok = await storePolicy(lab, policyDoc('chip-deny', { chip_id: { deny_list: [chipHex('Genoa')] }, chip_id_masked: { allow_list: [true, false] } }));
    assert.equal(ok.status, 201, JSON.stringify(await ok.json()));
  });

  it('a listed chip is denied masked as well as unmasked (its VCEK hwID is the chip); other chips pass either way', async () => {
    const unmasked = await attempt('Genoa', 'chip-deny', { masked: false });
    assert.equal(unmasked.status, 400, JSON.stringify(unmasked.body));
    const masked = await attempt('Genoa', 'chip-deny', { masked: true });
    assert.equal(masked.status, 400, `a masked report of a denied chip must be refused: ${JSON.stringify(masked.body)}`);
    const rec = lab.daemon.audit.records.at(-1)!;
    assert.equal(rec.reason, 'POLICY_RULES_FAILED');
    assert.match(JSON.stringify(rec.details), /chip_id deny_list/);
    for (const m of [false, true]) {
      const other = await attempt('Turin', 'chip-deny', { masked: m });
      assert.equal(other.status, 200, `Turin masked=${m}: ${JSON.stringify(other.body)}`);
      assert.equal(decryptReply(other.body, other.keys), SECRET);
    }
  });

  it('signer.hw_id is the verified VCEK hwID (64 bytes; Turin 8), masked or not', async () => {
    assert.equal((await storePolicy(lab, policyDoc('hw-allow', { signer: { hw_id: { allow_list: [hwHex('Turin')] } } }))).status, 201);
    for (const m of [false, true]) {
      assert.equal((await attempt('Turin', 'hw-allow', { masked: m })).status, 200, `Turin masked=${m}`);
      assert.equal((await attempt('Genoa', 'hw-allow', { masked: m })).status, 400, `Genoa masked=${m}`);
    }
    assert.equal(hwHex('Turin').length, 16);
  });

  it('chip_id_masked: false refuses masked reports; a masked VLEK report (no chip identity) fails every chip_id rule', async () => {
    assert.equal((await storePolicy(lab, policyDoc('no-mask', { chip_id: { deny_list: [chipHex('Genoa')] }, chip_id_masked: false }))).status, 201);
    assert.equal((await attempt('Turin', 'no-mask', { masked: false })).status, 200);
    assert.equal((await attempt('Turin', 'no-mask', { masked: true })).status, 400);
    const vlek = await attempt('Turin', 'chip-deny', { masked: true, vlek: true });
    assert.equal(vlek.status, 400, JSON.stringify(vlek.body));
    assert.match(JSON.stringify(lab.daemon.audit.records.at(-1)!.details), /chip_id deny_list.*claim absent/);
  });

  it('a masked CHIP_ID without tee-certificates is a definitive 400 with its own reason (no VCEK can be looked up), never 503', async () => {
    assert.equal((await storePolicy(lab, policyDoc('any'))).status, 201);
    for (const p of ['Genoa', 'Turin'] as Product[]) {
      const r = await attempt(p, 'any', { masked: true, noCerts: true });
      assert.equal(r.status, 400, `${p}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error, 'TEE verification failed');
      const rec = lab.daemon.audit.records.at(-1)!;
      assert.equal(rec.reason, 'CHIP_ID_MASKED_NO_VCEK');
      assert.equal(rec.outcome, 'deny');
    }
    // The same reports with their VCEK pass.
    assert.equal((await attempt('Genoa', 'any', { masked: true })).status, 200);
  });
});
