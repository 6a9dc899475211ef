/**
 * The benchmark's "confidential VM hardware": a separate process that signs SEV-SNP reports with
 * the fake AMD signer on request (IPC: {id, product, reportData hex} -> {id, report base64}), so the
 * signing cost never lands in the daemon's or the load generator's CPU time.
 */
import { FakeAmd, type Product } from '../support/fake-amd';

const kits = new Map<Product, FakeAmd>();
process.on('message', (m: { id: number; product: Product; reportData: string }) => {
  void (async () => {
    let kit = kits.get(m.product);
    if (!kit) {
      kit = await FakeAmd.create({ product: m.product });
      kits.set(m.product, kit);
    }
    const report = kit.signReport({ reportData: Buffer.from(m.reportData, 'hex') });
    process.send!({ id: m.id, report: report.toString('base64') });
  })();
});
process.send!({ ready: true });
