/**
 * Byte-exact checks against PyKMIP captures (test/fixtures/kmip/README.md): tas's encoder must
 * produce the very request bytes PyKMIP's client sent, and tas's decoder must read PyKMIP's
 * server responses, for KMIP 1.2 and 2.0.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeTtlv, encodeTtlv, TtlvType } from '../../../plugins/tas_kbm_kmip/ttlv';
import { ObjectType, Operation, State, Tag } from '../../../plugins/tas_kbm_kmip/tags';
import {
  KMIP_1_2,
  KMIP_2_0,
  SUPPORTED_VERSIONS,
  discoverVersionsPayload,
  getAttributesPayload,
  getPayload,
  locatePayload,
  nameOf,
  readDiscoverVersions,
  readGet,
  readGetAttributes,
  readLocate,
  readResponse,
  requestMessage,
  versionString,
} from '../../../plugins/tas_kbm_kmip/messages';

interface Capture {
  version: string;
  name: string;
  uid: string;
  keyMaterial: string;
  frames: Record<'DiscoverVersions' | 'Locate' | 'GetAttributes' | 'Get', { request: string; response: string }>;
}

for (const file of ['pykmip-1.2.json', 'pykmip-2.0.json']) {
  const cap = JSON.parse(readFileSync(join(__dirname, '..', '..', 'fixtures', 'kmip', file), 'utf8')) as Capture;
  const v = cap.version === '2.0' ? KMIP_2_0 : KMIP_1_2;
  const hex = (op: keyof Capture['frames'], dir: 'request' | 'response'): Buffer => Buffer.from(cap.frames[op][dir], 'hex');
  const response = (op: keyof Capture['frames']) => {
    const r = readResponse(decodeTtlv(hex(op, 'response')));
    assert.equal(r.items.length, 1);
    assert.equal(r.items[0]!.status, 0);
    assert.equal(versionString(r.version), cap.version);
    return r.items[0]!;
  };

  describe(`KMIP ${cap.version} wire format matches PyKMIP (${file})`, () => {
    it('DiscoverVersions request is byte-identical; the response lists 2.0, 1.4, 1.2', () => {
      const ours = encodeTtlv(requestMessage(v, [{ operation: Operation.DiscoverVersions, payload: discoverVersionsPayload(SUPPORTED_VERSIONS) }]));
      assert.equal(ours.toString('hex'), cap.frames.DiscoverVersions.request);
      const item = response('DiscoverVersions');
      assert.equal(item.operation, Operation.DiscoverVersions);
      assert.deepEqual(readDiscoverVersions(item.payload).map(versionString), ['2.0', '1.4', '1.2']);
    });

    it(`Locate request (${cap.version === '2.0' ? 'Attributes structure' : 'Attribute triples'}) is byte-identical; the response holds the one id`, () => {
      const ours = encodeTtlv(
        requestMessage(v, [{ operation: Operation.Locate, payload: locatePayload(v, { name: cap.name, objectType: ObjectType.SymmetricKey, state: State.Active, maximumItems: 2 }) }]),
      );
      assert.equal(ours.toString('hex'), cap.frames.Locate.request);
      assert.deepEqual(readLocate(response('Locate').payload), [cap.uid]);
    });

    it('GetAttributes request is byte-identical; the response gives Object Type, State and Name', () => {
      const ours = encodeTtlv(requestMessage(v, [{ operation: Operation.GetAttributes, payload: getAttributesPayload(v, cap.uid, ['Object Type', 'State', 'Name']) }]));
      assert.equal(ours.toString('hex'), cap.frames.GetAttributes.request);
      const { uid, attributes } = readGetAttributes(response('GetAttributes').payload);
      assert.equal(uid, cap.uid);
      const byName = new Map(attributes.map((a) => [a.name, a]));
      assert.equal(byName.get('Object Type')!.value.value, ObjectType.SymmetricKey);
      assert.equal(byName.get('State')!.value.value, State.Active);
      assert.equal(nameOf(byName.get('Name')!.value), cap.name);
      // 1.x sends an AttributeIndex for Name; 2.0 has no indices.
      assert.equal(byName.get('Name')!.index, cap.version === '2.0' ? undefined : 0);
    });

    it('Get request is byte-identical; the response yields the Raw AES-256 key material', () => {
      const ours = encodeTtlv(requestMessage(v, [{ operation: Operation.Get, payload: getPayload(cap.uid) }]));
      assert.equal(ours.toString('hex'), cap.frames.Get.request);
      const obj = readGet(response('Get').payload);
      assert.equal(obj.uid, cap.uid);
      assert.equal(obj.objectType, ObjectType.SymmetricKey);
      assert.equal(obj.keyFormatType, 1);
      assert.equal(obj.cryptographicAlgorithm, 3);
      assert.equal(obj.cryptographicLength, 256);
      assert.equal(obj.material.toString('hex'), cap.keyMaterial);
    });

    it('every captured message decodes and re-encodes to the same bytes', () => {
      for (const f of Object.values(cap.frames)) {
        for (const h of [f.request, f.response]) {
          const item = decodeTtlv(Buffer.from(h, 'hex'));
          assert.equal(encodeTtlv(item).toString('hex'), h);
        }
      }
      // The response header carries the server's TimeStamp as a DateTime (it differs per capture).
      const header = decodeTtlv(hex('Get', 'response'));
      assert.equal(header.type, TtlvType.Structure);
      const rh = (header.value as { tag: number; type: number; value: unknown }[]).find((c) => c.tag === Tag.ResponseHeader)!;
      const ts = (rh.value as { tag: number; type: number; value: unknown }[]).find((c) => c.tag === Tag.TimeStamp)!;
      assert.equal(ts.type, TtlvType.DateTime);
      assert.ok((ts.value as bigint) > 1_700_000_000n);
    });
  });
}
