// Distributed training: c10d's TCPStore, process groups (Gloo; NCCL where libtorch has it) and the collectives
// src/dist/ builds on. Typed in src/native/binding.ts under "distributed".
//
// A process group is kept in its own small handle table (ids, explicit distDestroy), apart from tensors. Every
// collective is synchronous from JS's point of view: it starts the c10d Work and waits for it with the group's
// timeout. When a collective fails (a peer's connection closed, or no result within the timeout) the group is
// marked broken and a roll call over the store finds which ranks still answer; the JS Error names the operation,
// this rank, and the ranks that did not answer. A broken group refuses further work at once instead of hanging.
//
// libtorch versions: 1.13 (Debian) and 2.x. What differs is kept behind #if on TORCH_VERSION_MAJOR/MINOR:
//   - 2.0 made ProcessGroupGloo/NCCL subclasses of c10d::Backend (1.13: of c10d::ProcessGroup). Both bases have
//     the same virtual collectives (allreduce, allgather, broadcast, barrier) with the same signatures, and we
//     call those directly on the backend object.
//   - TCPStore(host, TCPStoreOptions), PrefixStore(prefix, store), ProcessGroupGloo(store, rank, size, options),
//     Options::create(timeout), options->devices / ->threads, createDeviceForHostname/Interface,
//     createDefaultDevice, Work::wait(timeout) and Tensor::register_hook are the same in 1.13 and 2.x.
//   - NCCL (built only with SEERKIT_WITH_NCCL, i.e. a CUDA libtorch whose ProcessGroupNCCL.hpp and nccl.h exist):
//     ProcessGroupNCCL(store, rank, size, options) with options->timeout; WorkNCCL::wait(timeout) with a timeout
//     other than kNoTimeout blocks the host until the kernels finished or the timeout passed (2.x behaviour).
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/version.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
// The collectives' base class, declared here and not only through the Gloo/NCCL headers, so that a build without
// either backend still compiles (it then fails at connect time with a message).
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

#if SEERKIT_WITH_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#if SEERKIT_GLOO_DIRECT  // Gloo's own collectives are exported by this libtorch (find_libtorch.js gloodirect)
#include <gloo/allgather.h>
#endif
#endif

#if SEERKIT_WITH_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "handles.h"

using seer::Args;
using seer::HandleTable;

namespace {

#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;  // ProcessGroupGloo/NCCL derive from Backend since 2.0
#else
using Collectives = c10d::ProcessGroup;
#endif

using Ms = std::chrono::milliseconds;

#if SEERKIT_WITH_GLOO
// c10d's Gloo process group, plus one shortcut. c10d hands every collective to a worker thread and wakes the caller
// when it is done, and Gloo's ring all-reduce exchanges several messages even for a few values: ~1.5 ms per
// collective on a 2-core VM, for PyTorch's own torch.distributed as for us. SyncBatchNorm, Sinkhorn and the
// per-step vote issue dozens of small all-reduces a step. allReduceHere runs them on the calling thread as a Gloo
// all-gather (a ring of P - 1 steps: a single exchange for 2 ranks) followed by a local reduction in rank order, on
// the same connections and with a tag from c10d's collective counter, so it stays ordered and matched with every
// other collective of the group on every rank; every rank computes the same result bit for bit. (Gloo's BCube
// all-reduce would also be a single exchange, but it waits with the connection's timeout, not the collective's.)
// Built only where this libtorch exports Gloo's collectives (SEERKIT_GLOO_DIRECT); elsewhere c10d's path is used.
class GlooGroup : public c10d::ProcessGroupGloo {
 public:
  using c10d::ProcessGroupGloo::ProcessGroupGloo;
#if SEERKIT_GLOO_DIRECT

  // Small contiguous CPU tensors of the dtypes below; larger ones (gradient buckets) gain nothing from it.
  static bool suits(const at::Tensor& t) {
    const auto d = t.scalar_type();
    const bool typed = d == at::kFloat || d == at::kDouble || d == at::kInt || d == at::kLong;
    return typed && t.device().is_cpu() && t.is_contiguous() && t.nbytes() <= (64 << 10);
  }

  // In place. Throws gloo's exception (an IoException on timeout or a closed peer).
  void allReduceHere(at::Tensor& t, c10d::ReduceOp op, Ms timeout) {
    const uint32_t tag = nextTag();
    auto context = getContext(tag);
    at::Tensor gathered = at::empty({context->size, t.numel()}, t.options());  // (ranks, numel)
    ::gloo::AllgatherOptions o(context);
    o.setTag(tag);
    o.setTimeout(timeout);
    AT_DISPATCH_ALL_TYPES(t.scalar_type(), "allReduceHere", [&] {
      o.setInput(t.data_ptr<scalar_t>(), static_cast<size_t>(t.numel()));
      o.setOutput(gathered.data_ptr<scalar_t>(), static_cast<size_t>(gathered.numel()));
    });
    ::gloo::allgather(o);
    at::Tensor reduced = op == c10d::ReduceOp::MAX ? gathered.amax(0) : op == c10d::ReduceOp::MIN ? gathered.amin(0) : gathered.sum(0);
    t.view({-1}).copy_(reduced);
  }
#endif
};
#else
class GlooGroup {};
#endif

// ---- groups --------------------------------------------------------------------------------------------------

struct Group {
  std::string name;              // "world", or the tag of a sub-group
  std::string backend;           // "gloo" | "nccl"
  int rank = 0;                  // this process's rank in the group
  int size = 1;
  std::vector<int> globalRanks;  // globalRanks[r]: the world rank of group rank r
  Ms timeout{0};                 // every collective's wait
  Ms backendTimeout{0};          // the backend's own (>= timeout: also bounds the rendezvous)
  Ms probe{0};                   // how long the roll call after a failure waits for answers
  std::string storeAddr;         // host:port of the TCPStore (world rank 0 runs it)
  c10::intrusive_ptr<c10d::Store> rootStore;  // the TCPStore, shared by the world group and its sub-groups
  c10::intrusive_ptr<c10d::Store> store;      // this group's keys (a PrefixStore on rootStore)
  c10::intrusive_ptr<Collectives> pg;
  class GlooGroup* gloo = nullptr;  // pg as our Gloo subclass (small all-reduces on the calling thread), or null

