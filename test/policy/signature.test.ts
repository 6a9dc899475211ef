import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTasError } from '../../src/errors';
import {
  documentSigningBytes,
  MemoryPolicyRepo,
  parseDocument,
  PolicyService,
  PolicyTrust,
  pythonSortedCompactJson,
  signPolicy,
  verifyDocumentSignature,
  loadTrust,
  TrustError,
  type PolicyDocument,
  type PolicySettings,
} from '../../src/policy';
import { AGENT_FIXTURES, doc, fixture, fixtureKey, signer } from './helpers';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isTasError(e), String(e));
    return e.code;
  }
  assert.fail('expected a TasError');
}

async function acode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(isTasError(e), String(e));
    return e.code;
  }
  assert.fail('expected a TasError');
}

/** mutations yields one-change variants of a JSON value: every leaf changed, every key renamed. */
function* mutations(v: unknown, path: string[] = []): Generator<[string, (root: Record<string, unknown>) => void]> {
  if (v === null || typeof v !== 'object') return;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const p = [...path, k];
    const parent = (root: Record<string, unknown>) => path.reduce<Record<string, unknown>>((o, s) => o[s] as Record<string, unknown>, root);
    yield [`rename ${p.join('.')}`, (root) => {
      const o = parent(root);
      o[`${k}x`] = o[k];
      delete o[k];
    }];
    if (typeof x === 'object' && x !== null) {
      yield* mutations(x, p);
    } else {
      yield [`change ${p.join('.')}`, (root) => {
        const o = parent(root);
        if (typeof x === 'string') o[k] = x.length ? (x[0] === 'a' ? 'b' : 'a') + x.slice(1) : 'a';
        else if (typeof x === 'number') o[k] = x + 1;
        else if (typeof x === 'boolean') o[k] = !x;
      }];
    }
  }
}

