/** Shared pieces of the GPU end-to-end tests: the GPU policy, golden measurements and their RIMs, trust dir. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FAKE_PROJECT, type FakeNvidia } from './fake-nvidia';

export const DRIVER = '550.144.03';
export const VBIOS = '96.00.5E.00.01';
export const N_MEAS = 12;

export const GPU_POLICY = {
  gpu: {
    'gpu-nvidia': {
      version: '4.0',
      'authorization-rules': {
        type: 'JWT',
        'overall-claims': { 'x-nvidia-overall-att-result': true, 'x-nvidia-ver': '3.0' },
        'detached-claims': {
          measres: 'success',
          dbgstat: 'disabled',
          secboot: true,
          'x-nvidia-gpu-arch-check': true,
          'x-nvidia-gpu-attestation-report-nonce-match': true,
          'x-nvidia-gpu-attestation-report-signature-verified': true,
          'x-nvidia-gpu-attestation-report-cert-chain': { 'x-nvidia-cert-status': 'valid', 'x-nvidia-cert-ocsp-status': 'good' },
          'x-nvidia-gpu-attestation-report-cert-chain-fwid-match': true,
          'x-nvidia-gpu-driver-rim-signature-verified': true,
          'x-nvidia-gpu-vbios-rim-signature-verified': true,
        },
      },
    },
  },
};

/** GOLDEN: the measurements a good GPU reports; RIM indexes 0..5 are the driver's, 6..11 the VBIOS's. */
export const GOLDEN = Array.from({ length: N_MEAS }, (_, i) => Buffer.alloc(48, i + 1));

export function goldenRims(nv: FakeNvidia): Map<string, Buffer> {
  return new Map([
    [`NV_GPU_DRIVER_GH100_${DRIVER}`, nv.rim({ version: DRIVER, measurements: GOLDEN.slice(0, 6).map((v, i) => ({ index: i, values: [v] })) })],
    [`NV_GPU_VBIOS_${FAKE_PROJECT.project}_${FAKE_PROJECT.sku}_${FAKE_PROJECT.chip}_${VBIOS.replace(/\./g, '')}`, nv.rim({ version: VBIOS, measurements: GOLDEN.slice(6).map((v, i) => ({ index: i + 6, values: [v, Buffer.alloc(48, 0xee)] })) })],
  ]);
}

export function writeGpuTrust(dir: string, nv: FakeNvidia): string {
  const t = join(dir, 'nvidia-trust');
  mkdirSync(t, { recursive: true });
  writeFileSync(join(t, 'device-root.pem'), nv.root.pem);
  writeFileSync(join(t, 'rim-root.pem'), nv.rimRoot.pem);
  return t;
}

