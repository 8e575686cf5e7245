// CUDA graphs: a training step recorded once and replayed as one launch (torch.cuda.graph over at::cuda::CUDAGraph).
//
// A step of a large model issues thousands of small kernel launches, each behind a host-side dispatch through this
// addon and ATen; a graph replays the same kernels, on the same memory, without the host. It requires what
// CUDAGraph requires: static shapes and addresses (inputs are copied into the tensors the step read while it was
// captured, outputs are read from the tensors it produced), no host synchronisation inside the step (item(),
// copies to the CPU), and the memory it allocated stays reserved for the graph (its private pool) until the graph is
// released.
//
//   cudaGraphOpen(device) -> id     the device's capture stream (one per device, reused) becomes current, after
//                                    the work queued so far; warm-up steps run here eagerly, as PyTorch's recipe
//                                    asks (library workspaces get made on this stream, outside any graph)
//   cudaGraphBegin(id)               the device is synchronized and its cached free memory released, then capture
//                                    starts (the default stream cannot be captured)
//   cudaGraphEnd(id)                 capture ends, the previous stream is current again; the graph is instantiated
//   cudaGraphAbort(id)               for a step that threw: see abortCapture()
//   cudaGraphReplay(id)              one replay on the current stream (asynchronous, as every kernel)
//   cudaGraphRelease(id)             frees the graph and its pool (idempotent)
//
// While a capture runs, seerkit's own host reads of CUDA tensors (item(), toBytes, cross-device copies,
// cudaSynchronize) throw before they reach CUDA (refuseDuringCapture): the capture stays valid and can be ended
// cleanly. A synchronizing op inside libtorch itself still invalidates it; CUDAGraph::capture_end then throws before
// it ends the allocator's capture (read in PyTorch 2.11's CUDAGraph.cpp), which leaves the allocator in capture
// mode and pointing at the graph, so the graph is parked and later captures in this process are refused.
//
// Builds without CUDA (or without the CUDA runtime's headers, which c10/cuda needs) export the same functions;
// they throw, naming what this build lacks.
#include "handles.h"

#include <atomic>
#include <map>

#if SEERKIT_CUDA_RUNTIME
#include <c10/cuda/CUDAFunctions.h>  // CUDA_VERSION, of the headers this build found
// CUDAGraph's members depend on CUDA_VERSION: against headers of another CUDA than libtorch's it would have another
// layout, so graphs are left out then (find_libtorch.js prefers the matching headers).
#if SEERKIT_TORCH_CUDA_VERSION == 0 || CUDA_VERSION / 10 == SEERKIT_TORCH_CUDA_VERSION / 10
#define SEERKIT_CUDA_GRAPHS 1
#endif
#endif
#ifndef SEERKIT_CUDA_GRAPHS
#define SEERKIT_CUDA_GRAPHS 0
#endif
#if SEERKIT_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace seer {

std::atomic<int>& capturesUnderway() {
  static std::atomic<int> n{0};
  return n;
}

void refuseDuringCapture(const char* what) {
  if (capturesUnderway().load() > 0)
    throw std::runtime_error(std::string(what) + " waits for the GPU on the host, which a CUDA graph capture cannot record: do it before CudaGraph.capture() or after replay()");
}

#if SEERKIT_CUDA_GRAPHS

namespace {

struct Graph {
  at::cuda::CUDAGraph graph;
  c10::DeviceIndex device = 0;
  // From open to end: the capture stream made current (and the device with it); resetting it restores both.
  c10::optional<c10::cuda::CUDAStreamGuard> onCaptureStream;
  bool capturing = false;
  bool captured = false;
};

HandleTable<Graph>& graphs() {
  static auto* t = new HandleTable<Graph>("CUDA graph");
  return *t;
}

// Why captures are refused in this process (empty: they are not), and the graphs kept alive for it.
std::string& brokenReason() {
  static auto* s = new std::string();
  return *s;
}
std::vector<std::shared_ptr<Graph>>& parked() {
  static auto* v = new std::vector<std::shared_ptr<Graph>>();
  return *v;
}

// One capture stream per device, as torch.cuda.graph's default: library workspaces (cuBLAS keeps one per handle
// and stream) are then made once, during warm-up, not again inside every graph's pool.
c10::cuda::CUDAStream captureStream(c10::DeviceIndex device) {
  static auto* streams = new std::map<c10::DeviceIndex, c10::cuda::CUDAStream>();
  auto it = streams->find(device);
  if (it == streams->end()) it = streams->emplace(device, c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device)).first;
  return it->second;
}

void synchronizeDevice(c10::DeviceIndex device) { at::detail::getCUDAHooks().deviceSynchronize(device); }

// A capture failed inside libtorch (to begin, or to end): the allocator may still route to the graph's pool and
// refer to the graph, so the graph is kept alive and later captures in this process are refused with the reason.
void park(const std::shared_ptr<Graph>& g, const std::string& what, const std::exception& e) {
  brokenReason() = what + " (" + e.what() + "), which can leave libtorch's allocator in capture mode: start a new process";
  parked().push_back(g);
}

