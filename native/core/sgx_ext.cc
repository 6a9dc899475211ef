#include "sgx_ext.h"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cstring>
#include <set>

#include "der.h"
#include "errors.h"

namespace tas {
namespace {

constexpr const char* kSgxOid = "1.2.840.113741.1.13.1";

template <size_t N>
void OctetsInto(const DerTlv& t, std::array<uint8_t, N>& dst, const char* code, const char* what) {
  if (t.tag != der::kOctetString || t.len != N) Fail(code, std::string(what) + " is not an OCTET STRING of " + std::to_string(N) + " bytes");
  std::memcpy(dst.data(), t.value, N);
}

bool DerBool(const DerTlv& t, const char* code, const char* what) {
  if (t.tag != der::kBoolean || t.len != 1 || (t.value[0] != 0 && t.value[0] != 0xFF)) Fail(code, std::string(what) + " is not a DER BOOLEAN");
  return t.value[0] == 0xFF;
}

// Pairs walks a SEQUENCE OF SEQUENCE { OID, value } and calls f(oid-suffix-after-prefix, value).
template <typename F>
void Pairs(const DerTlv& seq, const std::string& prefix, const char* code, F f) {
  if (seq.tag != der::kSequence) Fail(code, "SGX extension: " + prefix + " is not a SEQUENCE");
  DerReader r(seq.value, seq.len, code);
  size_t count = 0;
  while (!r.AtEnd()) {
    if (++count > 64) Fail(code, "SGX extension: too many entries under " + prefix);
    DerTlv pair = r.Expect(der::kSequence, "SGX extension entry");
    DerReader pr(pair.value, pair.len, code);
    DerTlv oid = pr.Expect(der::kOid, "SGX extension entry OID");
    std::string text = DerOidText(oid, code);
    if (text.compare(0, prefix.size() + 1, prefix + ".") != 0) Fail(code, "SGX extension: OID " + text + " is not under " + prefix);
    DerTlv value = pr.Next();
    if (!pr.AtEnd()) Fail(code, "SGX extension: entry " + text + " has more than one value");
    f(text.substr(prefix.size() + 1), value);
  }
}

}  // namespace

SgxExtension DecodeSgxExtension(const uint8_t* p, size_t n, const char* code) {
  if (p == nullptr || n == 0 || n > 4096) Fail(code, "SGX extension has a bad size");
  DerReader top(p, n, code);
  DerTlv root = top.Expect(der::kSequence, "SGX extension");
  if (!top.AtEnd()) Fail(code, "SGX extension: bytes after the outer SEQUENCE");
  SgxExtension e;
  std::set<std::string> seen;
  std::set<std::string> tcb_seen;
  const std::string base = kSgxOid;
  auto once = [&](std::set<std::string>& s, const std::string& k) {
    if (!s.insert(k).second) Fail(code, "SGX extension: " + k + " appears twice");
  };
  Pairs(root, base, code, [&](const std::string& k, const DerTlv& v) {
    once(seen, k);
    if (k == "1") {
      OctetsInto(v, e.ppid, code, "PPID");
    } else if (k == "2") {
      Pairs(v, base + ".2", code, [&](const std::string& c, const DerTlv& cv) {
        once(tcb_seen, c);
        char* endp = nullptr;
        long idx = std::strtol(c.c_str(), &endp, 10);
        if (endp == c.c_str() || *endp != '\0' || idx < 1 || idx > 18) Fail(code, "SGX extension: unknown TCB entry " + c);
        if (idx <= 16) {
          e.tcb_comp_svn[static_cast<size_t>(idx - 1)] = static_cast<uint8_t>(DerUnsigned(cv, 255, code, "SGX TCB component SVN"));
        } else if (idx == 17) {
          e.pce_svn = static_cast<uint16_t>(DerUnsigned(cv, 65535, code, "PCESVN"));
        } else {
          OctetsInto(cv, e.cpu_svn, code, "CPUSVN");
        }
      });
      if (tcb_seen.size() != 18) Fail(code, "SGX extension: TCB has " + std::to_string(tcb_seen.size()) + " of 18 entries");
    } else if (k == "3") {
      OctetsInto(v, e.pce_id, code, "PCE-ID");
    } else if (k == "4") {
      OctetsInto(v, e.fmspc, code, "FMSPC");
    } else if (k == "5") {
      if (v.tag != der::kEnumerated) Fail(code, "SGX type is not ENUMERATED");
      e.sgx_type = static_cast<int>(DerUnsigned(v, 2, code, "SGX type"));
    } else if (k == "6") {
      std::array<uint8_t, 16> id{};
      OctetsInto(v, id, code, "PlatformInstanceID");
      e.platform_instance_id = id;
    } else if (k == "7") {
      std::set<std::string> cfg_seen;
      Pairs(v, base + ".7", code, [&](const std::string& c, const DerTlv& cv) {
        once(cfg_seen, c);
        if (c == "1") {
          e.dynamic_platform = DerBool(cv, code, "dynamicPlatform");
        } else if (c == "2") {
          e.cached_keys = DerBool(cv, code, "cachedKeys");
        } else if (c == "3") {
          e.smt_enabled = DerBool(cv, code, "SMTEnabled");
        } else {
          Fail(code, "SGX extension: unknown configuration entry " + c);
        }
      });
    } else {
      Fail(code, "SGX extension: unknown entry " + base + "." + k);
    }
  });
  for (const char* k : {"1", "2", "3", "4", "5"}) {
    if (!seen.count(k)) Fail(code, std::string("SGX extension: required entry ") + kSgxOid + "." + k + " is missing");
  }
  return e;
}

SgxExtension SgxExtensionOf(const X509* cert, const char* code) {
  ASN1_OBJECT* obj = OBJ_txt2obj(kSgxOid, 1);
  if (obj == nullptr) Fail(kErrInternal, "OBJ_txt2obj failed");
  int idx = X509_get_ext_by_OBJ(cert, obj, -1);
  int again = idx >= 0 ? X509_get_ext_by_OBJ(cert, obj, idx) : -1;
  ASN1_OBJECT_free(obj);
  ERR_clear_error();
  if (idx < 0) Fail(code, "certificate has no SGX extension (1.2.840.113741.1.13.1)");
  if (again >= 0) Fail(code, "certificate has the SGX extension twice");
  X509_EXTENSION* ext = X509_get_ext(cert, idx);
  const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext);
  return DecodeSgxExtension(ASN1_STRING_get0_data(data), static_cast<size_t>(ASN1_STRING_length(data)), code);
}