  // Set by the first failed collective; read by later calls (possibly from an autograd thread).
  std::mutex mu;
  bool broken = false;
  std::string failedOp, message;
  std::vector<int> suspects;  // world ranks that did not answer the roll call

  int globalRank() const { return globalRanks[rank]; }

  // Collectives this process waited for, and how long it was blocked in them (the exchange itself plus waiting for
  // slower ranks): what distributed training costs a rank beyond its own compute. Read by distWaitStats.
  std::atomic<int64_t> waited{0}, blockedNs{0};
};

// Adds the lifetime of a scope to a group's wait statistics.
class BlockedTimer {
 public:
  explicit BlockedTimer(Group& g) : g_(g), t0_(std::chrono::steady_clock::now()) {}
  ~BlockedTimer() {
    g_.waited++;
    g_.blockedNs += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  Group& g_;
  std::chrono::steady_clock::time_point t0_;
};

class GroupTable {
 public:
  int32_t add(std::shared_ptr<Group> g) { return slots_.add(std::move(g)); }
  std::shared_ptr<Group> get(int64_t id) { return slots_.get(id); }
  // A broken group may still have a collective running on a backend thread, whose destructor would wait for it
  // (up to the timeout): such groups are parked, never destroyed, and go with the process.
  void release(int64_t id) {
    std::shared_ptr<Group> g = slots_.take(id);
    if (!g) return;
    bool broken;
    {
      std::lock_guard<std::mutex> lock(g->mu);
      broken = g->broken;
    }
    if (broken) parked_.push_back(std::move(g));
  }

