// N-API glue only: argument conversion, AsyncWorker batons, JS result shaping. All parsing and
// crypto lives in core/ (callable without Node, which is what the fuzzers use).
//
// Context-aware: the chain cache hangs off the addon instance (napi instance data), so every
// worker_thread / environment has its own and nothing is global. Workers hold a shared_ptr to the
// cache, so a job still in flight when its environment goes away keeps the cache alive.
#include <napi.h>
#include <openssl/crypto.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/cert.h"
#include "core/chain.h"
#include "core/crl.h"
#include "core/errors.h"
#include "core/nvidia.h"
#include "core/report.h"
#include "core/tdx_quote.h"
#include "core/tdx_verify.h"
#include "core/verify.h"
#include "core/wrap.h"

namespace {

using tas::Bytes;
using tas::SnpError;

constexpr size_t kMaxReportInput = 4096;  // anything larger is rejected before copying

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& detail) {
  Napi::Error e = Napi::Error::New(env, detail);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

Napi::Value Buf(Napi::Env env, const uint8_t* p, size_t n) { return Napi::Buffer<uint8_t>::Copy(env, p, n); }
template <size_t N>
Napi::Value Buf(Napi::Env env, const std::array<uint8_t, N>& a) { return Buf(env, a.data(), N); }
Napi::Value Date(Napi::Env env, int64_t seconds) { return Napi::Date::New(env, static_cast<double>(seconds) * 1000.0); }

// View checks that v is a Uint8Array of at most `max` bytes and returns its bytes in place (no
// copy: key wrapping reads the secret here, and a copy would leave it in freed heap memory). Only
// for synchronous calls: the bytes are read before the call returns.
std::pair<const uint8_t*, size_t> View(const Napi::Value& v, const char* what, size_t max) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    tas::Fail(tas::kErrArgument, std::string(what) + " must be a Buffer");
  }
  auto arr = v.As<Napi::Uint8Array>();
  if (arr.ByteLength() > max) tas::Fail(tas::kErrArgument, std::string(what) + " is larger than " + std::to_string(max) + " bytes");
  return {arr.Data(), arr.ByteLength()};
}

// ToBytes is View copied: for inputs a pool job reads after the call has returned.
Bytes ToBytes(const Napi::Value& v, const char* what, size_t max) {
  auto b = View(v, what, max);
  return Bytes(b.first, b.first + b.second);
}

// Flag reads an optional boolean option: true only when the member is the boolean true.
bool Flag(const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  return v.IsBoolean() && v.As<Napi::Boolean>().Value();
}

int64_t ToSeconds(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) tas::Fail(tas::kErrArgument, std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < 0 || d > 253402300799.0 || std::floor(d) != d) {
    tas::Fail(tas::kErrArgument, std::string(what) + " must be whole seconds since the epoch (0..9999-12-31)");
  }
  return static_cast<int64_t>(d);
}

Napi::Object TcbVersion(Napi::Env env, const tas::FwVersion& v) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("major", v.major);
  o.Set("minor", v.minor);
  o.Set("build", v.build);
  return o;
}

Napi::Object ReportToJs(Napi::Env env, const tas::Report& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", r.version);
  o.Set("guestSvn", r.guest_svn);
  o.Set("policy", Napi::BigInt::New(env, r.policy));
  o.Set("familyId", Buf(env, r.family_id));
  o.Set("imageId", Buf(env, r.image_id));
  o.Set("vmpl", r.vmpl);
  o.Set("signatureAlgo", r.signature_algo);
  o.Set("currentTcb", Buf(env, r.current_tcb));
  o.Set("platformInfo", Napi::BigInt::New(env, r.platform_info));
  o.Set("signerInfo", r.signer_info);
  o.Set("authorKeyEn", r.author_key_en);
  o.Set("maskChipKey", r.mask_chip_key);
  o.Set("signingKey", r.signing_key);
  o.Set("reportData", Buf(env, r.report_data));
  o.Set("measurement", Buf(env, r.measurement));
  o.Set("hostData", Buf(env, r.host_data));
  o.Set("idKeyDigest", Buf(env, r.id_key_digest));
  o.Set("authorKeyDigest", Buf(env, r.author_key_digest));
  o.Set("reportId", Buf(env, r.report_id));
  o.Set("reportIdMa", Buf(env, r.report_id_ma));
  o.Set("reportedTcb", Buf(env, r.reported_tcb));
  if (r.has_cpuid) {
    Napi::Object c = Napi::Object::New(env);
    c.Set("family", r.cpuid_fam_id);
    c.Set("model", r.cpuid_mod_id);
    c.Set("stepping", r.cpuid_step);
    o.Set("cpuid", c);
  }
  o.Set("chipId", Buf(env, r.chip_id));
  o.Set("committedTcb", Buf(env, r.committed_tcb));
  o.Set("currentVersion", TcbVersion(env, r.current_version));
  o.Set("committedVersion", TcbVersion(env, r.committed_version));
  o.Set("launchTcb", Buf(env, r.launch_tcb));
  if (r.has_mit_vectors) {
    o.Set("launchMitVector", Napi::BigInt::New(env, r.launch_mit_vector));
    o.Set("currentMitVector", Napi::BigInt::New(env, r.current_mit_vector));
  }
  return o;
}

// The byte fields of a report in the order of the packed form below (name, bytes). ReportToJs
// builds one Buffer per field; the packed form copies them all into ONE Buffer and lets the JS
// wrapper cut views (src/native parseReport): one allocation instead of fifteen per request (#16).
template <typename F>
void ForEachReportBytes(const tas::Report& r, F f) {
  f("familyId", r.family_id.data(), r.family_id.size());
  f("imageId", r.image_id.data(), r.image_id.size());
  f("currentTcb", r.current_tcb.data(), r.current_tcb.size());
  f("reportData", r.report_data.data(), r.report_data.size());
  f("measurement", r.measurement.data(), r.measurement.size());
  f("hostData", r.host_data.data(), r.host_data.size());
  f("idKeyDigest", r.id_key_digest.data(), r.id_key_digest.size());
  f("authorKeyDigest", r.author_key_digest.data(), r.author_key_digest.size());
  f("reportId", r.report_id.data(), r.report_id.size());
  f("reportIdMa", r.report_id_ma.data(), r.report_id_ma.size());
  f("reportedTcb", r.reported_tcb.data(), r.reported_tcb.size());
  f("chipId", r.chip_id.data(), r.chip_id.size());
  f("committedTcb", r.committed_tcb.data(), r.committed_tcb.size());
  f("launchTcb", r.launch_tcb.data(), r.launch_tcb.size());
}

