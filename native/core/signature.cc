// This file uses OpenSSL's low-level EC_KEY/ECDSA_do_verify API on purpose. It is deprecated in 3.0
// but present in every 3.x. Reason: EVP_DigestVerifyInit does a provider fetch and context set-up
// on every call, and on a cached chain that overhead is a large part of the cost. The low-level
// call is the same one `openssl speed ecdsap384` / `ecdsap256` measures. The key's curve is
// checked once, when it is prepared.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "signature.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/sha.h>

#include <algorithm>

#include "cert.h"
#include "errors.h"
#include "report.h"

namespace tas {
namespace {

EcVerifyKey Own(EC_KEY* ec) {
  return EcVerifyKey(ec, [](const ec_key_st* k) { EC_KEY_free(const_cast<EC_KEY*>(k)); });
}

struct GroupFree { void operator()(EC_GROUP* g) const { EC_GROUP_free(g); } };
struct PointFree { void operator()(EC_POINT* p) const { EC_POINT_free(p); } };
struct BnCtxFree { void operator()(BN_CTX* c) const { BN_CTX_free(c); } };  // frees started frames too
using GroupPtr = std::unique_ptr<EC_GROUP, GroupFree>;
using PointPtr = std::unique_ptr<EC_POINT, PointFree>;
using BnCtxPtr = std::unique_ptr<BN_CTX, BnCtxFree>;

std::atomic<size_t> g_vek_tables{0};

// P384WithTable is secp384r1 with OpenSSL's precomputed multiples of `generator` (the curve's own
// G when null). Null on any failure: callers fall back to the generic verify.
GroupPtr P384WithTable(const EC_POINT* generator) {
  GroupPtr g(EC_GROUP_new_by_curve_name(NID_secp384r1));
  BnCtxPtr ctx(BN_CTX_new());
  if (!g || !ctx) return nullptr;
  BN_CTX_start(ctx.get());
  if (generator != nullptr) {
    BIGNUM* order = BN_CTX_get(ctx.get());
    BIGNUM* cofactor = BN_CTX_get(ctx.get());
    if (cofactor == nullptr || BN_copy(order, EC_GROUP_get0_order(g.get())) == nullptr ||
        BN_copy(cofactor, EC_GROUP_get0_cofactor(g.get())) == nullptr ||
        EC_GROUP_set_generator(g.get(), generator, order, cofactor) != 1) {
      ERR_clear_error();
      return nullptr;
    }
  }
  if (EC_GROUP_precompute_mult(g.get(), ctx.get()) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  return g;
}

// GeneratorGroup is P384WithTable(G), made once per process (never freed: it lives as long as the
// addon's code does).
const EC_GROUP* GeneratorGroup() {
  static const EC_GROUP* const g = P384WithTable(nullptr).release();
  return g;
}

// FixedBaseMul sets out = k·(the generator of `g`) from g's table. EC_POINT_mul with a generator
// scalar alone takes OpenSSL's constant-time ladder, which ignores the table (right for secret
// scalars; u1 and u2 are public), so a zero multiple of the generator rides along as the second
// term: its wNAF is a single zero digit and adds no doublings.
bool FixedBaseMul(const EC_GROUP* g, EC_POINT* out, const BIGNUM* k, const BIGNUM* zero, BN_CTX* ctx) {
  return EC_POINT_mul(g, out, k, EC_GROUP_get0_generator(g), zero, ctx) == 1;
}

}  // namespace

// VekTable owns the group whose generator is one VEK's public point, with its table; it holds one
// unit of the process-wide budget until it is freed.
class VekTable {
 public:
  static std::shared_ptr<const VekTable> Build(const EC_POINT* q) {
    if (GeneratorGroup() == nullptr) return nullptr;
    if (g_vek_tables.fetch_add(1) >= VekVerifier::kMaxVekTables) {
      g_vek_tables.fetch_sub(1);
      return nullptr;
    }
    GroupPtr g = P384WithTable(q);
    if (!g) {
      g_vek_tables.fetch_sub(1);
      return nullptr;
    }
    return std::shared_ptr<const VekTable>(new VekTable(std::move(g)));
  }
  ~VekTable() { g_vek_tables.fetch_sub(1); }
  VekTable(const VekTable&) = delete;
  VekTable& operator=(const VekTable&) = delete;

