// The C++ side of seerkit's tensor handles, and the helpers every exported function uses.
//
// A JS `Tensor` holds a small integer id. The id indexes a slot table of `at::Tensor` (a refcounted pointer to
// libtorch's TensorImpl). Freeing an id drops our reference only: the autograd graph keeps what it still needs.
// Ids instead of napi_wrap/External objects keep a native call to "read a few numbers, call ATen, return a
// number", which is what makes per-op overhead small. JS frees ids deterministically (tidy/dispose); a JS
// FinalizationRegistry is the safety net for forgotten tensors.
//
// Every exported function is written with the SEER_FN macro: arguments arrive in `a` (an Args), the body returns
// a napi_value, and any C++ exception (c10::Error included) becomes a JS Error carrying libtorch's message, never
// an abort.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Optional.h>  // c10::optional: ATen no longer includes it in 2.x
#include <node_api.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

// Build flags, passed by binding.gyp from find_libtorch.js (0 when compiled without them). c10/cuda, for the caching
// allocator's statistics and CUDA graphs, needs both a CUDA libtorch and the CUDA runtime's headers
// (cuda_runtime_api.h); everything else CUDA goes through ATen's CUDA hooks, which need neither.
#ifndef SEERKIT_WITH_CUDA
#define SEERKIT_WITH_CUDA 0
#endif
#ifndef SEERKIT_WITH_CUDA_HEADERS
#define SEERKIT_WITH_CUDA_HEADERS 0
#endif
#define SEERKIT_CUDA_RUNTIME (SEERKIT_WITH_CUDA && SEERKIT_WITH_CUDA_HEADERS)
#ifndef SEERKIT_TORCH_CUDA_VERSION
#define SEERKIT_TORCH_CUDA_VERSION 0  // libtorch's CUDA as CUDA_VERSION writes it (12.8 -> 12080), 0 when unknown
#endif

namespace seer {

// ---- handle table ------------------------------------------------------------------------------------------

class TensorTable {
 public:
  uint32_t add(at::Tensor t) {
    if (!free_.empty()) {
      uint32_t id = free_.back();
      free_.pop_back();
      slots_[id] = std::move(t);
      return id;
    }
    slots_.push_back(std::move(t));
    return static_cast<uint32_t>(slots_.size() - 1);
  }
  at::Tensor& get(uint32_t id) {
    if (id >= slots_.size() || !slots_[id].defined()) throw std::runtime_error("use of a freed tensor (id " + std::to_string(id) + ")");
    return slots_[id];
  }
  void release(uint32_t id) {
    if (id >= slots_.size() || !slots_[id].defined()) return;  // idempotent
    slots_[id] = at::Tensor();
    free_.push_back(id);
  }
  size_t live() const { return slots_.size() - free_.size(); }

 private:
  std::vector<at::Tensor> slots_;
  std::vector<uint32_t> free_;
};

TensorTable& table();

// CUDA graph captures running now (cuda_graph.cc), and the check seerkit's host reads of CUDA tensors make first:
// it throws, naming `what`, while one runs.
std::atomic<int>& capturesUnderway();
void refuseDuringCapture(const char* what);

// Small integer ids for native objects JS holds (process groups, gradient reducers, CUDA graphs); freed slots are
// reused.
template <typename T>
class HandleTable {
 public:
  explicit HandleTable(const char* what) : what_(what) {}
  int32_t add(std::shared_ptr<T> x) {
    for (size_t i = 0; i < slots_.size(); ++i)
      if (!slots_[i]) {
        slots_[i] = std::move(x);
        return static_cast<int32_t>(i);
      }
    slots_.push_back(std::move(x));
    return static_cast<int32_t>(slots_.size() - 1);
  }
  std::shared_ptr<T> get(int64_t id) {
    if (!holds(id)) throw std::runtime_error(std::string("use of a destroyed ") + what_ + " (id " + std::to_string(id) + ")");
    return slots_[id];
  }
  // Empties the slot and returns what it held, or null when it was empty (so releasing twice is harmless).
  std::shared_ptr<T> take(int64_t id) { return holds(id) ? std::move(slots_[id]) : nullptr; }