// ReportBytesLayout is [[name, offset, length], ...] of the packed form (the same for every report).
Napi::Array ReportBytesLayout(Napi::Env env) {
  Napi::Array a = Napi::Array::New(env);
  size_t off = 0;
  uint32_t i = 0;
  ForEachReportBytes(tas::Report{}, [&](const char* name, const uint8_t*, size_t n) {
    Napi::Array e = Napi::Array::New(env, 3);
    e.Set(0u, name);
    e.Set(1u, static_cast<double>(off));
    e.Set(2u, static_cast<double>(n));
    a.Set(i++, e);
    off += n;
  });
  return a;
}

// ReportToJsPacked: the scalar fields as in ReportToJs, in a flat array of fixed positions (the JS
// wrapper builds the object with literals: a named property set from C++ internalises its name on
// every call, ~1.5 % of a cycle for this object alone, #16), and the byte fields packed into ONE
// Buffer at the end. Positions (src/native/index.ts parseReport reads them):
//  0 version, 1 guestSvn, 2 policy, 3 vmpl, 4 signatureAlgo, 5 platformInfo, 6 signerInfo,
//  7 authorKeyEn, 8 maskChipKey, 9 signingKey, 10 hasCpuid, 11..13 CPUID family/model/stepping,
//  14..16 currentVersion major/minor/build, 17..19 committedVersion, 20 hasMitVectors,
//  21 launchMitVector, 22 currentMitVector, 23 bytes.
Napi::Array ReportToJsPacked(Napi::Env env, const tas::Report& r) {
  Napi::Array a = Napi::Array::New(env, 24);
  uint32_t i = 0;
  const auto put = [&](Napi::Value v) { a.Set(i++, v); };
  const auto num = [&](double v) { put(Napi::Number::New(env, v)); };
  num(r.version);
  num(r.guest_svn);
  put(Napi::BigInt::New(env, r.policy));
  num(r.vmpl);
  num(r.signature_algo);
  put(Napi::BigInt::New(env, r.platform_info));
  num(r.signer_info);
  put(Napi::Boolean::New(env, r.author_key_en));
  put(Napi::Boolean::New(env, r.mask_chip_key));
  num(r.signing_key);
  put(Napi::Boolean::New(env, r.has_cpuid));
  num(r.cpuid_fam_id);
  num(r.cpuid_mod_id);
  num(r.cpuid_step);
  for (const tas::FwVersion* v : {&r.current_version, &r.committed_version}) {
    num(v->major);
    num(v->minor);
    num(v->build);
  }
  put(Napi::Boolean::New(env, r.has_mit_vectors));
  put(Napi::BigInt::New(env, r.launch_mit_vector));
  put(Napi::BigInt::New(env, r.current_mit_vector));
  size_t total = 0;
  ForEachReportBytes(r, [&](const char*, const uint8_t*, size_t n) { total += n; });
  Napi::Buffer<uint8_t> packed = Napi::Buffer<uint8_t>::New(env, total);
  size_t off = 0;
  ForEachReportBytes(r, [&](const char*, const uint8_t* p, size_t n) {
    std::memcpy(packed.Data() + off, p, n);
    off += n;
  });
  put(packed);
  return a;
}

Napi::Object CertInfoToJs(Napi::Env env, const tas::CertInfo& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("subjectCN", c.subject_cn);
  o.Set("issuerCN", c.issuer_cn);
  o.Set("serialHex", c.serial_hex);
  o.Set("notBefore", Date(env, c.not_before));
  o.Set("notAfter", Date(env, c.not_after));
  o.Set("sha256", Buf(env, c.sha256));
  o.Set("spkiSha256", Buf(env, c.spki_sha256));
  o.Set("der", Buf(env, c.der.data(), c.der.size()));
  return o;
}

Napi::Object VekToJs(Napi::Env env, const tas::VekInfo& v) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", v.kind == tas::VekKind::kVcek ? "VCEK" : "VLEK");
  o.Set("structVersion", v.struct_version);
  o.Set("productName", v.product_name);
  Napi::Object spl = Napi::Object::New(env);
  spl.Set("bl", v.spl.bl);
  spl.Set("tee", v.spl.tee);
  spl.Set("snp", v.spl.snp);
  if (v.spl.spl4) spl.Set("spl4", *v.spl.spl4);
  if (v.spl.spl5) spl.Set("spl5", *v.spl.spl5);
  if (v.spl.spl6) spl.Set("spl6", *v.spl.spl6);
  if (v.spl.spl7) spl.Set("spl7", *v.spl.spl7);
  spl.Set("ucode", v.spl.ucode);
  if (v.spl.fmc) spl.Set("fmc", *v.spl.fmc);
  o.Set("spl", spl);
  if (v.hw_id) o.Set("hwId", Buf(env, v.hw_id->data(), v.hw_id->size()));
  if (v.csp_id) o.Set("cspId", *v.csp_id);
  o.Set("subjectCN", v.cert.subject_cn);
  o.Set("issuerCN", v.cert.issuer_cn);
  o.Set("notBefore", Date(env, v.cert.not_before));
  o.Set("notAfter", Date(env, v.cert.not_after));
  o.Set("serialHex", v.cert.serial_hex);
  o.Set("sha256", Buf(env, v.cert.sha256));
  o.Set("spkiSha256", Buf(env, v.cert.spki_sha256));
  return o;
}

Napi::Array ChecksToJs(Napi::Env env, const std::vector<tas::Check>& checks) {
  Napi::Array a = Napi::Array::New(env, checks.size());
  for (size_t i = 0; i < checks.size(); i++) {
    Napi::Object c = Napi::Object::New(env);
    c.Set("name", checks[i].name);
    c.Set("ok", checks[i].ok);
    c.Set("detail", checks[i].detail);
    a.Set(static_cast<uint32_t>(i), c);
  }
  return a;
}

tas::ChainInput ChainFromJs(const Napi::Object& o) {
  tas::ChainInput in;
  Napi::Value anchors = o.Get("anchors");
  if (!anchors.IsArray()) tas::Fail(tas::kErrArgument, "anchors must be an array of Buffers");
  Napi::Array arr = anchors.As<Napi::Array>();
  if (arr.Length() == 0 || arr.Length() > tas::kMaxAnchors) tas::Fail(tas::kErrArgument, "1..8 anchors required");
  for (uint32_t i = 0; i < arr.Length(); i++) in.anchors.push_back(ToBytes(arr.Get(i), "anchor", tas::kMaxCertSize));
  in.intermediate = ToBytes(o.Get("intermediate"), "intermediate", tas::kMaxCertSize);
  in.leaf = ToBytes(o.Get("leaf"), "leaf", tas::kMaxCertSize);
  Napi::Value product = o.Get("product");
  if (!product.IsString()) tas::Fail(tas::kErrArgument, "product must be a string");
  in.product = product.As<Napi::String>().Utf8Value();
  Napi::Value kind = o.Get("kind");
  std::string k = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : "";
  if (k == "VCEK") {
    in.kind = tas::VekKind::kVcek;
  } else if (k == "VLEK") {
    in.kind = tas::VekKind::kVlek;
  } else {
    tas::Fail(tas::kErrArgument, "kind must be 'VCEK' or 'VLEK'");
  }
  in.at = ToSeconds(o.Get("atSeconds"), "atSeconds");
  return in;
}