  // Verify is ECDSA verification (SEC 1 §4.1.4) with u1·G and u2·Q from the two tables. Throws
  // SNP_ERR_INTERNAL when OpenSSL fails (allocation), never on a bad signature.
  bool Verify(const uint8_t digest[48], const uint8_t* r_le, const uint8_t* s_le) const {
    const EC_GROUP* gg = GeneratorGroup();
    const EC_GROUP* gq = group_.get();
    BnCtxPtr ctx(BN_CTX_new());
    if (!ctx) Fail(kErrInternal, "BN_CTX_new failed");
    BN_CTX_start(ctx.get());
    BIGNUM* r = BN_CTX_get(ctx.get());
    BIGNUM* s = BN_CTX_get(ctx.get());
    BIGNUM* e = BN_CTX_get(ctx.get());
    BIGNUM* w = BN_CTX_get(ctx.get());
    BIGNUM* u1 = BN_CTX_get(ctx.get());
    BIGNUM* u2 = BN_CTX_get(ctx.get());
    BIGNUM* zero = BN_CTX_get(ctx.get());
    BIGNUM* x = BN_CTX_get(ctx.get());
    if (x == nullptr || BN_lebin2bn(r_le, 48, r) == nullptr || BN_lebin2bn(s_le, 48, s) == nullptr) Fail(kErrInternal, "BIGNUM allocation failed");
    const BIGNUM* n = EC_GROUP_get0_order(gg);
    // r, s in [1, n-1] (the inputs are unsigned, so never negative).
    if (BN_is_zero(r) || BN_cmp(r, n) >= 0 || BN_is_zero(s) || BN_cmp(s, n) >= 0) return false;
    // e: SHA-384 is as long as n, so the whole digest, unreduced (BN_mod_mul reduces the product).
    BN_zero(zero);
    if (BN_bin2bn(digest, 48, e) == nullptr || BN_mod_inverse(w, s, n, ctx.get()) == nullptr ||
        BN_mod_mul(u1, e, w, n, ctx.get()) != 1 || BN_mod_mul(u2, r, w, n, ctx.get()) != 1) {
      ERR_clear_error();
      Fail(kErrInternal, "ECDSA scalar arithmetic failed");
    }
    PointPtr p(EC_POINT_new(gg));
    PointPtr pq(EC_POINT_new(gq));
    if (!p || !pq || !FixedBaseMul(gg, p.get(), u1, zero, ctx.get()) || !FixedBaseMul(gq, pq.get(), u2, zero, ctx.get()) ||
        EC_POINT_add(gg, p.get(), p.get(), pq.get(), ctx.get()) != 1) {
      ERR_clear_error();
      Fail(kErrInternal, "P-384 point arithmetic failed");
    }
    if (EC_POINT_is_at_infinity(gg, p.get()) == 1) return false;
    if (EC_POINT_get_affine_coordinates(gg, p.get(), x, nullptr, ctx.get()) != 1 || BN_nnmod(x, x, n, ctx.get()) != 1) {
      ERR_clear_error();
      Fail(kErrInternal, "P-384 affine conversion failed");
    }
    return BN_cmp(x, r) == 0;
  }

 private:
  explicit VekTable(GroupPtr g) : group_(std::move(g)) {}
  GroupPtr group_;
};

std::shared_ptr<const VekTable> VekVerifier::TableForUse() const {
  std::shared_ptr<const VekTable> t = std::atomic_load(&table_);
  if (t) return t;
  // The first report of a key verifies the generic way: a table costs about three verifies to build.
  if (uses_.fetch_add(1, std::memory_order_relaxed) == 0) return nullptr;
  bool idle = false;
  if (!building_.compare_exchange_strong(idle, true)) return nullptr;  // another thread builds it
  t = VekTable::Build(EC_KEY_get0_public_key(key_.get()));
  if (t) std::atomic_store(&table_, t);
  building_.store(false);  // without a table (budget spent), a later report tries again
  return t;
}

bool VekVerifier::Verify(const uint8_t digest[48], const uint8_t* r_le, const uint8_t* s_le, bool* used_table) const {
  std::shared_ptr<const VekTable> t = TableForUse();
  *used_table = t != nullptr;
  if (t) return t->Verify(digest, r_le, s_le);
  return EcdsaVerifyRaw(key_, digest, 48, r_le, s_le, 48, ByteOrder::kLittleEndian);
}

size_t VekVerifier::TableCount() { return g_vek_tables.load(); }

EcVerifyKey PrepareEcKey(EVP_PKEY* key, int nid, const char* code) {
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) Fail(code, "public key is not an EC key");
  EC_KEY* ec = EVP_PKEY_get1_EC_KEY(key);
  if (ec == nullptr || EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) != nid) {
    EC_KEY_free(ec);
    ERR_clear_error();
    Fail(code, std::string("EC key is not on ") + OBJ_nid2sn(nid));
  }
  return Own(ec);
}

