// libFuzzer target: SPDM GET_MEASUREMENTS request ‖ response parsing (native/core/spdm.cc) and,
// for inputs that parse, the whole device check against a genuine NVIDIA chain and root when
// $TAS_FUZZ_GPU names a directory with chain.pem and root.pem.
#include <cstddef>
#include <cstdint>

#include "../core/errors.h"
#include "../core/nvidia.h"
#include "../core/spdm.h"
#include "common.h"

namespace {
tas::Bytes g_chain, g_root;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("TAS_FUZZ_GPU");
  if (dir != nullptr) {
    g_chain = tas_fuzz::ReadFile(std::string(dir) + "/chain.pem");
    g_root = tas_fuzz::ReadFile(std::string(dir) + "/root.pem");
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tas::SpdmEvidence e = tas::ParseSpdm(data, size);
    if (e.signed_len + tas::kSpdmSignatureSize + e.padding != size) __builtin_trap();
    if (!g_chain.empty() && !g_root.empty()) {
      tas::GpuDeviceInput in;
      in.evidence.assign(data, data + size);
      in.chain = g_chain;
      in.anchors.push_back(g_root);
      in.at = 1748736000;
      tas::GpuDeviceResult r = tas::VerifyGpuDevice(in);
      if (r.checks.size() != 3) __builtin_trap();
    }
  } catch (const tas::SnpError&) {
  }
  return 0;
}