// Worker runs one core job on the libuv pool. Inputs were copied into the baton on the JS thread;
// Execute touches no JS; errors keep their stable code and become a JS Error in OnError.
template <typename Job, typename Result>
class Worker : public Napi::AsyncWorker {
 public:
  using Shape = Napi::Value (*)(Napi::Env, const Result&);
  Worker(Napi::Env env, Job job, Shape shape)
      : Napi::AsyncWorker(env, "tas_native"), deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)), shape_(shape) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      result_ = job_();
    } catch (const SnpError& e) {
      code_ = e.code();
      SetError(e.detail());
    } catch (const std::exception& e) {
      code_ = tas::kErrInternal;
      SetError(e.what());
    }
  }
  // When the environment is being torn down (worker_threads terminate() with jobs in flight), no
  // JS value can be created any more: settling the promise then fails, and that must not escape
  // as a C++ exception (it would abort the whole process). Nobody is left to observe the result.
  void OnOK() override {
    try {
      deferred_.Resolve(shape_(Env(), result_));
    } catch (...) {
    }
  }
  void OnError(const Napi::Error& e) override {
    try {
      deferred_.Reject(MakeError(Env(), code_.empty() ? tas::kErrInternal : code_, e.Message()).Value());
    } catch (...) {
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  Job job_;
  Shape shape_;
  Result result_{};
  std::string code_;
};

template <typename Job, typename Result>
Napi::Value Queue(Napi::Env env, Job job, Napi::Value (*shape)(Napi::Env, const Result&)) {
  auto* w = new Worker<Job, Result>(env, std::move(job), shape);
  Napi::Promise p = w->Promise();
  w->Queue();  // the worker deletes itself after OnOK/OnError
  return p;
}

// SnpJob carries a verification with the caller's choice of result shape (as TdxJob does): the
// per-request path parsed the report itself (`omitReport`: its ~25 Buffers are a third of a cached
// verification), keeps VEK descriptions by leaf SHA-256 (`omitVek`: some twenty members less) and
// reads no passed checks (`omitChecks`: `checks` is empty; a failure rejects anyway) (#16).
struct SnpJob {
  tas::VerifyOutcome out;
  bool with_report = true;
  bool with_vek = true;
  bool with_checks = true;
};

Napi::Value SnpOutcomeToJs(Napi::Env env, const SnpJob& job) {
  const tas::VerifyOutcome& out = job.out;
  const tas::ChainEntry& e = *out.chain.entry;
  if (!job.with_report && !job.with_vek) {
    // The per-request form, as a flat array (the JS wrapper builds the object with a literal; named
    // property sets from C++ internalise each name on every call, #16): 0 leafSha256,
    // 1 anchorSha256, 2 intermediateSha256, 3 intermediateSerialHex, 4 chainCached,
    // 5/6 CRL thisUpdate/nextUpdate (undefined without a CRL), 7 checks.
    Napi::Array a = Napi::Array::New(env, 8);
    a.Set(0u, Buf(env, e.vek.cert.sha256));
    a.Set(1u, Buf(env, e.anchor.sha256));
    a.Set(2u, Buf(env, e.intermediate.sha256));
    a.Set(3u, Napi::String::New(env, e.intermediate.serial_hex));
    a.Set(4u, Napi::Boolean::New(env, out.chain.cached));
    a.Set(5u, out.crl ? Date(env, out.crl->this_update) : env.Undefined());
    a.Set(6u, out.crl ? Date(env, out.crl->next_update) : env.Undefined());
    a.Set(7u, job.with_checks ? ChecksToJs(env, out.checks) : Napi::Array::New(env, 0));
    return a;
  }
  // The object form: omitVek and omitChecks come only with omitReport (the array above), so the
  // VEK description and the checks are always here.
  Napi::Object o = Napi::Object::New(env);
  o.Set("vek", VekToJs(env, e.vek));
  o.Set("anchorSha256", Buf(env, e.anchor.sha256));
  o.Set("intermediateSha256", Buf(env, e.intermediate.sha256));
  o.Set("intermediateSerialHex", e.intermediate.serial_hex);
  o.Set("chainCached", out.chain.cached);
  o.Set("vekTable", out.vek_table);
  if (out.crl) {
    Napi::Object c = Napi::Object::New(env);
    c.Set("thisUpdate", Date(env, out.crl->this_update));
    c.Set("nextUpdate", Date(env, out.crl->next_update));
    o.Set("crl", c);
  }
  o.Set("checks", ChecksToJs(env, out.checks));
  if (job.with_report) o.Set("report", ReportToJs(env, out.report));
  return o;
}

Napi::Value ChainOutcomeToJs(Napi::Env env, const tas::ChainOutcome& out) {
  const tas::ChainEntry& e = *out.entry;
  Napi::Object o = Napi::Object::New(env);
  o.Set("vek", VekToJs(env, e.vek));
  o.Set("anchorSha256", Buf(env, e.anchor.sha256));
  o.Set("intermediateSha256", Buf(env, e.intermediate.sha256));
  o.Set("intermediateSerialHex", e.intermediate.serial_hex);
  o.Set("cached", out.cached);
  return o;
}

Napi::Value CrlResultToJs(Napi::Env env, const tas::CrlResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("thisUpdate", Date(env, r.this_update));
  o.Set("nextUpdate", Date(env, r.next_update));
  Napi::Array a = Napi::Array::New(env, r.revoked.size());
  for (size_t i = 0; i < r.revoked.size(); i++) a.Set(static_cast<uint32_t>(i), r.revoked[i]);
  o.Set("revoked", a);
  return o;
}

// --- NVIDIA GPU evidence (core/spdm.h, core/nvidia.h) ---------------------------------------------

Napi::Object SpdmToJs(Napi::Env env, const tas::SpdmEvidence& e) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Object req = Napi::Object::New(env);
  req.Set("version", e.req_version);
  req.Set("param1", e.req_param1);
  req.Set("param2", e.req_param2);
  req.Set("slot", e.req_slot);
  req.Set("nonce", Buf(env, e.req_nonce));
  o.Set("request", req);
  o.Set("version", e.version);
  o.Set("param1", e.param1);
  o.Set("param2", e.param2);
  // Every block and opaque value is a view of ONE copied Buffer: a Hopper report has ~64 blocks
  // and ~20 opaque fields, and one backing store per value made building this result cost about
  // as much as the signature check. Property names are created once.
  size_t total = 0;
  for (const auto& b : e.blocks) total += b.value.size();
  for (const auto& f : e.opaque) total += f.value.size();
  Bytes all;
  all.reserve(total);
  for (const auto& b : e.blocks) all.insert(all.end(), b.value.begin(), b.value.end());
  for (const auto& f : e.opaque) all.insert(all.end(), f.value.begin(), f.value.end());
  Napi::Buffer<uint8_t> whole = Napi::Buffer<uint8_t>::Copy(env, all.data(), all.size());
  Napi::Function subarray = whole.Get("subarray").As<Napi::Function>();
  size_t off = 0;
  auto view = [&](size_t n) {
    Napi::Value v = subarray.Call(whole, {Napi::Number::New(env, static_cast<double>(off)), Napi::Number::New(env, static_cast<double>(off + n))});
    off += n;
    return v;
  };
  Napi::String kIndex = Napi::String::New(env, "index"), kValueType = Napi::String::New(env, "valueType"), kValue = Napi::String::New(env, "value"),
               kType = Napi::String::New(env, "type");
  Napi::Array blocks = Napi::Array::New(env, e.blocks.size());
  for (size_t i = 0; i < e.blocks.size(); i++) {
    Napi::Object b = Napi::Object::New(env);
    b.Set(kIndex, Napi::Number::New(env, e.blocks[i].index));
    b.Set(kValueType, Napi::Number::New(env, e.blocks[i].value_type));
    b.Set(kValue, view(e.blocks[i].value.size()));
    blocks.Set(static_cast<uint32_t>(i), b);
  }
  o.Set("blocks", blocks);
  o.Set("responderNonce", Buf(env, e.resp_nonce));
  Napi::Array opaque = Napi::Array::New(env, e.opaque.size());
  for (size_t i = 0; i < e.opaque.size(); i++) {
    Napi::Object f = Napi::Object::New(env);
    f.Set(kType, Napi::Number::New(env, e.opaque[i].type));
    f.Set(kValue, view(e.opaque[i].value.size()));
    opaque.Set(static_cast<uint32_t>(i), f);
  }
  o.Set("opaque", opaque);
  o.Set("driverVersion", e.driver_version);
  o.Set("vbiosVersion", e.vbios_version);
  if (!e.fwid.empty()) o.Set("fwid", Buf(env, e.fwid.data(), e.fwid.size()));
  o.Set("signature", Buf(env, e.signature));
  o.Set("signedLength", static_cast<double>(e.signed_len));
  o.Set("padding", static_cast<double>(e.padding));
  return o;
}