 private:
  bool holds(int64_t id) const { return id >= 0 && id < static_cast<int64_t>(slots_.size()) && slots_[id]; }
  const char* what_;
  std::vector<std::shared_ptr<T>> slots_;
};

// Whether the addon tuned glibc's malloc at load (see addon.cc).
bool mallocTuned();

// ---- argument decoding ---------------------------------------------------------------------------------------

// dtype codes shared with src/tensor/dtype.ts (keep the order in sync).
at::ScalarType dtypeFromCode(int32_t code);
int32_t codeFromDtype(at::ScalarType t);

struct Args {
  static constexpr size_t kMax = 16;
  napi_env env;
  size_t argc = kMax;
  napi_value argv[kMax];

  Args(napi_env e, napi_callback_info info);
  napi_value arg(size_t i) const;
  bool isNullish(size_t i) const;

  at::Tensor& t(size_t i) const;                       // a tensor id
  c10::optional<at::Tensor> optT(size_t i) const;      // a tensor id, or null/undefined
  std::vector<at::Tensor> tensors(size_t i) const;     // an array of tensor ids
  double d(size_t i) const;
  at::Scalar s(size_t i) const;                        // a number; integral values become integer scalars
  int64_t i64(size_t i) const;
  int32_t i32(size_t i) const;
  bool b(size_t i) const;
  std::string str(size_t i) const;
  std::vector<int64_t> ints(size_t i) const;           // an array of integers
  c10::optional<double> optD(size_t i) const;
  c10::optional<at::Scalar> optScalar(size_t i) const;
  c10::optional<int64_t> optI64(size_t i) const;
  at::ScalarType dtype(size_t i) const { return dtypeFromCode(i32(i)); }
  at::Device device(size_t i) const;                   // a device string: "cpu", "cuda", "cuda:1"
  at::TensorOptions options(size_t dtypeIdx, size_t deviceIdx) const;
};

// ---- return values -------------------------------------------------------------------------------------------

napi_value wrap(napi_env env, at::Tensor t);           // registers t, returns its id
napi_value wrapList(napi_env env, const std::vector<at::Tensor>& ts);
napi_value num(napi_env env, double v);
napi_value boolean(napi_env env, bool v);
napi_value str(napi_env env, const std::string& s);
napi_value undef(napi_env env);
napi_value intArray(napi_env env, at::IntArrayRef v);

// Throws a JS Error with the message of the pending C++ exception.
void throwJs(napi_env env, const char* fn, const char* what);

// ---- export registration ---------------------------------------------------------------------------------------

struct Export {
  const char* name;
  napi_callback fn;
};
std::vector<Export>& exports();
struct Registrar {
  Registrar(const char* name, napi_callback fn) { exports().push_back({name, fn}); }
};

}  // namespace seer

// SEER_FN(name) { ...body using `a`, returns napi_value... }
// Defines the N-API callback `name`, registers it for export under the same name, and turns C++ exceptions
// into JS errors. The body runs inside seer_body_<name>.
#define SEER_FN(name)                                                                  \
  static napi_value seer_body_##name(seer::Args& a);                                  \
  static napi_value seer_cb_##name(napi_env env, napi_callback_info info) {           \
    try {                                                                              \
      seer::Args a(env, info);                                                         \
      return seer_body_##name(a);                                                      \
    } catch (const c10::Error& e) {                                                    \
      seer::throwJs(env, #name, e.what_without_backtrace());                           \
    } catch (const std::exception& e) {                                                \
      seer::throwJs(env, #name, e.what());                                             \
    }                                                                                  \
    return nullptr;                                                                    \
  }                                                                                    \
  static seer::Registrar seer_reg_##name(#name, seer_cb_##name);                      \
  static napi_value seer_body_##name(seer::Args& a)

// One-liners for the common shape "compute a tensor, return its id".
#define SEER_OP(name, expr) \
  SEER_FN(name) { return seer::wrap(a.env, (expr)); }
// In-place ops return nothing: the JS side returns the receiver.
#define SEER_INPLACE(name, stmt) \
  SEER_FN(name) {                \
    stmt;                        \
    return seer::undef(a.env);   \
  }
