import assert from 'node:assert/strict';
import { CATALOGUE, TasError, toWire } from '../../src/errors';

describe('errors: catalogue', () => {
  it('maps a code to its status, wire text and Retry-After', () => {
    const w = toWire(new TasError('POLICY_EXISTS', 'dup', { params: { id: 'p1' } }));
    assert.equal(w.status, 409);
    assert.deepEqual(w.body, { error: "Policy 'policy:p1' already exists" });
    const t = toWire(new TasError('KBM_UNAVAILABLE', 'hsm down', { retryAfterSeconds: 7 }));
    assert.equal(t.status, 503);
    assert.equal(t.headers['retry-after'], '7');
  });
  it('never puts the detail on the wire and turns foreign errors into 500', () => {
    const w = toWire(new Error('secret detail'));
    assert.equal(w.status, 500);
    assert.ok(!JSON.stringify(w.body).includes('secret'));
    for (const [code, s] of Object.entries(CATALOGUE)) assert.ok(s.status >= 400 && s.status < 600, code);
  });
});