Napi::Value GpuDeviceToJs(Napi::Env env, const tas::GpuDeviceResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("spdm", SpdmToJs(env, r.spdm));
  Napi::Array certs = Napi::Array::New(env, r.certs.size());
  for (size_t i = 0; i < r.certs.size(); i++) certs.Set(static_cast<uint32_t>(i), CertInfoToJs(env, r.certs[i]));
  o.Set("certs", certs);
  o.Set("ueid", r.leaf_serial_dec);
  o.Set("hwmodel", r.hwmodel);
  o.Set("fwidSource", r.fwid_source);
  if (!r.cert_fwid.empty()) o.Set("certFwid", Buf(env, r.cert_fwid.data(), r.cert_fwid.size()));
  o.Set("chainOk", r.chain_ok);
  o.Set("signatureOk", r.signature_ok);
  o.Set("fwidOk", r.fwid_ok);
  o.Set("chainCached", r.chain_cached);
  o.Set("checks", ChecksToJs(env, r.checks));
  return o;
}

Napi::Value OcspResultToJs(Napi::Env env, const tas::OcspResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("status", r.status);
  if (r.revocation_reason >= 0) o.Set("revocationReason", r.revocation_reason);
  o.Set("thisUpdate", Date(env, r.this_update));
  o.Set("nextUpdate", Date(env, r.next_update));
  o.Set("producedAt", Date(env, r.produced_at));
  if (r.revoked_at) o.Set("revokedAt", Date(env, r.revoked_at));
  return o;
}

std::vector<Bytes> BufferList(const Napi::Value& v, const char* what, size_t max_items, size_t max_bytes, bool required) {
  if (!v.IsArray()) tas::Fail(tas::kErrArgument, std::string(what) + " must be an array of Buffers");
  Napi::Array arr = v.As<Napi::Array>();
  if ((required && arr.Length() == 0) || arr.Length() > max_items) tas::Fail(tas::kErrArgument, std::string(what) + ": wrong number of entries");
  std::vector<Bytes> out;
  for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(ToBytes(arr.Get(i), what, max_bytes));
  return out;
}


// ---- Intel TDX -------------------------------------------------------------------------------

Napi::Value U64Le(Napi::Env env, const std::array<uint8_t, 8>& a) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | a[static_cast<size_t>(i)];
  return Napi::BigInt::New(env, v);
}

Napi::Object SpanToJs(Napi::Env env, const tas::QuoteSpan& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("offset", static_cast<double>(s.offset));
  o.Set("length", static_cast<double>(s.length));
  return o;
}

Napi::Value TdxQuoteToJs(Napi::Env env, const tas::TdxQuote& q, const uint8_t* raw) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Object h = Napi::Object::New(env);
  h.Set("version", q.version);
  h.Set("attestationKeyType", q.att_key_type);
  h.Set("teeType", q.tee_type);
  h.Set("reserved", Buf(env, q.header_reserved));
  h.Set("qeVendorId", Buf(env, q.qe_vendor_id));
  h.Set("userData", Buf(env, q.user_data));
  o.Set("header", h);
  o.Set("version", q.version);
  o.Set("bodyType", q.body_type);
  o.Set("bodySize", q.body_size);
  const tas::TdReport& r = q.body;
  Napi::Object b = Napi::Object::New(env);
  b.Set("teeTcbSvn", Buf(env, r.tee_tcb_svn));
  b.Set("mrSeam", Buf(env, r.mr_seam));
  b.Set("mrSignerSeam", Buf(env, r.mr_signer_seam));
  b.Set("seamAttributes", Buf(env, r.seam_attributes));
  b.Set("tdAttributes", Buf(env, r.td_attributes));
  b.Set("tdAttributesValue", U64Le(env, r.td_attributes));
  b.Set("xfam", Buf(env, r.xfam));
  b.Set("xfamValue", U64Le(env, r.xfam));
  b.Set("mrTd", Buf(env, r.mr_td));
  b.Set("mrConfigId", Buf(env, r.mr_config_id));
  b.Set("mrOwner", Buf(env, r.mr_owner));
  b.Set("mrOwnerConfig", Buf(env, r.mr_owner_config));
  Napi::Array rtmr = Napi::Array::New(env, 4);
  for (uint32_t i = 0; i < 4; i++) rtmr.Set(i, Buf(env, r.rtmr[i]));
  b.Set("rtmr", rtmr);
  b.Set("reportData", Buf(env, r.report_data));
  if (r.is_td15) {
    b.Set("teeTcbSvn2", Buf(env, r.tee_tcb_svn2));
    b.Set("mrServiceTd", Buf(env, r.mr_service_td));
  }
  o.Set("body", b);
  o.Set("signature", Buf(env, q.signature));
  o.Set("attestationKey", Buf(env, q.attestation_key));
  o.Set("certificationDataType", q.cert_data_type);
  const tas::QeReport& e = q.qe_report;
  Napi::Object qe = Napi::Object::New(env);
  qe.Set("raw", Buf(env, raw + q.qe_report_span.offset, q.qe_report_span.length));
  qe.Set("cpuSvn", Buf(env, e.cpu_svn));
  qe.Set("miscSelect", e.misc_select);
  qe.Set("attributes", Buf(env, e.attributes));
  qe.Set("mrEnclave", Buf(env, e.mr_enclave));
  qe.Set("mrSigner", Buf(env, e.mr_signer));
  qe.Set("isvProdId", e.isv_prod_id);
  qe.Set("isvSvn", e.isv_svn);
  qe.Set("reportData", Buf(env, e.report_data));
  o.Set("qeReport", qe);
  o.Set("qeReportSignature", Buf(env, q.qe_report_signature));
  o.Set("qeAuthData", Buf(env, raw + q.qe_auth_data.offset, q.qe_auth_data.length));
  o.Set("innerCertificationDataType", q.inner_cert_data_type);
  o.Set("pckChain", Buf(env, raw + q.pck_chain.offset, q.pck_chain.length));
  o.Set("trailingBytes", static_cast<double>(q.trailing));
  Napi::Object sp = Napi::Object::New(env);
  sp.Set("header", SpanToJs(env, q.header));
  if (q.version == 5) sp.Set("bodyDescriptor", SpanToJs(env, q.body_descriptor));
  sp.Set("body", SpanToJs(env, q.body_span));
  sp.Set("signedRegion", SpanToJs(env, q.signed_region));
  sp.Set("signatureData", SpanToJs(env, q.signature_data));
  sp.Set("qeReport", SpanToJs(env, q.qe_report_span));
  sp.Set("qeReportSignature", SpanToJs(env, q.qe_report_signature_span));
  sp.Set("qeAuthData", SpanToJs(env, q.qe_auth_data));
  sp.Set("pckChain", SpanToJs(env, q.pck_chain));
  sp.Set("trailing", SpanToJs(env, q.trailing_span));
  o.Set("offsets", sp);
  return o;
}

