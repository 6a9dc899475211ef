/**
 * certify: attested workload certificates (PROTOCOL.md §2.2). CSR checks (./csr), the certificate
 * profiles as DER (./der, ./profile), issuance and renewal (./issuer), signer plugins (./signer).
 */
export * from './alg';
export * from './csr';
export * from './issuer';
export * from './profile';
export * from './signer';
export { DerError, pem, unpem } from './der';
export * from './ca';
