// SPDM 1.1 GET_MEASUREMENTS request/response of NVIDIA GPUs (DMTF DSP0274 1.1 §10.11; NVIDIA's
// opaque-data TLVs). Bytes only: parsing and bounds, no crypto, no I/O.
//
// Layout of the SDK's `evidence` (PROTOCOL.md §2.1): request (37 bytes) ‖ response, where the
// response is
//   0 SPDMVersion 0x11 | 1 RequestResponseCode 0x60 | 2 Param1 | 3 Param2 | 4 NumberOfBlocks |
//   5 MeasurementRecordLength (3, LE) | 8 MeasurementRecord (L1) | Nonce (32) | OpaqueLength (2) |
//   OpaqueData (L2) | Signature (96: ECDSA P-384 raw r‖s)
// optionally followed by zero padding (seen in genuine evidence), and nothing else.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "ossl.h"

namespace tas {

constexpr size_t kSpdmRequestSize = 37;
constexpr size_t kSpdmSignatureSize = 96;
constexpr size_t kSpdmMaxEvidence = 16 * 1024;
constexpr size_t kSpdmMaxOpaque = 1024;  // DSP0274 1.1: OpaqueLength shall not exceed 1024

// Error codes of the GPU core (keep in sync with src/native/codes.ts).
constexpr const char* kErrGpuSpdm = "GPU_ERR_SPDM";
constexpr const char* kErrGpuCert = "GPU_ERR_CERT";
constexpr const char* kErrGpuFwid = "GPU_ERR_FWID";
constexpr const char* kErrGpuOcsp = "GPU_ERR_OCSP";

// Opaque-data field ids NVIDIA defines (OPAQUE_FIELD_ID_*).
enum OpaqueId : uint16_t {
  kOpaqueDriverVersion = 3,
  kOpaqueVbiosVersion = 6,
  kOpaqueMsrscnt = 12,
  kOpaqueNvdec0Status = 11,
  kOpaqueProject = 17,
  kOpaqueProjectSku = 18,
  kOpaqueChipSku = 15,
  kOpaqueFwid = 20,
  kOpaqueVersion = 34,
  kOpaqueFeatureFlag = 36,
};

struct SpdmBlock {
  uint8_t index = 0;
  uint8_t value_type = 0;
  Bytes value;
};

struct OpaqueField {
  uint16_t type = 0;
  Bytes value;
};

struct SpdmEvidence {
  // Request.
  uint8_t req_version = 0, req_param1 = 0, req_param2 = 0, req_slot = 0;
  std::array<uint8_t, 32> req_nonce{};
  // Response.
  uint8_t version = 0, param1 = 0, param2 = 0;
  std::vector<SpdmBlock> blocks;            // in wire order; indexes distinct, 1..255
  std::array<uint8_t, 32> resp_nonce{};
  std::vector<OpaqueField> opaque;          // in wire order; each id at most once
  std::array<uint8_t, kSpdmSignatureSize> signature{};
  size_t signed_len = 0;                    // bytes of the evidence covered by the signature
  size_t padding = 0;                       // zero bytes after the signature
  // Decoded opaque fields (empty when absent).
  std::string driver_version;               // NUL-terminated ASCII
  std::string vbios_version;                // e.g. "96.00.74.00.20"
  Bytes fwid;                               // OPAQUE_FIELD_ID_FWID (48 bytes when present)
};

// ParseSpdm parses request ‖ response. Throws GPU_ERR_SPDM naming the field.
SpdmEvidence ParseSpdm(const uint8_t* p, size_t n);

// FormatVbiosVersion renders the 8-byte VBIOS version field the way NVIDIA's tools do.
std::string FormatVbiosVersion(const uint8_t* p, size_t n);

}  // namespace tas