Napi::Object CertSummaryToJs(Napi::Env env, const tas::CertSummary& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("subjectCN", c.subject_cn);
  o.Set("issuerCN", c.issuer_cn);
  o.Set("serialHex", c.serial_hex);
  o.Set("notBefore", Date(env, c.not_before));
  o.Set("notAfter", Date(env, c.not_after));
  o.Set("sha256", Buf(env, c.sha256));
  o.Set("spkiSha256", Buf(env, c.spki_sha256));
  return o;
}

Napi::Object SgxToJs(Napi::Env env, const tas::SgxExtension& x) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("ppid", Buf(env, x.ppid));
  Napi::Array comps = Napi::Array::New(env, 16);
  for (uint32_t i = 0; i < 16; i++) comps.Set(i, x.tcb_comp_svn[i]);
  o.Set("tcbComponents", comps);
  o.Set("pceSvn", x.pce_svn);
  o.Set("cpuSvn", Buf(env, x.cpu_svn));
  o.Set("pceId", Buf(env, x.pce_id));
  o.Set("fmspc", Buf(env, x.fmspc));
  o.Set("sgxType", x.sgx_type);
  if (x.platform_instance_id) o.Set("platformInstanceId", Buf(env, *x.platform_instance_id));
  if (x.dynamic_platform || x.cached_keys || x.smt_enabled) {
    Napi::Object c = Napi::Object::New(env);
    if (x.dynamic_platform) c.Set("dynamicPlatform", *x.dynamic_platform);
    if (x.cached_keys) c.Set("cachedKeys", *x.cached_keys);
    if (x.smt_enabled) c.Set("smtEnabled", *x.smt_enabled);
    o.Set("configuration", c);
  }
  return o;
}

Napi::Object WindowToJs(Napi::Env env, const tas::CrlWindow& w) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("thisUpdate", Date(env, w.this_update));
  o.Set("nextUpdate", Date(env, w.next_update));
  return o;
}

Napi::Object SignedJsonToJs(Napi::Env env, const tas::SignedJsonEntry& e) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("signer", CertSummaryToJs(env, e.signer));
  o.Set("rootSha256", Buf(env, e.root.sha256));
  return o;
}

struct TdxJob {
  tas::TdxVerifyOutcome out;
  std::shared_ptr<const tas::Bytes> quote;  // for the raw slices of the result
  bool omit_quote = false;
  bool lean = false;
};

// The lean result is what the per-request path needs (the caller peeked/parsed the quote): cache
// flags, the PCK SGX values TCB matching uses, the CA type and the CRL windows. Building the full
// result's ~60 JavaScript values costs about as much as the quote signature check itself.
Napi::Value TdxLeanToJs(Napi::Env env, const TdxJob& job) {
  const tas::TdxVerifyOutcome& out = job.out;
  const tas::PckEntry& p = *out.pck;
  Napi::Object o = Napi::Object::New(env);
  o.Set("pckChainCached", out.pck_cached);
  o.Set("qeReportCached", out.qe_cached);
  o.Set("caType", p.processor_ca ? "processor" : "platform");
  o.Set("pckSerialHex", p.leaf.serial_hex);
  o.Set("sgx", SgxToJs(env, p.sgx));
  if (out.root_crl) o.Set("rootCrlNextUpdate", Date(env, out.root_crl->next_update));
  if (out.pck_crl) o.Set("pckCrlNextUpdate", Date(env, out.pck_crl->next_update));
  return o;
}

Napi::Value TdxOutcomeToJs(Napi::Env env, const TdxJob& job) {
  if (job.lean) return TdxLeanToJs(env, job);
  const tas::TdxVerifyOutcome& out = job.out;
  Napi::Object o = Napi::Object::New(env);
  if (!job.omit_quote) o.Set("quote", TdxQuoteToJs(env, out.quote, job.quote->data()));
  const tas::PckEntry& p = *out.pck;
  Napi::Object pck = Napi::Object::New(env);
  pck.Set("leaf", CertSummaryToJs(env, p.leaf));
  pck.Set("ca", CertSummaryToJs(env, p.ca));
  pck.Set("caType", p.processor_ca ? "processor" : "platform");
  pck.Set("rootSha256", Buf(env, p.root.sha256));
  pck.Set("rootSpkiSha256", Buf(env, p.root.spki_sha256));
  pck.Set("sgx", SgxToJs(env, p.sgx));
  o.Set("pck", pck);
  o.Set("pckChainCached", out.pck_cached);
  o.Set("qeReportCached", out.qe_cached);
  Napi::Object crls = Napi::Object::New(env);
  if (out.root_crl) crls.Set("root", WindowToJs(env, *out.root_crl));
  if (out.pck_crl) crls.Set("pck", WindowToJs(env, *out.pck_crl));
  o.Set("crls", crls);
  o.Set("tcbInfo", SignedJsonToJs(env, *out.tcb_info));
  o.Set("qeIdentity", SignedJsonToJs(env, *out.qe_identity));
  o.Set("checks", ChecksToJs(env, out.checks));
  return o;
}

