/**
 * SNP_REASONS: the audit reasons the snp layer adds on top of the native addon's codes
 * (src/native/codes.ts). Every TasError thrown by src/snp carries one of these or a native code
 * as `reason`; the wire text stays "TEE verification failed". The layer also raises the native
 * SNP_ERR_SIGNER_KIND itself (SIGNING_KEY 7 or signer kind confusion), with the native meaning.
 */
export const SNP_REASONS = {
  SNP_ERR_TCB_MISMATCH: 'REPORTED_TCB differs from the VCEK/VLEK SPL extensions (reserved bytes and Turin FMC included).',
  SNP_ERR_TCB_ABOVE_CURRENT: 'The VCEK/VLEK certifies a TCB component above the CURRENT_TCB the platform runs.',
  SNP_ERR_CHIP_ID_MISMATCH: 'CHIP_ID differs from the VCEK hwID (64 bytes; Turin: 8 bytes and CHIP_ID[8..63] zero).',
  SNP_ERR_PRODUCT_MISMATCH: 'The product named by the caller differs from the report CPUID product.',
  SNP_ERR_PRODUCT_UNKNOWN: 'The report CPUID family/model is not a known SEV-SNP product.',
  SNP_ERR_PRODUCT_UNSUPPORTED: 'The report CPUID names a product without pinned roots (Venice).',
  SNP_ERR_V2_PRODUCT_UNSET: 'A report without CPUID (v2, or v3+ with zero CPUID) while TAS_SNP_V2_PRODUCT is unset.',
  SNP_ERR_V2_TURIN: 'Turin reports must be v3+ with CPUID (the TCB layout is otherwise ambiguous).',
} as const;

/** SnpReason is a reason of SNP_REASONS. */
export type SnpReason = keyof typeof SNP_REASONS;