describe('policy signatures (PROTOCOL.md §3.2)', () => {
  const a = signer('A');
  const b = signer('B');

  it('accepts the agent-fixtures policy with its policy-trust key (PSS salt 48, RSA-4096, JCS)', () => {
    const f = fixture<{ signed_policy: PolicyDocument }>('agent-policy.json');
    const d = parseDocument(f.signed_policy, 'management');
    const v = verifyDocumentSignature(d, [fixtureKey('agent-policy-signer.pem')]);
    assert.equal(v.ok, true);
    assert.ok(v.ok && v.covers === 'document' && v.key.bits === 4096);
    // and through a trust directory (TAS_POLICY_TRUST pointing at shared/agent-fixtures/policy-trust)
    const dir = mkdtempSync(join(tmpdir(), 'trust-'));
    try {
      writeFileSync(join(dir, 'policy-signer.pem'), readFileSync(join(AGENT_FIXTURES, 'policy-trust', 'policy-signer.pem')));
      writeFileSync(join(dir, 'README'), 'no keys in here\n');
      const t = loadTrust(dir);
      assert.equal(t.keys.length, 1);
      assert.deepEqual(t.skipped, [join(dir, 'README')]);
      assert.equal(verifyDocumentSignature(d, t.keys).ok, true);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('accepts documents signed by Python cryptography: PKCS#1 v1.5 and PSS maximum salt', () => {
    const key = fixtureKey('python-signer.pem');
    for (const f of ['python-pkcs1.json', 'python-pss-max.json']) {
      const d = parseDocument(fixture(f), 'management');
      assert.equal(verifyDocumentSignature(d, [key]).ok, true, f);
      assert.equal(verifyDocumentSignature(d, [a.trusted]).ok, false, `${f} with a foreign key`);
    }
  });

  for (const [name, opts] of [
    ['PSS salt 48', { padding: 'PSS', saltLength: 48 }],
    ['PSS max salt', { padding: 'PSS', saltLength: 'max' }],
    ['PKCS#1 v1.5', { padding: 'PKCS1v15' }],
  ] as const) {
    it(`tas signs and verifies ${name}; a one-byte tamper anywhere fails`, () => {
      const signed = signPolicy(doc('p1', { rules: { measurement: { allow_list: ['aa'.repeat(48)] }, vmpl: 0, policy: { debug_allowed: false } } }), a.privateKey, opts);
      const d = parseDocument(signed, 'management');
      assert.equal(verifyDocumentSignature(d, [b.trusted, a.trusted]).ok, true);
      assert.equal(verifyDocumentSignature(d, [b.trusted]).ok, false);
      let n = 0;
      for (const [what, mutate] of mutations(withoutSig(signed))) {
        const copy = structuredClone(signed);
        mutate(copy);
        assert.equal(verifyDocumentSignature(copy as unknown as PolicyDocument, [a.trusted]).ok, false, what);
        n++;
      }
      assert.ok(n >= 20, `only ${n} mutations`);
      const sig = Buffer.from((signed.signature as { value: string }).value, 'base64');
      for (let i = 0; i < sig.length; i++) {
        const t = Buffer.from(sig);
        t[i] ^= 0x01;
        const copy = { ...signed, signature: { ...(signed.signature as object), value: t.toString('base64') } } as unknown as PolicyDocument;
        assert.equal(verifyDocumentSignature(copy, [a.trusted]).ok, false, `signature byte ${i}`);
      }
      // The padding named in the document is the one used: the same bytes under the other name fail.
      const other = { ...signed, signature: { ...(signed.signature as object), padding: opts.padding === 'PSS' ? 'PKCS1v15' : 'PSS' } };
      assert.equal(verifyDocumentSignature(other as unknown as PolicyDocument, [a.trusted]).ok, false);
    });
  }

  it('canonical form is JCS of the document without signature (member order and spacing do not matter)', () => {
    const d1 = doc('p2');
    const reordered = JSON.parse(JSON.stringify({ validation_rules: d1.validation_rules, metadata: d1.metadata }));
    assert.deepEqual(documentSigningBytes(d1), documentSigningBytes(reordered));
    const signed = signPolicy(d1, a.privateKey);
    const pretty = JSON.parse(JSON.stringify({ signature: signed.signature, validation_rules: d1.validation_rules, metadata: d1.metadata }, null, 4));
    assert.equal(verifyDocumentSignature(pretty, [a.trusted]).ok, true);
  });

  it('legacy serialisation matches Python json.dumps(sort_keys=True, separators=(",", ":"))', () => {
    assert.equal(
      pythonSortedCompactJson({ b: [1, { z: true, a: null }], a: 'é"\\\n\u007f', c: -5 }),
      '{"a":"\\u00e9\\"\\\\\\n\\u007f","b":[1,{"a":null,"z":true}],"c":-5}',
    );
  });

  it('legacy rules-only signature (Python demo signer): verifies in the first dialect only', () => {
    const legacy = fixture('legacy-rules-only.json');
    (legacy.metadata as Record<string, unknown>).policy_type = 'SNP';
    (legacy.metadata as Record<string, unknown>).policy_id = 'legacy-1';
    assert.equal(code(() => parseDocument(legacy, 'management')), 'POLICY_SIGNED_DATA_UNSUPPORTED');
    const d = parseDocument(legacy, 'first');
    const v = verifyDocumentSignature(d, [fixtureKey('python-signer.pem')]);
    assert.ok(v.ok && v.covers === 'rules');
    // metadata is not covered (that is the point of refusing key release) ...
    (legacy.metadata as Record<string, unknown>).key_id = 'any-key';
    assert.equal(verifyDocumentSignature(parseDocument(legacy, 'first'), [fixtureKey('python-signer.pem')]).ok, true);
    // ... but the rules are.
    (legacy.validation_rules as Record<string, unknown>).vmpl = { exact_match: 1 };
    assert.equal(verifyDocumentSignature(parseDocument(legacy, 'first'), [fixtureKey('python-signer.pem')]).ok, false);
  });

  describe('trust set', () => {
    it('loads certificates, refuses private keys, non-RSA and short keys', () => {
      const dir = mkdtempSync(join(tmpdir(), 'trust-'));
      try {
        const k = join(dir, 'k.pem');
        execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', k, '-out', join(dir, 'cert.pem'), '-subj', '/CN=policy signer', '-days', '2'], { stdio: 'ignore' });
        const cert = loadTrust(join(dir, 'cert.pem'));
        assert.equal(cert.keys.length, 1);
        assert.throws(() => loadTrust(k), (e: unknown) => e instanceof TrustError && /private key/.test(e.message));
        const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
        writeFileSync(join(dir, 'ec.pem'), ec);
        assert.throws(() => loadTrust(join(dir, 'ec.pem')), /must be RSA/);
        const short = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
        writeFileSync(join(dir, 'short.pem'), short);
        assert.throws(() => loadTrust(join(dir, 'short.pem')), /too short/);
        assert.throws(() => loadTrust(join(dir, 'missing.pem')), /ENOENT/);
      } finally {
        rmSync(dir, { recursive: true });
      }
    });
  });

  describe('PolicyService verification and cache', () => {
    const settings: PolicySettings & { enforceSigned: boolean; allowUnsignedKeyBinding: boolean } = { enforceSigned: true, allowUnsignedKeyBinding: false };
    const mk = (trust: PolicyTrust, s: PolicySettings = settings) => new PolicyService({ repo: new MemoryPolicyRepo(), trust, settings: () => s });

    it('verifies at store and at use, caches by digest + trust generation, and a trust reload voids the cache', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'trust-'));
      try {
        const path = join(dir, 'signer.pem');
        writeFileSync(path, a.publicPem);
        const trust = PolicyTrust.fromPath(path);
        const svc = mk(trust);
        await svc.store(signPolicy(doc('cached'), a.privateKey), { dialect: 'management' });
        assert.equal(svc.stats.verifications, 1);
        await svc.forUse('cached');
        await svc.forUse('cached');
        assert.equal(svc.stats.verifications, 1, 'verdict served from the cache');
        assert.equal(svc.stats.cacheHits, 2);
        // Reload with the same key: new generation, verified again once.
        trust.reload(path);
        await svc.forUse('cached');
        assert.equal(svc.stats.verifications, 2);
        // Reload with another key only: the stored policy no longer verifies.
        writeFileSync(path, b.publicPem);
        trust.reload(path);
        assert.equal(await acode(svc.forUse('cached')), 'POLICY_SIGNATURE_FAILED');
        // A failed reload keeps the previous set.
        assert.throws(() => trust.reload(join(dir, 'missing.pem')));
        assert.equal(trust.keys[0]!.fingerprint, b.trusted.fingerprint);
      } finally {
        rmSync(dir, { recursive: true });
      }
    });

    it('refuses unsigned policies unless TAS_ENFORCE_SIGNED_POLICIES=false, and again at use once re-enabled', async () => {
      const s = { enforceSigned: true, allowUnsignedKeyBinding: false };
      const svc = mk(new PolicyTrust([a.trusted]), s);
      assert.equal(await acode(svc.store(doc('u1'), { dialect: 'management' })), 'POLICY_UNSIGNED');
      s.enforceSigned = false;
      const p = await svc.store(doc('u1'), { dialect: 'management' });
      assert.equal(p.signed, false);
      // Admitted to the store, but it releases its key only with TAS_ALLOW_UNSIGNED_KEY_BINDING.
      assert.equal(svc.keyReleaseAllowed(p), false);
      assert.equal((await svc.findByKeyId('my-key-1', 'SEV')).length, 0);
      s.allowUnsignedKeyBinding = true;
      assert.equal(svc.keyReleaseAllowed(p), true);
      assert.deepEqual((await svc.findByKeyId('my-key-1', 'SEV')).map((x) => x.id), ['u1']);
      s.enforceSigned = true;
      assert.equal(await acode(svc.forUse('u1')), 'POLICY_UNSIGNED');
    });

    it('a tampered stored document fails at use although it passed at store', async () => {
      const repo = new MemoryPolicyRepo();
      const svc = new PolicyService({ repo, trust: new PolicyTrust([a.trusted]), settings: () => settings });
      await svc.store(signPolicy(doc('t1'), a.privateKey), { dialect: 'management' });
      const text = (await repo.get('t1'))!;
      await repo.delete('t1');
      await repo.putIfAbsent('t1', text.replace('"exact_match":0', '"exact_match":1'));
      assert.equal(await acode(svc.forUse('t1')), 'POLICY_SIGNATURE_FAILED');
    });

    it('key binding: rules-only signed policies release a key only with TAS_ALLOW_UNSIGNED_KEY_BINDING', async () => {
      const s = { enforceSigned: true, allowUnsignedKeyBinding: false };
      const svc = mk(new PolicyTrust([fixtureKey('python-signer.pem'), a.trusted]), s);
      const legacy = fixture('legacy-rules-only.json');
      Object.assign(legacy.metadata as object, { policy_type: 'SNP', policy_id: 'legacy-1', key_id: 'my-key-1' });
      assert.equal(await acode(svc.store(legacy, { dialect: 'management' })), 'POLICY_SIGNED_DATA_UNSUPPORTED');
      const p = await svc.store(legacy, { dialect: 'first' });
      assert.equal(p.signed, true);
      assert.equal(p.keyBindingSigned, false);
      await svc.store(signPolicy(doc('whole', { key_id: 'my-key-1' }), a.privateKey), { dialect: 'management' });
      await svc.store(signPolicy(doc('other-key', { key_id: 'my-key-2' }), a.privateKey), { dialect: 'management' });
      await svc.store(signPolicy(doc('tdx', { key_id: 'my-key-1', policy_type: 'TDX', rules: { body: { mr_td: 'aa'.repeat(48) } } }), a.privateKey), { dialect: 'management' });

      const ids = async () => (await svc.findByKeyId('my-key-1', 'SEV')).map((x) => x.id).sort();
      assert.deepEqual(await ids(), ['whole']);
      const use = await svc.forUse('legacy-1');
      assert.throws(() => svc.assertKeyRelease(use), (e: unknown) => isTasError(e) && e.code === 'POLICY_KEY_BINDING_UNSIGNED' && /TAS_ALLOW_UNSIGNED_KEY_BINDING/.test(e.detail));
      s.allowUnsignedKeyBinding = true;
      assert.deepEqual(await ids(), ['legacy-1', 'whole']);
      assert.doesNotThrow(() => svc.assertKeyRelease(use));
      assert.deepEqual((await svc.findByKeyId('my-key-1', 'TDX')).map((x) => x.id), ['tdx']);
    });

    it('refuses a document signed by an untrusted key, and when no key is trusted at all', async () => {
      assert.equal(await acode(mk(new PolicyTrust([b.trusted])).store(signPolicy(doc('x'), a.privateKey), { dialect: 'management' })), 'POLICY_SIGNATURE_FAILED');
      assert.equal(await acode(mk(new PolicyTrust([])).store(signPolicy(doc('x'), a.privateKey), { dialect: 'management' })), 'POLICY_SIGNATURE_FAILED');
    });

    it('names unknown claims and operators at store time', async () => {
      const svc = mk(new PolicyTrust([a.trusted]));
      try {
        await svc.store(signPolicy(doc('bad', { rules: { debug: false, vmpl: { at_most: 0 } } }), a.privateKey), { dialect: 'management' });
        assert.fail('stored');
      } catch (e) {
        assert.ok(isTasError(e) && e.code === 'POLICY_INVALID');
        assert.match(e.detail, /unknown claim 'debug'/);
        assert.match(e.detail, /unknown operator 'at_most' on claim 'vmpl'/);
      }
    });
  });
});

function withoutSig(d: Record<string, unknown>): Record<string, unknown> {
  const { signature: _s, ...rest } = d;
  return rest;
}