LeafVerifyKey PrepareLeafKey(EVP_PKEY* key) {
  RequireP384(key);
  return std::make_shared<const VekVerifier>(PrepareEcKey(key, NID_secp384r1, kErrCertShape));
}

EcVerifyKey EcKeyFromRawPoint(int nid, const uint8_t* xy, size_t n, const char* code) {
  if (xy == nullptr || n == 0 || n > 132 || n % 2 != 0) Fail(code, "raw EC point has a bad length");
  EC_KEY* ec = EC_KEY_new_by_curve_name(nid);
  if (ec == nullptr) Fail(kErrInternal, "EC_KEY_new_by_curve_name failed");
  EcVerifyKey key = Own(ec);
  const EC_GROUP* group = EC_KEY_get0_group(ec);
  if (static_cast<size_t>((EC_GROUP_get_degree(group) + 7) / 8) * 2 != n) Fail(code, "raw EC point does not match the curve size");
  uint8_t oct[133];
  oct[0] = 0x04;  // uncompressed point: 04 ‖ X ‖ Y
  std::copy(xy, xy + n, oct + 1);
  // EC_KEY_oct2key rejects points off the curve and the encoding of infinity.
  if (EC_KEY_oct2key(ec, oct, n + 1, nullptr) != 1) {
    ERR_clear_error();
    Fail(code, "raw EC point is not on the curve");
  }
  return key;
}

bool EcdsaVerifyRaw(const EcVerifyKey& key, const uint8_t* digest, size_t digest_len, const uint8_t* r_raw, const uint8_t* s_raw, size_t n,
                    ByteOrder order) {
  if (!key || n == 0 || n > 128) return false;
  const int len = static_cast<int>(n);
  BnPtr r(order == ByteOrder::kBigEndian ? BN_bin2bn(r_raw, len, nullptr) : BN_lebin2bn(r_raw, len, nullptr));
  BnPtr s(order == ByteOrder::kBigEndian ? BN_bin2bn(s_raw, len, nullptr) : BN_lebin2bn(s_raw, len, nullptr));
  if (!r || !s) Fail(kErrInternal, "BN_bin2bn failed");
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (sig == nullptr) Fail(kErrInternal, "ECDSA_SIG_new failed");
  ECDSA_SIG_set0(sig, r.release(), s.release());  // sig owns r and s now
  // ECDSA_do_verify rejects r or s of zero or >= the group order.
  int rc = ECDSA_do_verify(digest, static_cast<int>(digest_len), sig, const_cast<EC_KEY*>(key.get()));
  ECDSA_SIG_free(sig);
  ERR_clear_error();
  return rc == 1;
}

bool EcdsaP256Sha256Raw(const EcVerifyKey& key, const uint8_t* msg, size_t msg_len, const uint8_t* rs64) {
  uint8_t digest[SHA256_DIGEST_LENGTH];
  if (SHA256(msg, msg_len, digest) == nullptr) Fail(kErrInternal, "SHA256 failed");
  return EcdsaVerifyRaw(key, digest, sizeof digest, rs64, rs64 + 32, 32, ByteOrder::kBigEndian);
}

bool VerifyReportSignature(const uint8_t* report, const LeafVerifyKey& key) {
  static_assert(kSigComponentSize == 72, "SNP signature components are 72 bytes");
  uint8_t digest[SHA384_DIGEST_LENGTH];
  // Always over the received bytes, never a re-serialised struct (SNP.md §1.3).
  if (SHA384(report, kReportSignedSize, digest) == nullptr) Fail(kErrInternal, "SHA384 failed");
  const uint8_t* r = report + 0x2A0;
  const uint8_t* s = report + 0x2E8;
  // P-384 r and s fill 48 of their 72 little-endian bytes; the rest must be zero (an r or s that
  // does not fit is out of range).
  bool used_table = false;
  if (!std::all_of(r + 48, r + kSigComponentSize, [](uint8_t b) { return b == 0; }) ||
      !std::all_of(s + 48, s + kSigComponentSize, [](uint8_t b) { return b == 0; }) || !key->Verify(digest, r, s, &used_table)) {
    Fail(kErrReportSignature, "report signature does not verify with the VCEK/VLEK public key");
  }
  return used_table;
}

}  // namespace tas
