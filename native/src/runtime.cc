// Process-wide state (threads, seeds, grad mode, live handles), tensor metadata, data in and out, and autograd.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/version.h>

#include <cstring>

#include "handles.h"

#ifndef SEERKIT_SOURCE_HASH
#define SEERKIT_SOURCE_HASH "unknown"
#endif

#if SEERKIT_CUDA_RUNTIME  // the caching allocator's statistics (see handles.h)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

using seer::Args;

// ---- handles and process state -------------------------------------------------------------------------------

SEER_FN(free) {
  seer::table().release(static_cast<uint32_t>(a.i64(0)));
  return seer::undef(a.env);
}
SEER_FN(liveTensors) { return seer::num(a.env, static_cast<double>(seer::table().live())); }
SEER_FN(sourceHash) { return seer::str(a.env, SEERKIT_SOURCE_HASH); }
SEER_FN(torchVersion) { return seer::str(a.env, TORCH_VERSION); }
SEER_FN(cudaAvailable) { return seer::boolean(a.env, at::detail::getCUDAHooks().getNumGPUs() > 0); }
SEER_FN(cudaDeviceCount) { return seer::num(a.env, at::detail::getCUDAHooks().getNumGPUs()); }
SEER_FN(mallocTuned) { return seer::boolean(a.env, seer::mallocTuned()); }
SEER_FN(parallelInfo) { return seer::str(a.env, at::get_parallel_info()); }

SEER_FN(setNumThreads) {
  at::set_num_threads(static_cast<int>(a.i64(0)));
  return seer::undef(a.env);
}
SEER_FN(getNumThreads) { return seer::num(a.env, at::get_num_threads()); }

// One seed for every generator: the CPU one and, where present, each CUDA device's.
SEER_FN(manualSeed) {
  uint64_t seed = static_cast<uint64_t>(a.i64(0));
  at::manual_seed(seed);
  return seer::undef(a.env);
}

// Grad mode is thread-local in libtorch; all JS work happens on one thread, so a flag is enough.
SEER_FN(setGradEnabled) {
  at::GradMode::set_enabled(a.b(0));
  return seer::undef(a.env);
}
SEER_FN(isGradEnabled) { return seer::boolean(a.env, at::GradMode::is_enabled()); }

// bf16/fp16 autocast for CUDA regions: (enabled, dtypeCode). Returns whether it was enabled before.
// libtorch 2.4 replaced the CUDA-only autocast calls with per-device-type ones.
SEER_FN(setAutocastCuda) {
  bool on = a.b(0);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  bool was = at::autocast::is_autocast_enabled(at::kCUDA);
  at::autocast::set_autocast_enabled(at::kCUDA, on);
  if (on) at::autocast::set_autocast_dtype(at::kCUDA, a.dtype(1));
#else
  bool was = at::autocast::is_enabled();
  at::autocast::set_enabled(on);
  if (on) at::autocast::set_autocast_gpu_dtype(a.dtype(1));
#endif
  if (!on) at::autocast::clear_cache();
  return seer::boolean(a.env, was);
}

SEER_FN(cudaSynchronize) {
  seer::refuseDuringCapture("cudaSynchronize()");
  auto& hooks = at::detail::getCUDAHooks();
  for (int i = 0; i < hooks.getNumGPUs(); i++) hooks.deviceSynchronize(i);
  return seer::undef(a.env);
}

// setCudaDevice(index): this thread's current CUDA device (torch.cuda.set_device). One process per GPU sets its
// own, so that work and NCCL communicators that pick "the current device" use that GPU, not GPU 0. Throws on a
// libtorch without CUDA.
SEER_FN(setCudaDevice) {
  const auto index = static_cast<c10::DeviceIndex>(a.i64(0));
  c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->setDevice(c10::Device(c10::DeviceType::CUDA, index));
  return seer::undef(a.env);
}

// cuDNN autotuning (torch.backends.cudnn.benchmark) and TF32 for cuBLAS matmuls and cuDNN convolutions
// (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32): (benchmark, tf32). Process-wide, as in
// PyTorch; harmless without CUDA.
SEER_FN(setCudaBackendFlags) {
  at::globalContext().setBenchmarkCuDNN(a.b(0));
  at::globalContext().setAllowTF32CuBLAS(a.b(1));
  at::globalContext().setAllowTF32CuDNN(a.b(1));
  return seer::undef(a.env);
}

// Starts a new peak for cudaMemory (torch.cuda.reset_peak_memory_stats); no-op without CUDA.
SEER_FN(cudaResetPeak) {
#if SEERKIT_CUDA_RUNTIME
  c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<int>(a.i64(0)));
#endif
  return seer::undef(a.env);
}

// [allocated, peakAllocated] bytes on a CUDA device; zeros without CUDA; -1 when this build cannot read them.
SEER_FN(cudaMemory) {
  double cur = 0, peak = 0;
#if SEERKIT_WITH_CUDA && !SEERKIT_CUDA_RUNTIME
  cur = peak = -1;
#endif
#if SEERKIT_CUDA_RUNTIME
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<int>(a.i64(0)));
  cur = static_cast<double>(stats.allocated_bytes[0].current);
  peak = static_cast<double>(stats.allocated_bytes[0].peak);
