import { TasError } from '../errors';
import type { Attester, GetSecretRequest } from './types';

/**
 * UnavailableAttester answers while no verifier is wired in: `amd-sev-snp` gets 503
 * `TEE verification unavailable` (retryable; the agent's nonce is not touched) and `intel-tdx` 400.
 */
export class UnavailableAttester implements Attester {
  async getSecret(req: GetSecretRequest): Promise<never> {
    if (req.teeType === 'intel-tdx') throw new TasError('TEE_TYPE_UNSUPPORTED', 'intel-tdx evidence is not verified yet', { reason: 'TDX_UNSUPPORTED' });
    throw new TasError('TEE_VERIFICATION_UNAVAILABLE', 'no SEV-SNP verifier is configured', { reason: 'SNP_VERIFIER_UNAVAILABLE' });
  }
}
