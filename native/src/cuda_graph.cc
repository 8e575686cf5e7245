// CUDA graphs: a training step recorded once and replayed as one launch (torch.cuda.graph over at::cuda::CUDAGraph).
//
// A step of a large model issues thousands of small kernel launches, each behind a host-side dispatch through this
// addon and ATen; a graph replays the same kernels, on the same memory, without the host. It requires what
// CUDAGraph requires: static shapes and addresses (inputs are copied into the tensors the step read while it was
// captured, outputs are read from the tensors it produced), no host synchronisation inside the step (item(),
// copies to the CPU), and the memory it allocated stays reserved for the graph (its private pool) until the graph is
// released.
//
//   cudaGraphBegin(device) -> id     a side stream becomes current on that device and capture starts on it (the
//                                    default stream cannot be captured); work queued before is waited for first
//   cudaGraphEnd(id)                 capture ends, the previous stream is current again; the graph is instantiated
//   cudaGraphAbort(id)               a step that threw while being captured: capture ends, whatever was recorded is
//                                    dropped, the previous stream is current again, the id is freed
//   cudaGraphReplay(id)              one replay on the current stream (asynchronous, as every kernel)
//   cudaGraphRelease(id)             frees the graph and its pool (idempotent)
//
// Builds without CUDA (or without the CUDA runtime's headers, which c10/cuda needs) export the same functions;
// they throw, naming what this build lacks.
#include "handles.h"

#if SEERKIT_CUDA_RUNTIME
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace seer {

#if SEERKIT_CUDA_RUNTIME

namespace {

struct Graph {
  at::cuda::CUDAGraph graph;
  // While capturing: the side stream made current (and the device with it); resetting it restores both.
  c10::optional<c10::cuda::CUDAStreamGuard> capturing;
  bool captured = false;
};

HandleTable<Graph>& graphs() {
  static auto* t = new HandleTable<Graph>("CUDA graph");
  return *t;
}

// Ends a capture that went wrong and drops what it recorded. capture_end() also returns the allocator's capture
// pool to normal use; it throws when the capture was invalidated (a host sync inside the step), which is expected.
void abortCapture(Graph& g) {
  if (!g.capturing) return;
  try {
    g.graph.capture_end();
  } catch (const std::exception&) {
  }
  g.capturing.reset();
  g.graph.reset();
}

}  // namespace

SEER_FN(cudaGraphBegin) {
  const auto device = static_cast<c10::DeviceIndex>(a.i64(0));
  auto g = std::make_shared<Graph>();
  // What the step reads (its inputs' copies, the warm-up's writes) must be done before the capture stream starts.
  c10::cuda::getCurrentCUDAStream(device).synchronize();
  g->capturing.emplace(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device));
  try {
    g->graph.capture_begin();
  } catch (...) {
    g->capturing.reset();
    throw;
  }
  return seer::num(a.env, graphs().add(std::move(g)));
}

SEER_FN(cudaGraphEnd) {
  auto g = graphs().get(a.i64(0));
  if (!g->capturing) throw std::runtime_error("cudaGraphEnd: this graph is not capturing");
  try {
    g->graph.capture_end();
  } catch (...) {
    g->capturing.reset();
    g->graph.reset();
    graphs().take(a.i64(0));
    throw;
  }
  g->capturing.reset();
  g->captured = true;
  return seer::undef(a.env);
}

SEER_FN(cudaGraphAbort) {
  if (auto g = graphs().take(a.i64(0))) abortCapture(*g);
  return seer::undef(a.env);
}

SEER_FN(cudaGraphReplay) {
  auto g = graphs().get(a.i64(0));
  if (!g->captured) throw std::runtime_error("cudaGraphReplay: this graph has not finished capturing");
  g->graph.replay();
  return seer::undef(a.env);
}

SEER_FN(cudaGraphRelease) {
  if (auto g = graphs().take(a.i64(0))) abortCapture(*g);  // the graph's destructor frees it and its pool
  return seer::undef(a.env);
}

#else

[[noreturn]] static void noGraphs() {
  throw std::runtime_error(SEERKIT_WITH_CUDA
                               ? "CUDA graphs: this addon was built without the CUDA runtime's headers (cuda_runtime_api.h; see native/find_libtorch.js cudaheaders)"
                               : "CUDA graphs: this libtorch has no CUDA");
}
SEER_FN(cudaGraphBegin) { noGraphs(); }
SEER_FN(cudaGraphEnd) { noGraphs(); }
SEER_FN(cudaGraphAbort) { return seer::undef(a.env); }
SEER_FN(cudaGraphReplay) { noGraphs(); }
SEER_FN(cudaGraphRelease) { return seer::undef(a.env); }

#endif

}  // namespace seer