#endif
  napi_value arr;
  napi_create_array_with_length(a.env, 2, &arr);
  napi_set_element(a.env, arr, 0, seer::num(a.env, cur));
  napi_set_element(a.env, arr, 1, seer::num(a.env, peak));
  return arr;
}

// ---- metadata --------------------------------------------------------------------------------------------------

SEER_FN(shape) { return seer::intArray(a.env, a.t(0).sizes()); }
SEER_FN(strides) { return seer::intArray(a.env, a.t(0).strides()); }
SEER_FN(dim) { return seer::num(a.env, static_cast<double>(a.t(0).dim())); }
SEER_FN(numel) { return seer::num(a.env, static_cast<double>(a.t(0).numel())); }
SEER_FN(dtypeCode) { return seer::num(a.env, seer::codeFromDtype(a.t(0).scalar_type())); }
SEER_FN(deviceName) { return seer::str(a.env, a.t(0).device().str()); }
SEER_FN(isContiguous) { return seer::boolean(a.env, a.t(0).is_contiguous()); }
SEER_FN(isChannelsLast) { return seer::boolean(a.env, a.t(0).is_contiguous(at::MemoryFormat::ChannelsLast)); }

// ---- data in and out -------------------------------------------------------------------------------------------

// fromBytes(typedArray, shape, dtypeCode, device): one copy, from the JS buffer into a new tensor.
SEER_FN(fromBytes) {
  napi_typedarray_type type;
  size_t length, byteOffset;
  void* data;
  napi_value ab;
  bool isTyped = false;
  napi_is_typedarray(a.env, a.arg(0), &isTyped);
  if (!isTyped) throw std::invalid_argument("fromBytes expects a TypedArray");
  napi_get_typedarray_info(a.env, a.arg(0), &type, &length, &data, &ab, &byteOffset);
  size_t elemBytes = 1;
  switch (type) {
    case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: elemBytes = 1; break;
    case napi_int16_array: case napi_uint16_array: elemBytes = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: elemBytes = 4; break;
    default: elemBytes = 8;
  }
  auto shape = a.ints(1);
  auto dtype = a.dtype(2);
  auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
  size_t need = t.numel() * t.element_size();
  if (need != length * elemBytes)
    throw std::invalid_argument("data has " + std::to_string(length * elemBytes) + " bytes but shape " +
                                c10::str(t.sizes()) + " of " + c10::toString(dtype) + " needs " + std::to_string(need));
  if (need) std::memcpy(t.data_ptr(), data, need);
  auto dev = a.device(3);
  if (!dev.is_cpu()) seer::refuseDuringCapture("creating a CUDA tensor from JavaScript data");
  return seer::wrap(a.env, dev.is_cpu() ? t : t.to(dev));
}

// toBytes(t): a new ArrayBuffer holding t's elements in row-major order (one copy; moves off the GPU first).
SEER_FN(toBytes) {
  if (a.t(0).is_cuda()) seer::refuseDuringCapture("reading a CUDA tensor's values (toArray, toBytes)");
  at::Tensor t = a.t(0).detach().to(at::kCPU).contiguous();
  size_t n = t.numel() * t.element_size();
  void* dst;
  napi_value ab;
  napi_create_arraybuffer(a.env, n, &dst, &ab);
  if (n) std::memcpy(dst, t.data_ptr(), n);
  return ab;
}

// item(t): a one-element tensor's value as a double (a device sync point on CUDA).
SEER_FN(item) {
  if (a.t(0).is_cuda()) seer::refuseDuringCapture("item() of a CUDA tensor");
  return seer::num(a.env, a.t(0).item<double>());
}

// ---- autograd --------------------------------------------------------------------------------------------------

SEER_INPLACE(setRequiresGrad, a.t(0).requires_grad_(a.b(1)))
SEER_FN(requiresGrad) { return seer::boolean(a.env, a.t(0).requires_grad()); }
SEER_FN(isLeaf) { return seer::boolean(a.env, a.t(0).is_leaf()); }
SEER_INPLACE(retainGrad, a.t(0).retain_grad())

// backward(t, gradient | null, retainGraph)
SEER_FN(backward) {
  auto grad = a.optT(1);
  a.t(0).backward(grad ? *grad : at::Tensor(), a.b(2), false);
  return seer::undef(a.env);
}

// grad(t): a new handle to t.grad, or undefined when there is none.
SEER_FN(grad) {
  const at::Tensor& g = a.t(0).grad();
  return g.defined() ? seer::wrap(a.env, g) : seer::undef(a.env);
}
SEER_INPLACE(clearGrad, a.t(0).mutable_grad().reset())
SEER_INPLACE(setGrad, a.t(0).mutable_grad() = a.t(1))
