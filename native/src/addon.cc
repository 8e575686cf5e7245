// N-API registration, argument decoding and return helpers. The op implementations live in
// tensor_ops.cc (tensor math and autograd), nn_ops.cc (layers and losses) and runtime.cc (threads, seeds, memory).
#include "handles.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace seer {

TensorTable& table() {
  static TensorTable t;
  return t;
}

std::vector<Export>& exports() {
  static std::vector<Export> e;
  return e;
}

// Order mirrors DTYPES in src/tensor/dtype.ts.
static const at::ScalarType kDtypes[] = {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf,
                                         at::kLong,  at::kInt,    at::kByte,     at::kBool};

at::ScalarType dtypeFromCode(int32_t code) {
  if (code < 0 || code >= static_cast<int32_t>(sizeof(kDtypes) / sizeof(kDtypes[0])))
    throw std::invalid_argument("unknown dtype code " + std::to_string(code));
  return kDtypes[code];
}

int32_t codeFromDtype(at::ScalarType t) {
  for (size_t i = 0; i < sizeof(kDtypes) / sizeof(kDtypes[0]); ++i)
    if (kDtypes[i] == t) return static_cast<int32_t>(i);
  throw std::invalid_argument(std::string("dtype not supported by seerkit: ") + c10::toString(t));
}

// ---- Args --------------------------------------------------------------------------------------------------

static void check(napi_env env, napi_status s, const char* what) {
  if (s != napi_ok) throw std::invalid_argument(what);
}

Args::Args(napi_env e, napi_callback_info info) : env(e) {
  check(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr), "could not read arguments");
}

napi_value Args::arg(size_t i) const {
  if (i >= argc) throw std::invalid_argument("missing argument " + std::to_string(i));
  return argv[i];
}

bool Args::isNullish(size_t i) const {
  if (i >= argc) return true;
  napi_valuetype t;
  napi_typeof(env, argv[i], &t);
  return t == napi_null || t == napi_undefined;
}

at::Tensor& Args::t(size_t i) const {
  uint32_t id;
  if (napi_get_value_uint32(env, arg(i), &id) != napi_ok)
    throw std::invalid_argument("argument " + std::to_string(i) + " is not a tensor");
  return table().get(id);
}

c10::optional<at::Tensor> Args::optT(size_t i) const {
  if (isNullish(i)) return c10::nullopt;
  return t(i);
}

std::vector<at::Tensor> Args::tensors(size_t i) const {
  napi_value arr = arg(i);
  uint32_t n;
  check(env, napi_get_array_length(env, arr, &n), "expected an array of tensors");
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (uint32_t k = 0; k < n; ++k) {
    napi_value v;
    napi_get_element(env, arr, k, &v);
    uint32_t id;
    check(env, napi_get_value_uint32(env, v, &id), "expected an array of tensors");
    out.push_back(table().get(id));
  }
  return out;
}

double Args::d(size_t i) const {
  double v;
  check(env, napi_get_value_double(env, arg(i), &v), "expected a number");
  return v;
}

// Whole numbers become integer Scalars so that in-place arithmetic on integer tensors works (x.add_(1) on an
// int64 counter); on floating tensors an integer Scalar computes the same as a double one.
at::Scalar Args::s(size_t i) const {
  double v = d(i);
  if (std::nearbyint(v) == v && std::fabs(v) < 9007199254740992.0) return at::Scalar(static_cast<int64_t>(v));
  return at::Scalar(v);
}

int64_t Args::i64(size_t i) const {
  int64_t v;
  check(env, napi_get_value_int64(env, arg(i), &v), "expected an integer");
  return v;
}

int32_t Args::i32(size_t i) const {
  int32_t v;
  check(env, napi_get_value_int32(env, arg(i), &v), "expected an integer");
  return v;
}

bool Args::b(size_t i) const {
  bool v;
  check(env, napi_get_value_bool(env, arg(i), &v), "expected a boolean");
  return v;
}

std::string Args::str(size_t i) const {
  size_t len;
  check(env, napi_get_value_string_utf8(env, arg(i), nullptr, 0, &len), "expected a string");
  std::string s(len, '\0');
  napi_get_value_string_utf8(env, arg(i), &s[0], len + 1, &len);
  return s;
}