 private:
  HandleTable<Group> slots_{"process group"};
  std::vector<std::shared_ptr<Group>> parked_;
};

// Never destroyed: at process exit, backend threads and the store's server thread simply end with the process,
// instead of being joined by static destructors (which could block on a dead peer).
GroupTable& groups() {
  static GroupTable* t = new GroupTable();
  return *t;
}

std::string joinRanks(const std::vector<int>& rs) {
  std::ostringstream s;
  for (size_t i = 0; i < rs.size(); ++i) s << (i ? ", " : "") << rs[i];
  return s.str();
}

std::string describe(const Group& g) {
  std::ostringstream s;
  s << "rank " << g.globalRank();
  if (g.name != "world") s << " (rank " << g.rank << " of sub-group '" << g.name << "')";
  s << ", " << g.size << " ranks, " << g.backend;
  return s.str();
}

// ---- failures ------------------------------------------------------------------------------------------------

// An exception's message without c10's appended backtrace.
std::string oneLine(const std::exception& e) {
  const c10::Error* ce = dynamic_cast<const c10::Error*>(&e);
  std::string s = ce ? ce->what_without_backtrace() : e.what();
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

// After a failed collective: every rank that notices marks itself in the group's store, then waits up to
// g.probe for the others' marks. Ranks that never mark are dead, hung, or still blocked in the collective.
// If the store itself is unreachable, its host (world rank 0) is the suspect.
std::string rollCall(Group& g, std::vector<int>& suspects) {
  const std::string prefix = "seerkit_rollcall/";
  std::vector<int> missing;
  for (int r = 0; r < g.size; ++r)
    if (r != g.rank) missing.push_back(r);
  try {
    g.store->set(prefix + std::to_string(g.rank), std::vector<uint8_t>{1});
    auto deadline = std::chrono::steady_clock::now() + g.probe;
    while (!missing.empty()) {
      missing.erase(std::remove_if(missing.begin(), missing.end(),
                                   [&](int r) { return g.store->check({prefix + std::to_string(r)}); }),
                    missing.end());
      if (missing.empty() || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(Ms(50));
    }
  } catch (const std::exception& e) {
    std::string why = e.what();
    if (auto nl = why.find('\n'); nl != std::string::npos) why.resize(nl);
    suspects = {0};
    return "The store at " + g.storeAddr + ", run by rank 0, is unreachable (" + why +
           "): rank 0 is dead or its machine is unreachable.";
  }
  std::vector<int> answered{g.globalRank()};
  for (int r = 0; r < g.size; ++r)
    if (r != g.rank && std::find(missing.begin(), missing.end(), r) == missing.end()) answered.push_back(g.globalRanks[r]);
  std::sort(answered.begin(), answered.end());
  suspects.clear();
  for (int r : missing) suspects.push_back(g.globalRanks[r]);
  if (suspects.empty()) return "Every rank answered the roll call, so none is known to be dead.";
  std::ostringstream s;
  s << (suspects.size() == 1 ? "Rank " : "Ranks ") << joinRanks(suspects) << " did"
    << " not answer a roll call within " << g.probe.count() << " ms (dead, hung, or still blocked); "
    << (answered.size() == 1 ? "rank " : "ranks ") << joinRanks(answered) << " answered.";
  return s.str();
}

[[noreturn]] void fail(Group& g, const std::string& op, std::string cause) {
  if (auto nl = cause.find('\n'); nl != std::string::npos) cause.resize(nl);  // c10 appends a backtrace
  if (cause.find("timed out") != std::string::npos || cause.find("Timed out") != std::string::npos)
    cause += " (no result within the timeout of " + std::to_string(g.timeout.count()) + " ms)";
  std::vector<int> suspects;
  std::string roll = rollCall(g, suspects);
  std::string msg = op + " failed on " + describe(g) + ": " + cause + ". " + roll;
  {
    std::lock_guard<std::mutex> lock(g.mu);
    if (!g.broken) {
      g.broken = true;
      g.failedOp = op;
      g.message = msg;
      g.suspects = suspects;
    }
  }
  throw std::runtime_error(msg);
}

void checkUsable(Group& g, const std::string& op) {
  seer::refuseDuringCapture((op + ", a collective,").c_str());  // waits on the host (cuda_graph.cc)
  std::lock_guard<std::mutex> lock(g.mu);
  if (g.broken)
    throw std::runtime_error(op + " refused on " + describe(g) + ": the group is broken since an earlier failure (" +
                             g.message + ")");
}

// Starts a collective. A call the backend refuses at once (a dtype it does not support, ...) is this rank's mistake
// and throws as it is.
c10::intrusive_ptr<c10d::Work> begin(Group& g, const std::string& op, const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
  checkUsable(g, op);
  try {
    return start();
  } catch (const std::exception& e) {
    throw std::runtime_error(op + " refused by the " + g.backend + " backend on " + describe(g) + ": " + oneLine(e));
  }
}

// Waits for a started collective with the group's timeout; a failure while waiting goes through fail().
void await(Group& g, const std::string& op, c10d::Work& work) {
  std::string cause;
  try {
    BlockedTimer blocked(g);
    work.wait(g.timeout);
    return;
  } catch (const c10::Error& e) {
    cause = e.what_without_backtrace();
  } catch (const std::exception& e) {
    cause = e.what();
  }
  fail(g, op, cause);
}

void run(Group& g, const std::string& op, const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
  await(g, op, *begin(g, op, start));
}

// ---- collectives on one tensor ---------------------------------------------------------------------------------

enum class Reduce { Sum = 0, Max = 1, Min = 2, Avg = 3 };

Reduce reduceFromCode(int64_t code) {
  if (code < 0 || code > 3) throw std::invalid_argument("unknown reduction code " + std::to_string(code));
  return static_cast<Reduce>(code);
}

// Backends want dense contiguous tensors: work on a contiguous copy and copy back when t is not one.
template <typename F>
void onContiguous(at::Tensor t, F&& f) {
  at::Tensor c = t.is_contiguous() ? t : t.contiguous();
  f(c);
  if (!c.is_same(t)) t.copy_(c);
}

void allReduceInPlace(Group& g, at::Tensor t, Reduce how, const std::string& op) {
  if (how == Reduce::Avg && !at::isFloatingType(t.scalar_type()))
    throw std::invalid_argument(op + ": 'avg' needs a floating-point tensor, got " + std::string(c10::toString(t.scalar_type())));
  at::NoGradGuard noGrad;
  onContiguous(t.detach(), [&](at::Tensor& c) {
    std::vector<at::Tensor> ts{c};
    c10d::AllreduceOptions o;
    o.reduceOp = how == Reduce::Max ? c10d::ReduceOp::MAX : how == Reduce::Min ? c10d::ReduceOp::MIN : c10d::ReduceOp::SUM;
    o.timeout = g.timeout;
#if SEERKIT_WITH_GLOO && SEERKIT_GLOO_DIRECT
    if (g.gloo && GlooGroup::suits(c)) {
      checkUsable(g, op);
      try {
        BlockedTimer blocked(g);
        g.gloo->allReduceHere(c, o.reduceOp, g.timeout);
      } catch (const std::exception& e) {
        fail(g, op, oneLine(e));
      }
    } else
#endif
    run(g, op, [&] { return g.pg->allreduce(ts, o); });
    if (how == Reduce::Avg) c.div_(g.size);  // Gloo has no AVG: sum, then divide
  });
}

std::vector<at::Tensor> allGather(Group& g, const at::Tensor& t, const std::string& op) {
  at::NoGradGuard noGrad;
  std::vector<at::Tensor> inputs{t.detach().contiguous()};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < g.size; ++r) outputs[0].push_back(at::empty_like(inputs[0], at::MemoryFormat::Contiguous));
  c10d::AllgatherOptions o;
  o.timeout = g.timeout;
  run(g, op, [&] { return g.pg->allgather(outputs, inputs, o); });
  return outputs[0];
}

// ---- creating groups -------------------------------------------------------------------------------------------

#if SEERKIT_WITH_GLOO
std::shared_ptr<::gloo::transport::Device> glooDevice(const std::string& kind, const std::string& value) {
  if (kind == "interface") return c10d::ProcessGroupGloo::createDeviceForInterface(value);
  if (kind == "hostname") return c10d::ProcessGroupGloo::createDeviceForHostname(value);
  if (kind == "default") return c10d::ProcessGroupGloo::createDefaultDevice();
  throw std::invalid_argument("unknown Gloo device kind '" + kind + "' (interface, hostname or default)");
}
#endif

// Creates the backend of g on g.store (ranks meet there: Gloo connects a full mesh, NCCL exchanges its id).
// backendTimeout bounds the connection and the backend's own operations; run() bounds each collective's wait.
void connect(Group& g, const std::string& deviceKind, const std::string& deviceValue, Ms backendTimeout) {
  g.backendTimeout = backendTimeout;
  if (g.backend == "gloo") {
#if SEERKIT_WITH_GLOO
    auto o = c10d::ProcessGroupGloo::Options::create(backendTimeout);
    o->devices.push_back(glooDevice(deviceKind, deviceValue));
    o->threads = 2;
    auto pg = c10::make_intrusive<GlooGroup>(g.store, g.rank, g.size, o);
    g.gloo = pg.get();
    g.pg = pg;
#else
    throw std::runtime_error(
        "this build of seerkit has no Gloo: libtorch's ProcessGroupGloo.hpp or gloo's headers were missing at build "
        "time (Debian: apt-get install libgloo-dev, then npm run build:native)");
#endif
  } else if (g.backend == "nccl") {
#if SEERKIT_WITH_NCCL
    auto o = c10d::ProcessGroupNCCL::Options::create();
    o->timeout = backendTimeout;
    g.pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(g.store, g.rank, g.size, o);
#else
    throw std::runtime_error(
        "this build of seerkit has no NCCL: it needs a CUDA libtorch with ProcessGroupNCCL.hpp and nccl.h at build "
        "time (NCCL_INCLUDE_DIR=... npm run build:native); use backend 'gloo' on CPUs");
#endif
  } else {
    throw std::invalid_argument("unknown backend '" + g.backend + "' (gloo or nccl)");
  }
}

}  // namespace

// distInit(backend, host, port, rank, worldSize, timeoutMs, initTimeoutMs, probeMs, deviceKind, deviceValue) -> id
// Rank 0 runs the TCPStore server on host:port and waits (up to initTimeoutMs) until all worldSize ranks joined;
// the others connect to it (retrying up to initTimeoutMs). Then the backend connects the ranks. Processes start at
// different speeds, so the rendezvous may get longer than a collective: the backend's own timeout is the longer of
// the two, and each collective's wait enforces timeoutMs.
SEER_FN(distInit) {
  auto g = std::make_shared<Group>();
  g->name = "world";
  g->backend = a.str(0);
  std::string host = a.str(1);
  int port = a.i32(2);
  g->rank = a.i32(3);
  g->size = a.i32(4);
  g->timeout = Ms(a.i64(5));
  Ms initTimeout(a.i64(6));
  g->probe = Ms(a.i64(7));
  std::string deviceKind = a.str(8), deviceValue = a.str(9);
  if (g->size < 1 || g->rank < 0 || g->rank >= g->size)
    throw std::invalid_argument("rank " + std::to_string(g->rank) + " is outside a world of " + std::to_string(g->size));
  if (port < 1 || port > 65535) throw std::invalid_argument("port " + std::to_string(port) + " is outside 1..65535");
  for (int r = 0; r < g->size; ++r) g->globalRanks.push_back(r);
  g->storeAddr = host + ":" + std::to_string(port);

  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(port);
  so.isServer = g->rank == 0;
  so.numWorkers = static_cast<size_t>(g->size);
  so.waitWorkers = true;
  so.timeout = initTimeout;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  // 2.4 made libuv the store's default transport; Node exports its own uv_* symbols into the process, so keep
  // c10d's plain-socket store and never mix two libuv builds.
  so.useLibUV = false;
#endif
  try {
    g->rootStore = c10::make_intrusive<c10d::TCPStore>(host, so);
  } catch (const std::exception& e) {
    std::string what = oneLine(e);
    if (g->rank == 0)
      throw std::runtime_error("rank 0 could not run the store at " + g->storeAddr + " for " + std::to_string(g->size) +
                               " ranks within " + std::to_string(initTimeout.count()) + " ms: " + what);
    throw std::runtime_error("rank " + std::to_string(g->rank) + " could not join the store at " + g->storeAddr +
                             " (run by rank 0) within " + std::to_string(initTimeout.count()) + " ms: " + what);
  }
  g->store = c10::make_intrusive<c10d::PrefixStore>("seerkit_pg/world", g->rootStore);
  try {
    connect(*g, deviceKind, deviceValue, std::max(initTimeout, g->timeout));
  } catch (const std::exception& e) {
    throw std::runtime_error("rank " + std::to_string(g->rank) + " could not connect the " + g->backend + " group of " +
                             std::to_string(g->size) + " ranks via " + g->storeAddr + ": " + oneLine(e));
  }
  return seer::num(a.env, groups().add(std::move(g)));
}

// distNewGroup(parent, tag, worldRanks[], deviceKind, deviceValue) -> group id, or -1 when this rank is not in it.
// Every member calls it with the same tag and ranks; the group's keys live under the tag in the parent's store.
SEER_FN(distNewGroup) {
  auto parent = groups().get(a.i64(0));
  std::string tag = a.str(1);
  std::vector<int64_t> ranks = a.ints(2);
  std::string deviceKind = a.str(3), deviceValue = a.str(4);
  int me = parent->globalRank();
  auto it = std::find(ranks.begin(), ranks.end(), me);
  if (it == ranks.end()) return seer::num(a.env, -1);
  auto g = std::make_shared<Group>();
  g->name = tag;
  g->backend = parent->backend;
  g->rank = static_cast<int>(it - ranks.begin());
  g->size = static_cast<int>(ranks.size());
  for (int64_t r : ranks) g->globalRanks.push_back(static_cast<int>(r));
  g->timeout = parent->timeout;
  g->probe = parent->probe;
  g->storeAddr = parent->storeAddr;
  g->rootStore = parent->rootStore;
  g->store = c10::make_intrusive<c10d::PrefixStore>("seerkit_pg/" + tag, parent->rootStore);
  try {
    connect(*g, deviceKind, deviceValue, parent->backendTimeout);
  } catch (const std::exception& e) {
    throw std::runtime_error("rank " + std::to_string(me) + " could not connect sub-group '" + tag + "' (ranks " +
                             joinRanks(g->globalRanks) + "): " + oneLine(e));
  }
  return seer::num(a.env, groups().add(std::move(g)));
}

SEER_FN(distDestroy) {
  groups().release(a.i64(0));
  return seer::undef(a.env);
}

// distWaitStats(group) -> [collectives waited for, ms blocked in them] since the group was created.
SEER_FN(distWaitStats) {
  auto g = groups().get(a.i64(0));
  napi_value arr;
  napi_create_array_with_length(a.env, 2, &arr);
  napi_set_element(a.env, arr, 0, seer::num(a.env, static_cast<double>(g->waited.load())));
  napi_set_element(a.env, arr, 1, seer::num(a.env, static_cast<double>(g->blockedNs.load()) / 1e6));
  return arr;
}

// The backends this build can create.
SEER_FN(distBackends) {
  std::vector<std::string> names;
#if SEERKIT_WITH_GLOO
  names.push_back("gloo");
#endif
#if SEERKIT_WITH_NCCL
  names.push_back("nccl");
#endif
  napi_value arr;
  napi_create_array_with_length(a.env, names.size(), &arr);
  for (size_t i = 0; i < names.size(); ++i) napi_set_element(a.env, arr, i, seer::str(a.env, names[i]));
  return arr;
}

// distFailure(group) -> [op, message, suspectWorldRanks[]] after a failed collective, else undefined.
SEER_FN(distFailure) {
  auto g = groups().get(a.i64(0));
  std::lock_guard<std::mutex> lock(g->mu);
  if (!g->broken) return seer::undef(a.env);
  napi_value arr, suspects;
  napi_create_array_with_length(a.env, 3, &arr);
  napi_set_element(a.env, arr, 0, seer::str(a.env, g->failedOp));
  napi_set_element(a.env, arr, 1, seer::str(a.env, g->message));
  napi_create_array_with_length(a.env, g->suspects.size(), &suspects);
  for (size_t i = 0; i < g->suspects.size(); ++i) napi_set_element(a.env, suspects, i, seer::num(a.env, g->suspects[i]));
  napi_set_element(a.env, arr, 2, suspects);
  return arr;
}

// distAllReduce(group, t, reduce 0 sum | 1 max | 2 min | 3 avg): in place, on every rank.
SEER_FN(distAllReduce) {
  auto g = groups().get(a.i64(0));
  allReduceInPlace(*g, a.t(1), reduceFromCode(a.i64(2)), "allReduce");
  return seer::undef(a.env);
}

// distAllReduceWithGrad(group, t) -> the sum of t over the group's ranks, differentiable: the gradient that reaches
// t is the sum over ranks of the gradients of the result (the backward of a sum-allreduce is a sum-allreduce).
// Forward: out = reduced + (t - t.detach()), which has reduced's value exactly and passes gradients to t unchanged;
// a hook on out all-reduces its gradient during backward. Every rank must run the same backward, as with any
// collective.
SEER_FN(distAllReduceWithGrad) {
  auto g = groups().get(a.i64(0));
  const at::Tensor& local = a.t(1);
  at::Tensor reduced = local.detach().clone(at::MemoryFormat::Contiguous);
  allReduceInPlace(*g, reduced, Reduce::Sum, "allReduce (autograd forward)");
  if (!local.requires_grad() || !at::GradMode::is_enabled()) return seer::wrap(a.env, reduced);
  at::Tensor out = reduced + (local - local.detach());
  std::shared_ptr<Group> keep = g;  // the hook may run after JS destroyed the group's handle
  out.register_hook([keep](at::Tensor grad) {
    at::Tensor summed = grad.clone(at::MemoryFormat::Contiguous);
    allReduceInPlace(*keep, summed, Reduce::Sum, "allReduce (autograd backward)");
    return summed;
  });
  return seer::wrap(a.env, out);
}

// ---- synchronized BatchNorm -------------------------------------------------------------------------------------
//
// Training-mode BatchNorm whose statistics are those of the whole batch over a group's ranks, as one autograd node
// with a hand-written backward (as torch's SyncBatchNorm on CUDA), so that it costs about what a plain BatchNorm
// costs plus one small collective in forward and one in backward. Per channel, x (N, C, *) with n values here:
//
//   forward   local [n·mean, n·(var + mean²), n] in float64 -> all-reduce -> [S, Q, N]
//             mean = S/N, var = Q/N - mean² (biased), invstd = 1/sqrt(var + eps)
//             y = (x - mean)·invstd·w + b      (ATen's fused batch_norm, given mean and var as its statistics)
//   backward  local [Σ dy, Σ dy·x̂] (ATen's fused BatchNorm backward in eval mode: its grad_bias and grad_weight)
//             -> all-reduce -> global means m_dy = Σ/N, m_dyx̂ = Σ/N
//             dx = w·invstd·(dy - m_dy - x̂·m_dyx̂),  dw = local Σ dy·x̂,  db = local Σ dy
//
// dw and db stay local: the gradient all-reducer averages them with the other parameters, as it does for every
// parameter. The second output is [mean (C), unbiased var (C), N (1)] in float64 for the running statistics.

// Holds a group inside autograd's saved data (an IValue capsule), so that backward finds it even after JS
// destroyed the group's handle.
struct GroupCapsule : torch::CustomClassHolder {
  explicit GroupCapsule(std::shared_ptr<Group> g) : group(std::move(g)) {}
  std::shared_ptr<Group> group;
};

// All dims but the channel dim (1).
std::vector<int64_t> nonChannelDims(const at::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

// (C) -> (1, C, 1, ...) to broadcast against x.
at::Tensor perChannel(const at::Tensor& v, const at::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = v.size(0);
  return v.view(shape);
}

struct SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
  // weight and bias are optional (not undefined tensors: libtorch 1.13's custom functions take no undefined inputs).
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                                                const c10::optional<at::Tensor>& weightOpt,
                                                const c10::optional<at::Tensor>& biasOpt, double eps,
                                                std::shared_ptr<Group> group) {
    const at::Tensor weight = weightOpt.value_or(at::Tensor()), bias = biasOpt.value_or(at::Tensor());
    if (x.dim() < 2) throw std::invalid_argument("SyncBatchNorm: expected an input of at least 2 dims (N, C, ...), got " + std::to_string(x.dim()));
    const int64_t channels = x.size(1);
    const double n = static_cast<double>(x.numel() / std::max<int64_t>(channels, 1));
    // ATen's BatchNorm statistics kernel (one pass over contiguous inputs): this rank's mean and biased variance.
    auto [mean, var] = at::batch_norm_update_stats(x, {}, {}, 0.0);
    at::Tensor mean64 = mean.to(at::kDouble), var64 = var.to(at::kDouble);
    at::Tensor count = at::full({1}, n, mean64.options());
    at::Tensor stats = at::cat({mean64 * n, (var64 + mean64 * mean64) * n, count});  // (2C + 1)
    allReduceInPlace(*group, stats, Reduce::Sum, "SyncBatchNorm statistics (forward)");
    // N stays a tensor: reading it on the host would stall a CUDA stream once per layer. The check reads it on the
    // CPU only; on CUDA it assumes equal slices per rank, as data-parallel training has (torch's SyncBatchNorm
    // checks the same from shapes).
    at::Tensor total = stats.narrow(0, 2 * channels, 1);  // (1)
    const double totalSeen = x.device().is_cpu() ? total.item<double>() : n * group->size;
    if (totalSeen <= 1)
      throw std::invalid_argument("SyncBatchNorm: expected more than 1 value per channel over the group's ranks, got " + std::to_string(totalSeen));
    at::Tensor gmean = stats.narrow(0, 0, channels) / total;
    at::Tensor gvar = (stats.narrow(0, channels, channels) / total - gmean * gmean).clamp_min(0);

    // The statistics' dtype: the weight's (float32 under autocast), else x's, but never below float32.
    const auto xt = x.scalar_type();
    const auto statDtype = weight.defined() ? weight.scalar_type() : (xt == at::kHalf || xt == at::kBFloat16) ? at::kFloat : xt;
    at::Tensor mean_s = gmean.to(statDtype), var_s = gvar.to(statDtype);
    at::Tensor y = at::batch_norm(x, weight, bias, mean_s, var_s, /*training=*/false, 0.0, eps, /*cudnn_enabled=*/true);

    ctx->save_for_backward({x, weight, mean_s, var_s});
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["total"] = total;  // a tensor
    ctx->saved_data["hasBias"] = bias.defined();
    ctx->saved_data["group"] = c10::IValue::make_capsule(c10::make_intrusive<GroupCapsule>(group));
    at::Tensor running = at::cat({gmean, gvar * (total / (total - 1)), total});
    ctx->mark_non_differentiable({running});
    return {y, running};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &mean = saved[2], &var = saved[3];
    const at::Tensor weight = saved[1].defined() ? saved[1] : at::ones({x.size(1)}, mean.options());
    const double eps = ctx->saved_data["eps"].toDouble();
    const at::Tensor total = ctx->saved_data["total"].toTensor();
    auto group = static_cast<GroupCapsule*>(ctx->saved_data["group"].toCapsule().get())->group;
    at::Tensor dy = grads[0].defined() ? grads[0] : at::zeros_like(x);
    const int64_t channels = x.size(1);

    // Eval-mode BatchNorm backward with (mean, var) as its statistics: grad_weight = Σ dy·x̂, grad_bias = Σ dy.
    // save_mean/save_invstd are unused in eval mode, but CUDA's kernel asserts that they are defined.
    at::Tensor none = at::empty({0}, mean.options());
    auto [unused, sumDyXhat, sumDy] =
        at::native_batch_norm_backward(dy, x, weight, mean, var, none, none, /*train=*/false, eps, {false, true, true});
    at::Tensor sums = at::cat({sumDy.to(at::kDouble), sumDyXhat.to(at::kDouble)});  // (2C)
    allReduceInPlace(*group, sums, Reduce::Sum, "SyncBatchNorm gradient (backward)");
    at::Tensor meanDy = sums.narrow(0, 0, channels) / total, meanDyXhat = sums.narrow(0, channels, channels) / total;

    // dx = w·invstd·(dy - m_dy - x̂·m_dyx̂) = A·dy + B·x + C per channel, with A = w·invstd, B = -A·invstd·m_dyx̂,
    // C = -A·m_dy - B·mean: two passes. In bf16/fp16, B·x and C nearly cancel when the mean is large against the
    // spread, so there the centred form A·(dy - m_dy) + B·(x - mean) is computed in float32 instead.
    at::Tensor invstd = (var.to(at::kDouble) + eps).rsqrt();
    at::Tensor A = weight.to(at::kDouble) * invstd;
    at::Tensor B = -A * invstd * meanDyXhat;
    const auto dt = dy.scalar_type();
    at::Tensor dx;
    if (dt == at::kHalf || dt == at::kBFloat16) {
      auto f = [&](const at::Tensor& v) { return perChannel(v.to(at::kFloat), x); };
      dx = ((dy.to(at::kFloat) - f(meanDy)) * f(A) + (x.to(at::kFloat) - f(mean)) * f(B)).to(dt);
    } else {
      at::Tensor C = -A * meanDy - B * mean.to(at::kDouble);
      dx = at::addcmul(perChannel(C.to(dt), x), dy, perChannel(A.to(dt), x));
      dx.addcmul_(x, perChannel(B.to(dt), x));
    }
    const bool hasBias = ctx->saved_data["hasBias"].toBool();
    return {dx, saved[1].defined() ? sumDyXhat : at::Tensor(), hasBias ? sumDy : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// distSyncBatchNorm(group, x, weight|null, bias|null, eps) -> [y, running (2C + 1, float64: mean, unbiased var, N)]
SEER_FN(distSyncBatchNorm) {
  auto g = groups().get(a.i64(0));
  checkUsable(*g, "SyncBatchNorm");
  auto w = a.optT(2), b = a.optT(3);
  auto outs = SyncBatchNormFunction::apply(a.t(1), w, b, a.d(4), g);
  return seer::wrapList(a.env, outs);
}

// ---- gradient averaging, overlapped with backward ----------------------------------------------------------------
//
// What torch's DistributedDataParallel Reducer does, on autograd hooks: the parameters are split into buckets (in
// the order backward usually finishes them). A hook on each parameter's AccumulateGrad node marks the parameter
// ready once its gradient is complete; when every parameter of the next bucket in order is ready, the bucket's
// gradients are flattened into one buffer and its all-reduce starts on the backend's threads while backward goes on.
// finish() starts what backward left (buckets holding a parameter that got no gradient on this rank), waits for
// every bucket, and writes the averages back. Buckets always start in bucket order, so that every rank issues the
// same collectives in the same order, whatever its graph used.
//
// Each bucket's buffer ends with one flag per parameter (1 if it had a gradient here): after the sum it counts the
// ranks that had one. A parameter with no gradient here but one elsewhere gets the average (a zero counted here);
// one with a gradient on no rank keeps none; one whose gradient was dropped after backward (SwAV's frozen
// prototypes) stays dropped.

struct GradReducer {
  struct Bucket {
    std::vector<size_t> params;  // indices into GradReducer::params
    size_t pending = 0;          // parameters not yet ready in this backward
    at::Tensor flat;             // (Σ numel + flags), summed over the ranks once work completes
    std::vector<bool> hadGrad;   // per parameter, when the bucket started
    c10::intrusive_ptr<c10d::Work> work;
  };

  std::shared_ptr<Group> group;
  std::vector<at::Tensor> params;
  std::vector<size_t> bucketOf;
  std::vector<Bucket> buckets;
  // AccumulateGrad nodes are owned by the graph while it exists and re-created for the next one unless someone
  // keeps them: holding them keeps the hooks in place for every backward.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
  std::vector<uintptr_t> hookKeys;
  std::vector<bool> ready;
  size_t nextToStart = 0;
  bool armed = false;
  std::mutex mu;  // on CUDA, hooks run on autograd's device threads

  void arm() {
    std::lock_guard<std::mutex> lock(mu);
    if (nextToStart > 0) {
      // A backward started buckets and never reached finish() (it threw): those collectives were issued here only
      // up to where it failed, so this group's collectives can no longer be matched with the other ranks'.
      fail(*group, "gradient all-reduce", "an earlier backward started gradient all-reduces and failed before they were finished");
    }
    reset();
    armed = true;
  }

  // No bucket started, no parameter ready (with mu held, or before the reducer is shared).
  void reset() {
    for (auto& b : buckets) {
      b.pending = b.params.size();
      b.flat = at::Tensor();
      b.work.reset();
    }
    std::fill(ready.begin(), ready.end(), false);
    nextToStart = 0;
  }

  void markReady(size_t i) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed || ready[i]) return;
    ready[i] = true;
    --buckets[bucketOf[i]].pending;
    while (nextToStart < buckets.size() && buckets[nextToStart].pending == 0) start(nextToStart++);
  }

  // Called with mu held.
  void start(size_t index) {
    Bucket& b = buckets[index];
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> parts;
    b.hadGrad.assign(b.params.size(), false);
    std::vector<double> flags;
    for (size_t j = 0; j < b.params.size(); ++j) {
      const at::Tensor& p = params[b.params[j]];
      const at::Tensor& g = p.grad();
      b.hadGrad[j] = g.defined();
      parts.push_back(g.defined() ? g.reshape({-1}) : at::zeros({p.numel()}, p.options()));
      flags.push_back(g.defined() ? 1.0 : 0.0);
    }
    const at::Tensor& first = params[b.params[0]];
    parts.push_back(at::tensor(flags, at::TensorOptions().dtype(at::kDouble)).to(first.options()));
    b.flat = at::cat(parts);
    std::vector<at::Tensor> ts{b.flat};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = group->timeout;
    b.work = begin(*group, "gradient all-reduce", [&] { return group->pg->allreduce(ts, o); });
  }

  // Returns how many buckets had started during backward.
  size_t finish() {
    std::lock_guard<std::mutex> lock(mu);
    armed = false;
    const size_t early = nextToStart;
    while (nextToStart < buckets.size()) start(nextToStart++);
    at::NoGradGuard noGrad;
    for (auto& b : buckets) {
      if (!b.work) throw std::runtime_error("gradient all-reduce: a bucket failed to start during backward (see the error it raised then)");
      await(*group, "gradient all-reduce", *b.work);
      std::vector<int64_t> sizes;
      for (size_t i : b.params) sizes.push_back(params[i].numel());
      sizes.push_back(static_cast<int64_t>(b.params.size()));
      auto pieces = b.flat.split_with_sizes(sizes);
      at::Tensor counts = pieces.back().to(at::kDouble).cpu().contiguous();
      const double* count = counts.data_ptr<double>();
      // The average is written straight into each gradient: one pass over the bucket, not a division and a copy.
      const at::Tensor ranks = at::scalar_tensor(static_cast<double>(group->size), b.flat.options());
      for (size_t j = 0; j < b.params.size(); ++j) {
        at::Tensor& p = params[b.params[j]];
        at::Tensor sum = pieces[j].view(p.sizes());
        at::Tensor g = p.grad();
        if (g.defined()) {
          at::div_out(g, sum, ranks);  // into the gradient it had at the start (or one created since), its strides kept
        } else if (!b.hadGrad[j] && count[j] > 0) {
          at::Tensor avg = at::empty_like(p);  // p's layout
          at::div_out(avg, sum, ranks);
          p.mutable_grad() = avg;
        }
        // else: none anywhere, or dropped here after backward: stays without one
      }
    }
    reset();  // frees the buffers and works
    return early;
  }
};

struct ReadyHook : torch::autograd::FunctionPostHook {
  ReadyHook(std::weak_ptr<GradReducer> r, size_t i) : reducer(std::move(r)), index(i) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    if (auto r = reducer.lock()) r->markReady(index);
    return outputs;
  }
  std::weak_ptr<GradReducer> reducer;
  size_t index;
};

HandleTable<GradReducer>& reducers() {
  static auto* t = new HandleTable<GradReducer>("gradient reducer");
  return *t;
}

// distReducerNew(group, params[], bucketSizes[]) -> id. params: leaves that require grad, in bucket order;
// bucketSizes: how many consecutive params each bucket takes.
SEER_FN(distReducerNew) {
  auto r = std::make_shared<GradReducer>();
  r->group = groups().get(a.i64(0));
  r->params = a.tensors(1);
  std::vector<int64_t> sizes = a.ints(2);
  size_t next = 0;
  for (int64_t n : sizes) {
    if (n < 1) throw std::invalid_argument("gradient reducer: a bucket needs at least one parameter");
    GradReducer::Bucket b;
    for (int64_t k = 0; k < n; ++k, ++next) {
      if (next >= r->params.size()) throw std::invalid_argument("gradient reducer: the buckets hold more parameters than were given");
      const at::Tensor& p = r->params[next];
      if (!p.is_leaf() || !p.requires_grad()) throw std::invalid_argument("gradient reducer: parameter " + std::to_string(next) + " is not a leaf that requires grad");
      b.params.push_back(next);
      r->bucketOf.push_back(r->buckets.size());
    }
    r->buckets.push_back(std::move(b));
  }
  if (next != r->params.size()) throw std::invalid_argument("gradient reducer: the buckets hold fewer parameters than were given");
  r->ready.assign(r->params.size(), false);
  r->reset();
  for (size_t i = 0; i < r->params.size(); ++i) {
    auto acc = torch::autograd::impl::grad_accumulator(r->params[i]);
    r->hookKeys.push_back(acc->add_post_hook(std::make_unique<ReadyHook>(r, i)));
    r->accumulators.push_back(std::move(acc));
  }
  return seer::num(a.env, reducers().add(std::move(r)));
}

// distReducerArm(id): the next backward starts buckets as they become ready.
SEER_FN(distReducerArm) {
  seer::refuseDuringCapture("the gradient all-reduce");
  reducers().get(a.i64(0))->arm();
  return seer::undef(a.env);
}

// distReducerFinish(id) -> buckets started during backward; starts the others, waits for all, writes the averages.
SEER_FN(distReducerFinish) {
  seer::refuseDuringCapture("the gradient all-reduce");
  return seer::num(a.env, static_cast<double>(reducers().get(a.i64(0))->finish()));
}

SEER_FN(distReducerDestroy) {
  auto r = reducers().take(a.i64(0));
  if (r)  // else destroyed already
    for (size_t i = 0; i < r->accumulators.size(); ++i) r->accumulators[i]->del_post_hook(r->hookKeys[i]);
  return seer::undef(a.env);
}

// distAllGather(group, t) -> [t of rank 0, t of rank 1, ...]; t must have the same shape and dtype on every rank.
SEER_FN(distAllGather) { return seer::wrapList(a.env, allGather(*groups().get(a.i64(0)), a.t(1), "allGather")); }

// distAllGatherCat(group, t) -> the ranks' tensors concatenated along dim 0, in rank order (stacked if 0-d).
SEER_FN(distAllGatherCat) {
  auto parts = allGather(*groups().get(a.i64(0)), a.t(1), "allGather");
  return seer::wrap(a.env, parts[0].dim() == 0 ? at::stack(parts) : at::cat(parts, 0));
}

// distBroadcast(group, t, root): every rank's t becomes root's t (in place; root is a rank of this group).
SEER_FN(distBroadcast) {
  auto g = groups().get(a.i64(0));
  int root = a.i32(2);
  if (root < 0 || root >= g->size)
    throw std::invalid_argument("broadcast: root " + std::to_string(root) + " is outside a group of " + std::to_string(g->size));
  at::NoGradGuard noGrad;
  onContiguous(a.t(1).detach(), [&](at::Tensor& c) {
    std::vector<at::Tensor> ts{c};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    o.timeout = g->timeout;
    run(*g, "broadcast from rank " + std::to_string(g->globalRanks[root]), [&] { return g->pg->broadcast(ts, o); });
  });
  return seer::undef(a.env);
}

// distBarrier(group): returns once every rank of the group called it.
SEER_FN(distBarrier) {
  auto g = groups().get(a.i64(0));
  c10d::BarrierOptions o;
  o.timeout = g->timeout;
  run(*g, "barrier", [&] { return g->pg->barrier(o); });
  return seer::undef(a.env);
}
