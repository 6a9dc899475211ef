/**
 * Command-line face of the fake AMD signer, for other processes (benchmark children, the demo,
 * shell experiments). Run with `node --import tsx test/support/fake-amd/cli.ts <command>`.
 *
 *   sign --product P [--signer VCEK|VLEK] [--version N] [--report-data HEX] [--measurement HEX]
 *        [--policy 0x30000] [--vmpl N] [--out FILE]     report (base64 on stdout unless --out)
 *   chain --product P --out DIR                          ark.pem ask.pem asvk.pem vcek.der vlek.der
 *                                                        cert_chain.pem vlek_cert_chain.pem crl.der
 *   trust-dir DIR                                        ark-<product>.pem for all three products
 *
 * Keys come from the same on-disk cache as FakeAmd.create, so reports signed here verify under
 * certificates minted by any other process of the test run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeAmd, PRODUCTS, type Product } from './index';

function opt(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

function product(args: string[]): Product {
  const p = opt(args, 'product') ?? 'Genoa';
  if (!(PRODUCTS as readonly string[]).includes(p)) throw new Error(`--product must be one of ${PRODUCTS.join(', ')}`);
  return p as Product;
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...args] = argv;
  if (cmd === 'sign') {
    const kit = await FakeAmd.create({ product: product(args) });
    const hex = (n: string): Buffer | undefined => {
      const v = opt(args, n);
      return v === undefined ? undefined : Buffer.from(v, 'hex');
    };
    const num = (n: string): number | undefined => {
      const v = opt(args, n);
      return v === undefined ? undefined : Number(v);
    };
    const signer = opt(args, 'signer') === 'VLEK' ? 'VLEK' : 'VCEK';
    const rep = kit.signReport({
      signingKey: signer,
      version: num('version'),
      reportData: hex('report-data'),
      measurement: hex('measurement'),
      policy: opt(args, 'policy') === undefined ? undefined : BigInt(opt(args, 'policy')!),
      vmpl: num('vmpl'),
      ...(signer === 'VLEK' ? { chipId: Buffer.alloc(64) } : {}),
    });
    const out = opt(args, 'out');
    if (out) writeFileSync(out, rep);
    else process.stdout.write(rep.toString('base64') + '\n');
  } else if (cmd === 'chain') {
    const kit = await FakeAmd.create({ product: product(args) });
    const dir = opt(args, 'out');
    if (!dir) throw new Error('--out DIR required');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'ark.pem'), kit.arkPem);
    writeFileSync(join(dir, 'ask.pem'), kit.askPem);
    writeFileSync(join(dir, 'asvk.pem'), kit.asvkPem);
    writeFileSync(join(dir, 'vcek.der'), kit.vcekDer());
    writeFileSync(join(dir, 'vlek.der'), kit.vlekDer());
    writeFileSync(join(dir, 'cert_chain.pem'), kit.certChainPem('VCEK'));
    writeFileSync(join(dir, 'vlek_cert_chain.pem'), kit.certChainPem('VLEK'));
    const now = Date.now();
    writeFileSync(join(dir, 'crl.der'), kit.crlDer({ thisUpdate: new Date(now - 3600_000), nextUpdate: new Date(now + 7 * 86400_000) }));
  } else if (cmd === 'trust-dir') {
    const dir = args[0];
    if (!dir) throw new Error('trust-dir DIR');
    for (const k of Object.values(await FakeAmd.all())) await k.writeTrustDir(dir);
  } else {
    throw new Error('usage: cli.ts sign|chain|trust-dir ... (see the file header)');
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
});