Napi::Value TdxCollateralToJs(Napi::Env env, const tas::TdxCollateralOutcome& out) {
  Napi::Object o = Napi::Object::New(env);
  if (out.root_crl) o.Set("rootCrl", WindowToJs(env, *out.root_crl));
  if (out.pck_crl) o.Set("pckCrl", WindowToJs(env, *out.pck_crl));
  if (out.pck_ca) o.Set("pckCa", CertSummaryToJs(env, *out.pck_ca));
  if (out.tcb_info) o.Set("tcbInfo", SignedJsonToJs(env, *out.tcb_info));
  if (out.qe_identity) o.Set("qeIdentity", SignedJsonToJs(env, *out.qe_identity));
  return o;
}

constexpr size_t kMaxCrlInput = 1024 * 1024;

tas::Bytes TdxBytes(const Napi::Value& v, const char* what, size_t max) {
  try {
    return ToBytes(v, what, max);
  } catch (const SnpError& e) {
    tas::Fail(tas::kTdxArgument, e.detail());
  }
}

// A CRL input is a Buffer, or an explicit null when the caller has none and its configuration says
// to verify without it (TAS_CRL_FAIL_MODE=open). `undefined` stays an argument error, so that
// forgetting a CRL can never silently skip revocation.
std::optional<tas::Bytes> TdxOptionalCrl(const Napi::Value& v, const char* what) {
  if (v.IsNull()) return std::nullopt;
  return TdxBytes(v, what, kMaxCrlInput);
}

std::vector<tas::Bytes> TdxAnchors(const Napi::Object& o) {
  Napi::Value v = o.Get("trustRoots");
  if (!v.IsArray()) tas::Fail(tas::kTdxArgument, "trustRoots must be an array of Buffers");
  Napi::Array arr = v.As<Napi::Array>();
  if (arr.Length() == 0 || arr.Length() > tas::kMaxTdxAnchors) tas::Fail(tas::kTdxArgument, "1..8 trust roots required");
  std::vector<tas::Bytes> out;
  for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(TdxBytes(arr.Get(i), "trust root", tas::kMaxCertSize));
  return out;
}

tas::PcsSignedJson TdxSignedJson(const Napi::Value& v, const char* what) {
  if (!v.IsObject()) tas::Fail(tas::kTdxArgument, std::string(what) + " must be {bodyBytes, signature, chain}");
  Napi::Object o = v.As<Napi::Object>();
  tas::PcsSignedJson j;
  j.body = TdxBytes(o.Get("bodyBytes"), "bodyBytes", tas::kMaxPcsJson);
  j.signature = TdxBytes(o.Get("signature"), "signature", 64);
  j.chain = TdxBytes(o.Get("chain"), "chain", tas::kMaxPemChain);
  return j;
}

int64_t TdxSeconds(const Napi::Value& v, const char* what) {
  try {
    return ToSeconds(v, what);
  } catch (const SnpError& e) {
    tas::Fail(tas::kTdxArgument, e.detail());
  }
}

class TasNative : public Napi::Addon<TasNative> {
 public:
  TasNative(Napi::Env env, Napi::Object exports)
      : cache_(std::make_shared<tas::ChainCache>()), tdx_caches_(std::make_shared<tas::TdxCaches>()), gpu_cache_(std::make_shared<tas::GpuChainCache>()) {
    DefineAddon(exports, {
                             InstanceMethod("parseReport", &TasNative::ParseReport),
                             InstanceMethod("parseReportPacked", &TasNative::ParseReportPacked),
                             InstanceMethod("reportBytesLayout", &TasNative::ReportBytesLayoutMethod),
                             InstanceMethod("parseVek", &TasNative::ParseVek),
                             InstanceMethod("certInfo", &TasNative::CertInfo),
                             InstanceMethod("verify", &TasNative::Verify),
                             InstanceMethod("verifyChain", &TasNative::VerifyChain),
                             InstanceMethod("verifyCrl", &TasNative::VerifyCrl),
                             InstanceMethod("parseTdxQuote", &TasNative::ParseTdxQuote),
                             InstanceMethod("peekTdxQuote", &TasNative::PeekTdxQuote),
                             InstanceMethod("verifyTdxQuote", &TasNative::VerifyTdxQuote),
                             InstanceMethod("verifyTdxCollateral", &TasNative::VerifyTdxCollateral),
                             InstanceMethod("clearCache", &TasNative::ClearCache),
                             InstanceMethod("cacheSize", &TasNative::CacheSize),
                             InstanceMethod("tdxCacheSize", &TasNative::TdxCacheSize),
                             InstanceMethod("vekTables", &TasNative::VekTables),
                             InstanceMethod("opensslVersion", &TasNative::OpensslVersion),
                             InstanceMethod("parseSpdm", &TasNative::ParseSpdm),
                             InstanceMethod("checkSpdm", &TasNative::CheckSpdm),
                             InstanceMethod("verifyGpu", &TasNative::VerifyGpu),
                             InstanceMethod("verifyOcsp", &TasNative::VerifyOcsp),
                             InstanceMethod("buildOcspRequest", &TasNative::BuildOcspRequest),
                             InstanceMethod("rsaPkcs1Bits", &TasNative::RsaPkcs1Bits),
                             InstanceMethod("oaepWrapPkcs1", &TasNative::OaepWrapPkcs1),
                             InstanceMethod("wrapAesGcmPkcs1", &TasNative::WrapAesGcmPkcs1),
                         });
    (void)env;
  }

 private:
  // Guard turns core failures on the JS thread into JS errors with `code`.
  template <typename F>
  static Napi::Value Guard(Napi::Env env, F f) {
    try {
      return f();
    } catch (const SnpError& e) {
      throw MakeError(env, e.code(), e.detail());
    }
  }

