/**
 * The native GPU core on genuine NVIDIA evidence (test/fixtures/gpu-vectors): SPDM parse, ECDSA
 * P-384 over request ‖ response, the device chain to the pinned NVIDIA root at a pinned time and
 * the FWID, plus malformed-input handling. The parse of sdk-h100-top equals NVIDIA's own parse
 * field by field.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSpdm, verifyGpu } from '../../src/native/gpu';
import { clearChainCache } from '../../src/native';
import { NVIDIA_DEVICE_IDENTITY_ROOT } from '../../src/gpu/roots';
import { GPU_VECTORS } from '../support/gpu-evidence';
import { DEVICE_ROOT, GENUINE_AT, RIM_ROOT, genuineGpus } from '../support/gpu-vectors';

const gpus = genuineGpus();
const anchors = [Buffer.from(NVIDIA_DEVICE_IDENTITY_ROOT.pem)];

async function rejectsWith(p: Promise<unknown> | (() => unknown), code: string, re?: RegExp): Promise<void> {
  const run = typeof p === 'function' ? Promise.resolve().then(p) : p;
  await assert.rejects(run, (e: unknown) => {
    assert.equal((e as { code?: string }).code, code, String(e));
    if (re) assert.match((e as Error).message, re);
    return true;
  });
}

describe('gpu native: genuine NVIDIA evidence', () => {
  it(`covers ${gpus.length} genuine GPUs (Hopper and Blackwell)`, () => {
    assert.ok(gpus.length >= 21);
    assert.ok(gpus.some((g) => g.arch === 'BLACKWELL'));
  });

  for (const g of gpus) {
    const negative = g.name === 'sdk-h100-sample-badsig';
    it(`${g.name}: ${negative ? 'the SDK negative fails signature and FWID' : 'every device check passes'}; parse equals expected.json`, async () => {
      const r = await verifyGpu({ evidence: g.evidence, chain: g.chain, anchors, atSeconds: GENUINE_AT });
      const c = g.expected.claims;
      assert.equal(r.chainOk, true, JSON.stringify(r.checks));
      assert.equal(r.signatureOk, c['x-nvidia-gpu-attestation-report-signature-verified']);
      assert.equal(r.fwidOk, c['x-nvidia-gpu-attestation-report-cert-chain-fwid-match']);
      assert.equal(r.signatureOk && r.fwidOk, !negative);
      assert.equal(r.spdm.driverVersion, c['x-nvidia-gpu-driver-version']);
      assert.equal(r.spdm.vbiosVersion, c['x-nvidia-gpu-vbios-version']);
      assert.equal(r.hwmodel, c.hwmodel);
      assert.equal(r.ueid, c.ueid);
      assert.equal(r.spdm.request.nonce.toString('hex'), g.nonce, 'the SPDM request nonce is the entry nonce');
      assert.equal(r.certs.length, 5);
      assert.equal(r.fwidSource, g.arch === 'BLACKWELL' ? '2.23.133.5.4.1.1' : '2.23.133.5.4.1');
      assert.deepEqual(r.checks.map((x) => x.name), ['chain', 'signature', 'fwid']);
    });
  }

  it('sdk-h100-top: the parse equals NVIDIA\'s own (request, blocks, nonce, opaque fields, signature)', () => {
    const dir = join(GPU_VECTORS, 'sdk-h100-top');
    const ev = readFileSync(join(dir, 'evidence.bin'));
    const want = JSON.parse(readFileSync(join(dir, 'nvidia-sdk-spdm_parsed_output.json'), 'utf8'));
    const wantReq = JSON.parse(readFileSync(join(dir, 'nvidia-sdk-spdm_req_parsed_output.json'), 'utf8'));
    const s = parseSpdm(ev);
    const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;
    assert.equal(hex(s.request.param1), wantReq.Param1);
    assert.equal(hex(s.request.param2), wantReq.Param2);
    assert.equal(hex(s.request.slot), wantReq.SlotIDParam);
    assert.equal(`0x${s.request.nonce.toString('hex')}`, wantReq.Nonce);
    assert.equal(s.blocks.length, want.NumberOfBlocks);
    assert.equal(`0x${s.responderNonce.toString('hex')}`, want.Nonce);
    assert.equal(s.opaque.reduce((n, f) => n + 4 + f.value.length, 0), want.OpaqueLength);
    assert.equal(`0x${s.signature.toString('hex')}`, want.Signature);
    for (const b of s.blocks) {
      const w = want.MeasurementRecord.MeasurementBlocks[String(b.index)];
      assert.equal(b.valueType, w.DMTFSpecMeasurementValueType);
      assert.equal(`0x${b.value.toString('hex')}`, w.DMTFSpecMeasurementValue, `block ${b.index}`);
    }
    const fields = want.OpaqueData.OpaqueDataField;
    const byType = new Map(s.opaque.map((f) => [f.type, f.value]));
    assert.equal(`0x${byType.get(6)!.toString('hex')}`, fields.OPAQUE_FIELD_ID_VBIOS_VERSION);
    assert.equal(`0x${byType.get(3)!.toString('hex')}`, fields.OPAQUE_FIELD_ID_DRIVER_VERSION);
    assert.equal(`0x${s.fwid!.toString('hex')}`, fields.OPAQUE_FIELD_ID_FWID);
  });

  it('trustee-h100-coco: one zero byte after the signature is tolerated; a non-zero byte is refused', async () => {
    const g = gpus.find((x) => x.name === 'trustee-h100-coco')!;
    assert.equal(parseSpdm(g.evidence).padding, 1);
    const bad = Buffer.from(g.evidence);
    bad[bad.length - 1] = 1;
    await rejectsWith(() => parseSpdm(bad), 'GPU_ERR_SPDM', /non-zero byte 0 after the signature/);
    const more = Buffer.concat([g.evidence, Buffer.alloc(100)]);
    assert.equal(parseSpdm(more).padding, 101);
  });

  it('malformed SPDM: every truncation is a GPU_ERR_SPDM, never a crash', async () => {
    const g = gpus[0]!;
    for (let n = 0; n < g.evidence.length - 96; n += 37) {
      await rejectsWith(() => parseSpdm(g.evidence.subarray(0, n)), 'GPU_ERR_SPDM');
    }
    const req = Buffer.from(g.evidence);
    req[1] = 0xe1;
    await rejectsWith(() => parseSpdm(req), 'GPU_ERR_SPDM', /not GET_MEASUREMENTS/);
    const nosig = Buffer.from(g.evidence);
    nosig[2] = 0;
    await rejectsWith(() => parseSpdm(nosig), 'GPU_ERR_SPDM', /did not ask for a signature/);
    const v = Buffer.from(g.evidence);
    v[37] = 0x12;
    await rejectsWith(() => parseSpdm(v), 'GPU_ERR_SPDM', /response SPDMVersion is 0x12/);
  });

  it('a tampered measurement fails the signature; another root fails the chain; a past time fails the chain', async () => {
    const g = gpus.find((x) => x.name === 'sdk-h100-top')!;
    const t = Buffer.from(g.evidence);
    t[37 + 8 + 4 + 3 + 5] ^= 1; // a byte of block 1's value
    const r = await verifyGpu({ evidence: t, chain: g.chain, anchors, atSeconds: GENUINE_AT });
    assert.equal(r.signatureOk, false);
    assert.equal(r.chainOk, true);
    const other = await verifyGpu({ evidence: g.evidence, chain: g.chain, anchors: [RIM_ROOT], atSeconds: GENUINE_AT });
    assert.equal(other.chainOk, false);
    assert.match(other.checks[0]!.detail, /unable to get (local )?issuer certificate|self-signed certificate in certificate chain/);
    const early = await verifyGpu({ evidence: g.evidence, chain: g.chain, anchors: [DEVICE_ROOT], atSeconds: Date.parse('2020-01-01') / 1000 });
    assert.equal(early.chainOk, false);
    assert.match(early.checks[0]!.detail, /not yet valid/);
  });

  it('chain text: garbage outside PEM blocks, a broken block, or more than 8 certificates is GPU_ERR_CERT', async () => {
    const g = gpus[0]!;
    await rejectsWith(verifyGpu({ evidence: g.evidence, chain: Buffer.concat([Buffer.from('junk\n'), g.chain]), anchors, atSeconds: GENUINE_AT }), 'GPU_ERR_CERT', /outside its PEM blocks/);
    await rejectsWith(verifyGpu({ evidence: g.evidence, chain: g.chain.subarray(0, 300), anchors, atSeconds: GENUINE_AT }), 'GPU_ERR_CERT');
    const nine = Buffer.concat(Array.from({ length: 2 }, () => g.chain));
    await rejectsWith(verifyGpu({ evidence: g.evidence, chain: nine, anchors, atSeconds: GENUINE_AT }), 'GPU_ERR_CERT', /more than 8/);
  });

  it('the verified device chain is cached: reused at a time inside every window, verified again outside, failures never cached', async () => {
    const g = gpus.find((x) => x.name === 'sdk-h100-top')!;
    clearChainCache();
    const first = await verifyGpu({ evidence: g.evidence, chain: g.chain, anchors, atSeconds: GENUINE_AT });
    assert.equal(first.chainCached, false);
    const again = await verifyGpu({ evidence: g.evidence, chain: g.chain, anchors, atSeconds: GENUINE_AT + 86400 });
    assert.equal(again.chainCached, true);
    assert.deepEqual({ ...again, chainCached: false }, first, 'a cached chain gives the same verdict, parse and certificates');
    // Another report of the same device chain takes the chain from the cache and still has its own signature checked.
    const t = Buffer.from(g.evidence);
    t[37 + 8 + 4 + 3 + 5] ^= 1;
    const tampered = await verifyGpu({ evidence: t, chain: g.chain, anchors, atSeconds: GENUINE_AT });
    assert.equal(tampered.chainCached, true);
    assert.equal(tampered.signatureOk, false);
    // Before the certificates' notBefore the cached verdict is not used: the chain is verified again and fails.
    const early = await verifyGpu({ evidence: g.evidence, chain: g.chain, anchors, atSeconds: Date.parse('2020-01-01') / 1000 });
    assert.equal(early.chainCached, false);
    assert.equal(early.chainOk, false);
    assert.match(early.checks[0]!.detail, /not yet valid/);
    // Other anchors are another key: verified (and failing) every time, never cached.
    for (let i = 0; i < 2; i++) {
      const other = await verifyGpu({ evidence: g.evidence, chain: g.chain, anchors: [RIM_ROOT], atSeconds: GENUINE_AT });
      assert.equal(other.chainOk, false);
      assert.equal(other.chainCached, false);
    }
    clearChainCache();
    assert.equal((await verifyGpu({ evidence: g.evidence, chain: g.chain, anchors, atSeconds: GENUINE_AT })).chainCached, false, 'clearChainCache drops GPU chains too');
  });
});

