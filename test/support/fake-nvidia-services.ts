/**
 * The network side of the fake NVIDIA: a RIM service (GET <base>/<id> → {"id", "rim": b64}) and an
 * OCSP front that routes each request to the `openssl ocsp` responder of the certificate's issuer
 * (one real responder per CA, as each CA signs its own answers).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OcspResponder, type FakeNvidia } from './fake-nvidia';

async function listen(s: Server): Promise<string> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

export class FakeRimService {
  readonly rims = new Map<string, Buffer>();
  hits = 0;
  private constructor(private readonly server: Server, readonly url: string) {}
  static async start(): Promise<FakeRimService> {
    const holder: { svc?: FakeRimService } = {};
    const server = createServer((req, res) => {
      const svc = holder.svc!;
      svc.hits++;
      const id = decodeURIComponent((req.url ?? '').replace(/^\/v1\/rim\//, ''));
      const rim = svc.rims.get(id);
      if (!rim) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id, rim: rim.toString('base64'), rim_format: 'SWID' }));
    });
    const base = await listen(server);
    holder.svc = new FakeRimService(server, `${base}/v1/rim/`);
    return holder.svc;
  }
  async stop(): Promise<void> {
    await new Promise((r) => this.server.close(r));
  }
}

/** FakeOcsp: three `openssl ocsp` responders (BROM ← provisioner, provisioner ← identity, identity ← root) behind one URL. */
export class FakeOcsp {
  up = true;
  private constructor(private readonly server: Server, readonly url: string, private readonly responders: OcspResponder[]) {}
  static async start(nv: FakeNvidia): Promise<FakeOcsp> {
    const issuers = [nv.provisioner, nv.identity, nv.root];
    const responders = await Promise.all(issuers.map((i) => OcspResponder.start(nv, i)));
    // CertID.issuerNameHash is SHA-1 of the issuer's DER subject: find it in the request.
    const routes = issuers.map((i, k) => {
      const x = new X509Certificate(i.pem);
      const subjectDer = subjectOf(x.raw);
      return { hash: createHash('sha1').update(subjectDer).digest(), url: responders[k]!.url };
    });
    const holder: { f?: FakeOcsp } = {};
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (!holder.f!.up) {
          res.writeHead(503).end();
          return;
        }
        const body = Buffer.concat(chunks);
        const route = routes.find((r) => body.includes(r.hash));
        if (!route) {
          res.writeHead(400).end();
          return;
        }
        fetch(route.url, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: new Uint8Array(body) })
          .then(async (r) => res.writeHead(r.status, { 'content-type': 'application/ocsp-response' }).end(Buffer.from(await r.arrayBuffer())))
          .catch(() => res.writeHead(502).end());
      });
    });
    holder.f = new FakeOcsp(server, await listen(server), responders);
    return holder.f;
  }
  async stop(): Promise<void> {
    for (const r of this.responders) r.stop();
    await new Promise((r) => this.server.close(r));
  }
}

/** subjectOf returns the DER of a certificate's subject Name (tbsCertificate's 6th element, v3). */
function subjectOf(der: Buffer): Buffer {
  const read = (b: Buffer, off: number): { start: number; end: number; hdr: number } => {
    let len = b[off + 1]!;
    let hdr = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = (len << 8) | b[off + 2 + i]!;
      hdr = 2 + n;
    }
    return { start: off, end: off + hdr + len, hdr };
  };
  const cert = read(der, 0);
  const tbs = read(der, cert.hdr);
  let off = tbs.start + tbs.hdr;
  const fields: Array<{ start: number; end: number }> = [];
  while (off < tbs.end && fields.length < 6) {
    const f = read(der, off);
    fields.push(f);
    off = f.end;
  }
  // [0] version, serial, signature, issuer, validity, subject
  const s = fields[5]!;
  return der.subarray(s.start, s.end);
}
