/**
 * Settings of the SEV-SNP layer (PROTOCOL.md §5): extra trust anchors for labs/tests and the
 * product assumed for version-2 reports (which do not name their product).
 */
import { registerSettings } from '../config/registry';

const SNP = 'SEV-SNP trust';

registerSettings('snp', [
  {
    path: 'snp.extra_trust_dir', env: ['TAS_SNP_EXTRA_TRUST_DIR'], type: 'path', section: SNP,
    doc: 'Extra ARK certificates (PEM files, labs and tests only) trusted besides the pinned AMD roots: '
      + 'logged as a warning at every start, flagged in /management/status and `tas config check`, '
      + 'exported as metric tas_test_roots_enabled.',
  },
  {
    path: 'snp.v2_product', env: ['TAS_SNP_V2_PRODUCT'], type: 'enum', values: ['Milan', 'Genoa'], section: SNP,
    doc: 'Product assumed for version-2 reports, which do not say (Milan or Genoa; Turin requires v3+). '
      + 'Unset: v2 reports are refused.',
  },
]);
