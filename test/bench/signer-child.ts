/**
 * The benchmark's "confidential VM hardware": a separate process that signs SEV-SNP reports with
 * the fake AMD signer on request (IPC: {id, product, reportData hex} -> {id, report base64}), so the
 * signing never lands in the daemon's or the load generator's CPU time. It signs with one reused
 * ECDSA nonce (FakeAmd.benchReportSigner): a P-384 signature per cycle cost this process ~1.2
 * ECDSA verifies of CPU on the 2 cores the daemon shares, and the hardware it stands for is not on
 * the daemon's machine. TAS_BENCH_SIGNER=full signs every report with a fresh nonce instead.
 */
import { FakeAmd, type Product } from '../support/fake-amd';

const full = process.env.TAS_BENCH_SIGNER === 'full';
const kits = new Map<Product, (reportData: Buffer) => Buffer>();
process.on('message', (m: { id: number; product: Product; reportData: string }) => {
  void (async () => {
    let sign = kits.get(m.product);
    if (!sign) {
      const kit = await FakeAmd.create({ product: m.product });
      const fast = kit.benchReportSigner();
      sign = full ? (reportData) => kit.signReport({ reportData }) : (reportData) => fast({ reportData });
      kits.set(m.product, sign);
    }
    const report = sign(Buffer.from(m.reportData, 'hex'));
    process.send!({ id: m.id, report: report.toString('base64') });
  })();
});
process.send!({ ready: true });
