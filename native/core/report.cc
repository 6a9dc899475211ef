#include "report.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "errors.h"

namespace tas {
namespace {

uint32_t U32(const uint8_t* p, size_t off) {
  return static_cast<uint32_t>(p[off]) | static_cast<uint32_t>(p[off + 1]) << 8 |
         static_cast<uint32_t>(p[off + 2]) << 16 | static_cast<uint32_t>(p[off + 3]) << 24;
}

uint64_t U64(const uint8_t* p, size_t off) {
  return static_cast<uint64_t>(U32(p, off)) | static_cast<uint64_t>(U32(p, off + 4)) << 32;
}

template <size_t N>
void Copy(std::array<uint8_t, N>& dst, const uint8_t* p, size_t off) {
  std::memcpy(dst.data(), p + off, N);
}

// RequireZero fails with SNP_ERR_MBZ naming the first non-zero byte of [begin, end).
void RequireZero(const uint8_t* p, size_t begin, size_t end, const char* what) {
  for (size_t i = begin; i < end; i++) {
    if (p[i] != 0) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s: byte 0x%03zX is 0x%02X, must be zero", what, i, p[i]);
      Fail(kErrMbz, buf);
    }
  }
}

constexpr uint64_t kPolicyReserved17 = 1ULL << 17;
constexpr uint64_t kPolicyReservedHigh = ~((1ULL << 26) - 1);  // bits 63:26

}  // namespace

Report ParseReport(const uint8_t* p, size_t len) {
  if (p == nullptr || len != kReportSize) {
    Fail(kErrReportSize, "report is " + std::to_string(len) + " bytes, must be exactly 1184 (0x4A0)");
  }
  Report r;
  r.version = U32(p, 0x000);
  // 0/1 predate SNP's published layout; >5 has no published layout: refuse rather than guess.
  if (r.version < 2 || r.version > 5) {
    Fail(kErrReportVersion, "report VERSION " + std::to_string(r.version) + " is not supported (2..5)");
  }
  r.signature_algo = U32(p, 0x034);
  if (r.signature_algo != 1) {
    Fail(kErrSignatureAlgo, "SIGNATURE_ALGO " + std::to_string(r.signature_algo) + " is not 1 (ECDSA P-384 SHA-384)");
  }
  r.guest_svn = U32(p, 0x004);
  r.policy = U64(p, 0x008);
  Copy(r.family_id, p, 0x010);
  Copy(r.image_id, p, 0x020);
  r.vmpl = U32(p, 0x030);
  Copy(r.current_tcb, p, 0x038);
  r.platform_info = U64(p, 0x040);  // lenient: bit 6 is set on genuine Turin; policy decides
  r.signer_info = U32(p, 0x048);
  r.author_key_en = (r.signer_info & 1u) != 0;
  r.mask_chip_key = (r.signer_info & 2u) != 0;
  r.signing_key = (r.signer_info >> 2) & 7u;
  if ((r.signer_info >> 5) != 0) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "signer info 0x%08X has bits 31:5 set", r.signer_info);
    Fail(kErrMbz, buf);
  }
  if (r.signing_key != 0 && r.signing_key != 1 && r.signing_key != 7) {
    Fail(kErrSigningKey, "SIGNING_KEY " + std::to_string(r.signing_key) + " is reserved");
  }
  RequireZero(p, 0x04C, 0x050, "reserved after signer info");
  Copy(r.report_data, p, 0x050);
  Copy(r.measurement, p, 0x090);
  Copy(r.host_data, p, 0x0C0);
  Copy(r.id_key_digest, p, 0x0E0);
  Copy(r.author_key_digest, p, 0x110);
  Copy(r.report_id, p, 0x140);
  Copy(r.report_id_ma, p, 0x160);
  Copy(r.reported_tcb, p, 0x180);
  if (r.version >= 3) {  // v4 is laid out like v3 (its extra contents are embargoed)
    r.has_cpuid = true;
    r.cpuid_fam_id = p[0x188];
    r.cpuid_mod_id = p[0x189];
    r.cpuid_step = p[0x18A];
    RequireZero(p, 0x18B, 0x1A0, "reserved after CPUID");
  } else {
    RequireZero(p, 0x188, 0x1A0, "reserved (v2) before CHIP_ID");
  }
  Copy(r.chip_id, p, 0x1A0);
  Copy(r.committed_tcb, p, 0x1E0);
  r.current_version = FwVersion{p[0x1EA], p[0x1E9], p[0x1E8]};
  RequireZero(p, 0x1EB, 0x1EC, "reserved after CURRENT_MAJOR");
  r.committed_version = FwVersion{p[0x1EE], p[0x1ED], p[0x1EC]};
  RequireZero(p, 0x1EF, 0x1F0, "reserved after COMMITTED_MAJOR");
  Copy(r.launch_tcb, p, 0x1F0);
  if (r.version >= 5) {
    r.has_mit_vectors = true;
    r.launch_mit_vector = U64(p, 0x1F8);
    r.current_mit_vector = U64(p, 0x200);
    RequireZero(p, 0x208, 0x2A0, "reserved before SIGNATURE");
  } else {
    RequireZero(p, 0x1F8, 0x2A0, "reserved before SIGNATURE");
  }
  Copy(r.sig_r, p, 0x2A0);
  Copy(r.sig_s, p, 0x2E8);
  RequireZero(p, 0x2A0 + kP384Size, 0x2A0 + kSigComponentSize, "SIGNATURE.R padding");
  RequireZero(p, 0x2E8 + kP384Size, 0x2E8 + kSigComponentSize, "SIGNATURE.S padding");
  // Not covered by the signature: anything here would ride along unauthenticated (TAV #141).
  RequireZero(p, 0x330, kReportSize, "unsigned tail");
  if ((r.policy & kPolicyReserved17) == 0) {
    Fail(kErrPolicyBit17, "POLICY bit 17 (reserved, must be one) is zero");
  }
  if ((r.policy & kPolicyReservedHigh) != 0) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "POLICY 0x%016llX has reserved bits 63:26 set", static_cast<unsigned long long>(r.policy));
    Fail(kErrPolicyReserved, buf);
  }
  return r;
}

}  // namespace tas