std::vector<Bytes> SplitPemChain(const uint8_t* p, size_t n, size_t want, const char* code) {
  static const std::string kBegin = "-----BEGIN CERTIFICATE-----";
  static const std::string kEnd = "-----END CERTIFICATE-----";
  if (p == nullptr || n == 0 || n > kMaxPemChain) Fail(code, "PEM chain has a bad size");
  if (p[n - 1] == 0) n--;  // one terminating NUL, as C-string buffers carry it
  std::string s(reinterpret_cast<const char*>(p), n);
  std::vector<Bytes> out;
  size_t pos = 0;
  auto only_space = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; i++) {
      if (!std::isspace(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
  };
  while (true) {
    size_t b = s.find(kBegin, pos);
    if (b == std::string::npos) {
      if (!only_space(pos, s.size())) Fail(code, "PEM chain has bytes that are not certificates");
      break;
    }
    if (!only_space(pos, b)) Fail(code, "PEM chain has bytes that are not certificates");
    size_t e = s.find(kEnd, b);
    if (e == std::string::npos) Fail(code, "PEM chain: unterminated certificate");
    e += kEnd.size();
    if (out.size() == want) Fail(code, "PEM chain has more than " + std::to_string(want) + " certificates");
    out.emplace_back(p + b, p + e);
    pos = e;
  }
  if (out.size() != want) Fail(code, "PEM chain has " + std::to_string(out.size()) + " certificates, expected " + std::to_string(want));
  return out;
}

}  // namespace tas