std::vector<int64_t> Args::ints(size_t i) const {
  napi_value arr = arg(i);
  uint32_t n;
  check(env, napi_get_array_length(env, arr, &n), "expected an array of integers");
  std::vector<int64_t> out(n);
  for (uint32_t k = 0; k < n; ++k) {
    napi_value v;
    napi_get_element(env, arr, k, &v);
    check(env, napi_get_value_int64(env, v, &out[k]), "expected an array of integers");
  }
  return out;
}

c10::optional<double> Args::optD(size_t i) const {
  if (isNullish(i)) return c10::nullopt;
  return d(i);
}

c10::optional<at::Scalar> Args::optScalar(size_t i) const {
  if (isNullish(i)) return c10::nullopt;
  return at::Scalar(d(i));
}

c10::optional<int64_t> Args::optI64(size_t i) const {
  if (isNullish(i)) return c10::nullopt;
  return i64(i);
}

at::Device Args::device(size_t i) const { return at::Device(str(i)); }

at::TensorOptions Args::options(size_t dtypeIdx, size_t deviceIdx) const {
  return at::TensorOptions().dtype(dtype(dtypeIdx)).device(device(deviceIdx));
}

// ---- return helpers ------------------------------------------------------------------------------------------

napi_value wrap(napi_env env, at::Tensor t) {
  napi_value v;
  napi_create_uint32(env, table().add(std::move(t)), &v);
  return v;
}

napi_value wrapList(napi_env env, const std::vector<at::Tensor>& ts) {
  napi_value arr;
  napi_create_array_with_length(env, ts.size(), &arr);
  for (size_t k = 0; k < ts.size(); ++k) napi_set_element(env, arr, k, wrap(env, ts[k]));
  return arr;
}

napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

napi_value boolean(napi_env env, bool v) {
  napi_value r;
  napi_get_boolean(env, v, &r);
  return r;
}

napi_value str(napi_env env, const std::string& s) {
  napi_value r;
  napi_create_string_utf8(env, s.data(), s.size(), &r);
  return r;
}

napi_value undef(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}

napi_value intArray(napi_env env, at::IntArrayRef v) {
  napi_value arr;
  napi_create_array_with_length(env, v.size(), &arr);
  for (size_t k = 0; k < v.size(); ++k) napi_set_element(env, arr, k, num(env, static_cast<double>(v[k])));
  return arr;
}

void throwJs(napi_env env, const char* fn, const char* what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;  // an N-API call already threw; keep that error
  // Message: "<op>: <libtorch's message>"; code ERR_TORCH; .op names the native function.
  std::string text = std::string(fn) + ": " + what;
  napi_value msg, code, err, op;
  napi_create_string_utf8(env, text.data(), text.size(), &msg);
  napi_create_string_utf8(env, "ERR_TORCH", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &err);
  napi_create_string_utf8(env, fn, NAPI_AUTO_LENGTH, &op);
  napi_set_named_property(env, err, "op", op);
  napi_throw(env, err);
}

}  // namespace seer

// ---- module init -----------------------------------------------------------------------------------------------

// glibc's malloc hands large blocks (over 128 KiB at first) back to the kernel on free and trims the heap top
// eagerly, so every training step page-faults its activations and gradients in afresh. On virtual machines a page
// fault is expensive: measured on the 2-core development VM, a small CNN step spent three quarters of its time in
// them. Keeping freed memory in the process (mmap only above 32 MiB, no trimming) removes that; peak RSS is what
// the step needs anyway. SEERKIT_MALLOC_TUNING=0 keeps glibc's defaults.
static bool tuneMalloc() {
#ifdef __GLIBC__
  const char* opt = std::getenv("SEERKIT_MALLOC_TUNING");
  if (opt && std::string(opt) == "0") return false;
  bool ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
  ok = mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max()) == 1 && ok;
  return ok;
#else
  return false;
#endif
}

static bool gMallocTuned = false;
bool seer::mallocTuned() { return gMallocTuned; }

static napi_value Init(napi_env env, napi_value exports) {
  gMallocTuned = tuneMalloc();
  for (const auto& e : seer::exports()) {
    napi_value fn;
    napi_create_function(env, e.name, NAPI_AUTO_LENGTH, e.fn, nullptr, &fn);
    napi_set_named_property(env, exports, e.name, fn);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