// Ends a capture whose step threw. A valid capture (the step threw in JavaScript, or a host read was refused) ends
// normally and is dropped. An invalidated one (a synchronizing op inside libtorch) makes capture_end throw; the
// allocator may still refer to the graph then, so it is parked rather than destroyed, and captures are refused.
void abortCapture(const std::shared_ptr<Graph>& g) {
  if (!g->capturing && !g->captured && g->onCaptureStream) synchronizeDevice(g->device);  // the warm-up's kernels
  if (g->capturing) {
    g->capturing = false;
    capturesUnderway().fetch_sub(1);
    try {
      g->graph.capture_end();
      g->graph.reset();
    } catch (const std::exception& e) {
      park(g, "an earlier capture was invalidated inside libtorch", e);
    }
  }
  g->onCaptureStream.reset();
}

}  // namespace

SEER_FN(cudaGraphOpen) {
  seer::refuseDuringCapture("CudaGraph.capture");  // no nested captures: opening synchronizes the device
  if (!brokenReason().empty()) throw std::runtime_error("CUDA graphs: " + brokenReason());
  auto g = std::make_shared<Graph>();
  g->device = a.i64(0) < 0 ? c10::cuda::current_device() : static_cast<c10::DeviceIndex>(a.i64(0));
  synchronizeDevice(g->device);  // what the step reads (inputs, earlier steps) is in place before the stream changes
  g->onCaptureStream.emplace(captureStream(g->device));
  return seer::num(a.env, graphs().add(std::move(g)));
}

SEER_FN(cudaGraphBegin) {
  auto g = graphs().get(a.i64(0));
  if (!g->onCaptureStream || g->capturing || g->captured) throw std::runtime_error("cudaGraphBegin: this graph was not just opened");
  synchronizeDevice(g->device);  // the warm-up is done
  // Cached free blocks of the ordinary pool cannot be released for the graph once capture runs (torch.cuda.graph
  // empties the cache first too).
  c10::cuda::CUDACachingAllocator::emptyCache();
  try {
    g->graph.capture_begin();
  } catch (const std::exception& e) {
    park(g, "a capture failed to begin", e);  // it may have routed the allocator to the graph's pool first
    throw;
  }
  g->capturing = true;
  capturesUnderway().fetch_add(1);
  return seer::undef(a.env);
}

SEER_FN(cudaGraphEnd) {
  auto g = graphs().get(a.i64(0));
  if (!g->capturing) throw std::runtime_error("cudaGraphEnd: this graph is not capturing");
  g->capturing = false;
  capturesUnderway().fetch_sub(1);
  try {
    g->graph.capture_end();
  } catch (const std::exception& e) {
    park(g, "a capture failed to end", e);
    g->onCaptureStream.reset();
    graphs().take(a.i64(0));
    throw;
  }
  g->onCaptureStream.reset();
  g->captured = true;
  return seer::undef(a.env);
}

SEER_FN(cudaGraphAbort) {
  if (auto g = graphs().take(a.i64(0))) abortCapture(g);
  return seer::undef(a.env);
}

SEER_FN(cudaGraphReplay) {
  auto g = graphs().get(a.i64(0));
  if (!g->captured) throw std::runtime_error("cudaGraphReplay: this graph has not finished capturing");
  g->graph.replay();
  return seer::undef(a.env);
}

SEER_FN(cudaGraphRelease) {
  if (auto g = graphs().take(a.i64(0))) abortCapture(g);  // then the graph's destructor frees it and its pool
  return seer::undef(a.env);
}

#else

[[noreturn]] static void noGraphs() {
#if SEERKIT_CUDA_RUNTIME
  throw std::runtime_error("CUDA graphs: this addon was built against the headers of CUDA " + std::to_string(CUDA_VERSION) + ", but libtorch uses CUDA " +
                           std::to_string(SEERKIT_TORCH_CUDA_VERSION) + " (CUDAGraph's layout differs); put the matching headers first (CUDA_HOME, or pip's nvidia wheels)");
#elif SEERKIT_WITH_CUDA
  throw std::runtime_error("CUDA graphs: this addon was built without the CUDA runtime's headers (cuda_runtime_api.h; see native/find_libtorch.js cudaheaders)");
#else
  throw std::runtime_error("CUDA graphs: this libtorch has no CUDA");
#endif
}
SEER_FN(cudaGraphOpen) { noGraphs(); }
SEER_FN(cudaGraphBegin) { noGraphs(); }
SEER_FN(cudaGraphEnd) { noGraphs(); }
SEER_FN(cudaGraphAbort) { return seer::undef(a.env); }
SEER_FN(cudaGraphReplay) { noGraphs(); }
SEER_FN(cudaGraphRelease) { return seer::undef(a.env); }

#endif

}  // namespace seer