  Napi::Value ParseReport(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      auto b = View(info[0], "report", kMaxReportInput);
      return ReportToJs(info.Env(), tas::ParseReport(b.first, b.second));
    });
  }

  Napi::Value ParseReportPacked(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      auto b = View(info[0], "report", kMaxReportInput);
      return ReportToJsPacked(info.Env(), tas::ParseReport(b.first, b.second));
    });
  }

  Napi::Value ReportBytesLayoutMethod(const Napi::CallbackInfo& info) { return ReportBytesLayout(info.Env()); }

  Napi::Value ParseVek(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      Bytes b = ToBytes(info[0], "certificate", tas::kMaxCertSize);
      tas::X509Ptr x = tas::ParseCert(b.data(), b.size());
      return VekToJs(info.Env(), tas::ParseVek(x.get()));
    });
  }

  Napi::Value CertInfo(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      Bytes b = ToBytes(info[0], "certificate", tas::kMaxCertSize);
      tas::X509Ptr x = tas::ParseCert(b.data(), b.size());
      return CertInfoToJs(info.Env(), tas::GetCertInfo(x.get()));
    });
  }

  Napi::Value Verify(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      if (!info[0].IsObject()) tas::Fail(tas::kErrArgument, "verify input must be an object");
      Napi::Object o = info[0].As<Napi::Object>();
      tas::VerifyInput in;
      in.report = ToBytes(o.Get("report"), "report", kMaxReportInput);
      in.chain = ChainFromJs(o);
      Napi::Value crl = o.Get("crl");
      if (!crl.IsUndefined() && !crl.IsNull()) in.crl = ToBytes(crl, "crl", tas::kMaxCrlSize);
      Napi::Value skew = o.Get("crlSkewSeconds");
      if (!skew.IsUndefined() && !skew.IsNull()) in.crl_skew = ToSeconds(skew, "crlSkewSeconds");
      // omitVek and omitChecks apply only with omitReport (the per-request form).
      const bool omit_report = Flag(o, "omitReport");
      const bool omit_vek = omit_report && Flag(o, "omitVek");
      const bool omit_checks = omit_vek && Flag(o, "omitChecks");
      std::shared_ptr<tas::ChainCache> cache = cache_;
      auto job = [in = std::move(in), cache, omit_report, omit_vek, omit_checks]() {
        return SnpJob{tas::Verify(in, cache.get()), !omit_report, !omit_vek, !omit_checks};
      };
      return Queue<decltype(job), SnpJob>(info.Env(), std::move(job), &SnpOutcomeToJs);
    });
  }

  Napi::Value VerifyChain(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      if (!info[0].IsObject()) tas::Fail(tas::kErrArgument, "verifyChain input must be an object");
      tas::ChainInput in = ChainFromJs(info[0].As<Napi::Object>());
      std::shared_ptr<tas::ChainCache> cache = cache_;
      auto job = [in = std::move(in), cache]() { return tas::VerifyChain(in, cache.get()); };
      return Queue<decltype(job), tas::ChainOutcome>(info.Env(), std::move(job), &ChainOutcomeToJs);
    });
  }

  Napi::Value VerifyCrl(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      Bytes crl = ToBytes(info[0], "crl", tas::kMaxCrlSize);
      Bytes ark = ToBytes(info[1], "ark", tas::kMaxCertSize);
      int64_t at = ToSeconds(info[2], "atSeconds");
      int64_t skew = ToSeconds(info[3], "skewSeconds");
      if (!info[4].IsArray()) tas::Fail(tas::kErrArgument, "serials must be an array of hex strings");
      Napi::Array arr = info[4].As<Napi::Array>();
      if (arr.Length() > 64) tas::Fail(tas::kErrArgument, "at most 64 serials");
      std::vector<std::string> serials;
      for (uint32_t i = 0; i < arr.Length(); i++) {
        Napi::Value s = arr.Get(i);
        if (!s.IsString()) tas::Fail(tas::kErrArgument, "serials must be strings");
        serials.push_back(s.As<Napi::String>().Utf8Value());
      }
      auto job = [crl = std::move(crl), ark = std::move(ark), at, skew, serials = std::move(serials)]() {
        tas::X509CrlPtr c = tas::ParseCrl(crl.data(), crl.size());
        tas::X509Ptr a = tas::ParseCert(ark.data(), ark.size());
        return tas::CheckCrl(c.get(), a.get(), at, skew, serials);
      };
      return Queue<decltype(job), tas::CrlResult>(info.Env(), std::move(job), &CrlResultToJs);
    });
  }

  Napi::Value ParseTdxQuote(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      tas::Bytes b = TdxBytes(info[0], "quote", tas::kMaxQuoteSize);
      return TdxQuoteToJs(info.Env(), tas::ParseTdxQuote(b.data(), b.size()), b.data());
    });
  }

  Napi::Value PeekTdxQuote(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      tas::Bytes b = TdxBytes(info[0], "quote", tas::kMaxQuoteSize);
      tas::TdxPeek p = tas::PeekTdxQuote(b.data(), b.size());
      Napi::Env env = info.Env();
      Napi::Object o = Napi::Object::New(env);
      o.Set("quote", TdxQuoteToJs(env, p.quote, b.data()));
      o.Set("caType", p.processor_ca ? "processor" : "platform");
      o.Set("leaf", CertSummaryToJs(env, p.leaf));
      o.Set("sgx", SgxToJs(env, p.sgx));
      return o;
    });
  }

  Napi::Value VerifyTdxQuote(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      if (!info[0].IsObject()) tas::Fail(tas::kTdxArgument, "verifyTdxQuote input must be an object");
      Napi::Object o = info[0].As<Napi::Object>();
      tas::TdxVerifyInput in;
      in.quote = TdxBytes(o.Get("quote"), "quote", tas::kMaxQuoteSize);
      in.anchors = TdxAnchors(o);
      in.root_crl = TdxOptionalCrl(o.Get("rootCrl"), "rootCrl");
      in.pck_crl = TdxOptionalCrl(o.Get("pckCrl"), "pckCrl");
      in.tcb_info = TdxSignedJson(o.Get("tcbInfo"), "tcbInfo");
      in.qe_identity = TdxSignedJson(o.Get("qeIdentity"), "qeIdentity");
      in.at = TdxSeconds(o.Get("at"), "at");
      Napi::Value skew = o.Get("crlSkewSeconds");
      if (!skew.IsUndefined() && !skew.IsNull()) in.crl_skew = TdxSeconds(skew, "crlSkewSeconds");
      const bool omit_quote = Flag(o, "omitQuote");
      const bool lean = Flag(o, "lean");
      std::shared_ptr<tas::TdxCaches> caches = tdx_caches_;
      auto job = [in = std::move(in), caches, omit_quote, lean]() {
        TdxJob j;
        j.out = tas::VerifyTdxQuote(in, caches.get());
        if (!omit_quote && !lean) j.quote = std::make_shared<const tas::Bytes>(in.quote);
        j.omit_quote = omit_quote || lean;
        j.lean = lean;
        return j;
      };
      return Queue<decltype(job), TdxJob>(info.Env(), std::move(job), &TdxOutcomeToJs);
    });
  }

  Napi::Value VerifyTdxCollateral(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      if (!info[0].IsObject()) tas::Fail(tas::kTdxArgument, "verifyTdxCollateral input must be an object");
      Napi::Object o = info[0].As<Napi::Object>();
      tas::TdxCollateralInput in;
      in.anchors = TdxAnchors(o);
      in.root_crl = TdxOptionalCrl(o.Get("rootCrl"), "rootCrl");
      Napi::Value v = o.Get("pckCrl");
      if (!v.IsUndefined() && !v.IsNull()) {
        in.pck_crl = TdxBytes(v, "pckCrl", kMaxCrlInput);
        in.pck_crl_chain = TdxBytes(o.Get("pckCrlChain"), "pckCrlChain", tas::kMaxPemChain);
      }
      v = o.Get("tcbInfo");
      if (!v.IsUndefined() && !v.IsNull()) in.tcb_info = TdxSignedJson(v, "tcbInfo");
      v = o.Get("qeIdentity");
      if (!v.IsUndefined() && !v.IsNull()) in.qe_identity = TdxSignedJson(v, "qeIdentity");
      in.at = TdxSeconds(o.Get("at"), "at");
      Napi::Value skew = o.Get("crlSkewSeconds");
      if (!skew.IsUndefined() && !skew.IsNull()) in.crl_skew = TdxSeconds(skew, "crlSkewSeconds");
      std::shared_ptr<tas::TdxCaches> caches = tdx_caches_;
      auto job = [in = std::move(in), caches]() { return tas::VerifyTdxCollateral(in, caches.get()); };
      return Queue<decltype(job), tas::TdxCollateralOutcome>(info.Env(), std::move(job), &TdxCollateralToJs);
    });
  }

  Napi::Value ClearCache(const Napi::CallbackInfo& info) {
    cache_->Clear();
    tdx_caches_->Clear();
    gpu_cache_->Clear();
    return info.Env().Undefined();
  }

  Napi::Value CacheSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(cache_->Size()));
  }

  // VekTables reports the process-wide VEK tables (core/signature.h) and their budget.
  Napi::Value VekTables(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("count", static_cast<double>(tas::VekVerifier::TableCount()));
    o.Set("limit", static_cast<double>(tas::VekVerifier::kMaxVekTables));
    return o;
  }

  Napi::Value TdxCacheSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(tdx_caches_->Size()));
  }

  // Key wrapping (core/wrap.h), synchronous: one RSA public operation, cheaper than a pool hop.
  Napi::Value RsaPkcs1Bits(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      auto key = View(info[0], "wrapping key", tas::kMaxWrappingKeyDer);
      return Napi::Number::New(info.Env(), tas::RsaPkcs1Bits(key.first, key.second));
    });
  }

  Napi::Value OaepWrapPkcs1(const Napi::CallbackInfo& info) { return WrapWith<tas::OaepWrapPkcs1>(info, "key material"); }
  Napi::Value WrapAesGcmPkcs1(const Napi::CallbackInfo& info) { return WrapWith<tas::WrapAesGcmPkcs1>(info, "secret"); }

  // WrapWith runs a wrap of (RSAPublicKey DER, bytes) -> bytes on the caller's Buffers in place.
  template <tas::Bytes (*Wrap)(const uint8_t*, size_t, const uint8_t*, size_t)>
  static Napi::Value WrapWith(const Napi::CallbackInfo& info, const char* what) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      auto key = View(info[0], "wrapping key", tas::kMaxWrappingKeyDer);
      auto data = View(info[1], what, tas::kMaxWrappedSecret);
      Bytes out = Wrap(key.first, key.second, data.first, data.second);
      return Buf(info.Env(), out.data(), out.size());
    });
  }

  Napi::Value OpensslVersion(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), OpenSSL_version(OPENSSL_VERSION));
  }

  Napi::Value ParseSpdm(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      Bytes b = ToBytes(info[0], "evidence", tas::kSpdmMaxEvidence);
      return SpdmToJs(info.Env(), tas::ParseSpdm(b.data(), b.size()));
    });
  }

  // CheckSpdm is ParseSpdm without building the JS result (the early 400 check of
  // component-evidence runs on the event loop for every GPU; ~90 Buffers are not needed there).
  Napi::Value CheckSpdm(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      Bytes b = ToBytes(info[0], "evidence", tas::kSpdmMaxEvidence);
      tas::SpdmEvidence e = tas::ParseSpdm(b.data(), b.size());
      return Napi::Number::New(info.Env(), static_cast<double>(e.blocks.size()));
    });
  }

  Napi::Value VerifyGpu(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      if (!info[0].IsObject()) tas::Fail(tas::kErrArgument, "verifyGpu input must be an object");
      Napi::Object o = info[0].As<Napi::Object>();
      tas::GpuDeviceInput in;
      in.evidence = ToBytes(o.Get("evidence"), "evidence", tas::kSpdmMaxEvidence);
      in.chain = ToBytes(o.Get("chain"), "chain", tas::kGpuMaxChainPem);
      in.anchors = BufferList(o.Get("anchors"), "anchors", tas::kGpuMaxAnchors, tas::kMaxCertSize, true);
      in.at = ToSeconds(o.Get("atSeconds"), "atSeconds");
      std::shared_ptr<tas::GpuChainCache> cache = gpu_cache_;
      auto job = [in = std::move(in), cache]() { return tas::VerifyGpuDevice(in, cache.get()); };
      return Queue<decltype(job), tas::GpuDeviceResult>(info.Env(), std::move(job), &GpuDeviceToJs);
    });
  }

  Napi::Value BuildOcspRequest(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      Bytes c = ToBytes(info[0], "cert", tas::kMaxCertSize);
      Bytes i = ToBytes(info[1], "issuer", tas::kMaxCertSize);
      Bytes der = tas::BuildOcspRequest(c.data(), c.size(), i.data(), i.size());
      return Buf(info.Env(), der.data(), der.size());
    });
  }

  Napi::Value VerifyOcsp(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      if (!info[0].IsObject()) tas::Fail(tas::kErrArgument, "verifyOcsp input must be an object");
      Napi::Object o = info[0].As<Napi::Object>();
      tas::OcspInput in;
      in.response = ToBytes(o.Get("response"), "response", tas::kMaxOcspSize);
      in.cert = ToBytes(o.Get("cert"), "cert", tas::kMaxCertSize);
      in.issuer = ToBytes(o.Get("issuer"), "issuer", tas::kMaxCertSize);
      in.anchors = BufferList(o.Get("anchors"), "anchors", tas::kGpuMaxAnchors, tas::kMaxCertSize, true);
      Napi::Value u = o.Get("untrusted");
      if (!u.IsUndefined()) in.untrusted = BufferList(u, "untrusted", tas::kGpuMaxChainCerts, tas::kMaxCertSize, false);
      in.at = ToSeconds(o.Get("atSeconds"), "atSeconds");
      Napi::Value skew = o.Get("skewSeconds");
      if (!skew.IsUndefined()) in.skew = ToSeconds(skew, "skewSeconds");
      auto job = [in = std::move(in)]() { return tas::VerifyOcsp(in); };
      return Queue<decltype(job), tas::OcspResult>(info.Env(), std::move(job), &OcspResultToJs);
    });
  }

  std::shared_ptr<tas::ChainCache> cache_;
  std::shared_ptr<tas::TdxCaches> tdx_caches_;
  std::shared_ptr<tas::GpuChainCache> gpu_cache_;
};

}  // namespace

NODE_API_ADDON(TasNative)
