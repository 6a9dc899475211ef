/**
 * An independent decryptor of `secret_key` replies, written the way the agent does it (and on
 * purpose NOT sharing code with src/kbm/wrap.ts): RSA-OAEP private decrypt of `wrapped_key`, then
 * AES-256-GCM with the separate tag, or RFC 5649 unwrap (`id-aes256-wrap-pad`) when `algorithm`
 * is base64("AES-KWP"). Every member is checked the way a strict client would.
 */
import { constants, createDecipheriv, privateDecrypt, type KeyObject } from 'node:crypto';

/** ReplyLike is the `secret_key` object as received. */
export interface ReplyLike {
  wrapped_key: string;
  blob: string;
  iv: string;
  tag: string;
  algorithm?: string;
}

/** Decrypted is what came out, with the form and the per-reply AES key (to prove freshness). */
export interface Decrypted {
  form: 'aes-gcm' | 'aes-kwp';
  secret: Buffer;
  aesKey: Buffer;
}

function b64(name: string, text: unknown): Buffer {
  if (typeof text !== 'string') throw new Error(`${name} is not a string`);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new Error(`${name} is not standard base64`);
  return Buffer.from(text, 'base64');
}

/** agentDecrypt opens a reply with the client's private key. oaepHash is sha256 on the wire (sha1 only for SoftHSM in-HSM tests). */
export function agentDecrypt(reply: ReplyLike, privateKey: KeyObject, oaepHash: 'sha256' | 'sha1' = 'sha256'): Decrypted {
  const keys = Object.keys(reply).sort().join(',');
  if (keys !== 'blob,iv,tag,wrapped_key' && keys !== 'algorithm,blob,iv,tag,wrapped_key') throw new Error(`unexpected members: ${keys}`);
  const aesKey = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, b64('wrapped_key', reply.wrapped_key));
  if (aesKey.length !== 32) throw new Error(`unwrapped AES key has ${aesKey.length} bytes, want 32`);
  const blob = b64('blob', reply.blob);
  if (reply.algorithm === undefined) {
    const iv = b64('iv', reply.iv);
    const tag = b64('tag', reply.tag);
    if (iv.length !== 12) throw new Error(`GCM iv has ${iv.length} bytes, want 12`);
    if (tag.length !== 16) throw new Error(`GCM tag has ${tag.length} bytes, want 16`);
    const d = createDecipheriv('aes-256-gcm', aesKey, iv, { authTagLength: 16 });
    d.setAuthTag(tag);
    return { form: 'aes-gcm', secret: Buffer.concat([d.update(blob), d.final()]), aesKey };
  }
  if (b64('algorithm', reply.algorithm).toString('latin1') !== 'AES-KWP') throw new Error(`unknown algorithm ${reply.algorithm}`);
  if (reply.iv !== '' || reply.tag !== '') throw new Error('KWP reply must have empty iv and tag');
  const d = createDecipheriv('id-aes256-wrap-pad', aesKey, Buffer.from('a65959a6', 'hex'));
  return { form: 'aes-kwp', secret: Buffer.concat([d.update(blob), d.final()]), aesKey };
}
