/** Settings of the Intel TDX layer (PROTOCOL.md §5). */
import { registerSettings } from '../config/registry';

const TDX = 'Intel TDX';

registerSettings('tdx', [
  {
    path: 'tdx.collateral_update', env: ['TAS_TDX_COLLATERAL_UPDATE'], type: 'enum', values: ['standard', 'early'], default: 'standard', section: TDX,
    doc: 'Which PCS TCB collateral judges quotes: `standard` or `early` (new TCB levels at the start of a TCB-recovery grace period); part of every cache key and audit record.',
  },
  {
    path: 'tdx.min_tcb_eval_number', env: ['TAS_TDX_MIN_TCB_EVAL_NUMBER'], type: 'integer', default: 0, min: 0, section: TDX,
    doc: 'Collateral (TCB Info, QE identity) with a lower tcbEvaluationDataNumber is refused (a PCCS replaying old, still-signed collateral).',
  },
  {
    path: 'tdx.extra_trust_dir', env: ['TAS_TDX_EXTRA_TRUST_DIR'], type: 'path', section: TDX,
    doc: 'Extra Intel root CA certificates (PEM files, labs and tests only) trusted besides the pinned Intel SGX Root CA: '
      + 'logged as a warning at every start, flagged in /management/status and `tas config check`, exported as metric tas_test_roots_enabled.',
  },
]);
