// Process groups and collectives (over libtorch's c10d: native/src/dist.cc).
//
// initProcessGroup() starts the rendezvous: rank 0 runs a TCPStore on masterAddr:masterPort, every rank joins it,
// and the backend (Gloo on CPUs, NCCL on CUDA where the build has it) connects the ranks. The ProcessGroup it
// returns runs collectives on tensors. They are synchronous: a call returns when every rank of the group took
// part, and every rank must call the same collectives in the same order with tensors of the same shape and dtype.
//
// Failure: a collective that does not finish within timeoutMs, or whose peer went away, throws a DistError naming
// the operation, this rank and the ranks that did not answer a roll call over the store (dead or hung). The group
// is unusable from then on (later calls throw at once); the process is expected to exit, as torch.distributed
// expects. Collectives record no autograd history, except allReduceWithGrad.
import { torch } from "../native/load";
import type { GroupId } from "../native/binding";
import { cat, tensor, zeros } from "../tensor/creation";
import { tidy } from "../tensor/scope";
import type { Device } from "../tensor/dtype";
import { Tensor } from "../tensor/tensor";
import { fromEnv, type DistEnv } from "./env";

export type Backend = "gloo" | "nccl";
export type ReduceOp = "sum" | "avg" | "max" | "min";
const REDUCE_CODES: Record<ReduceOp, number> = { sum: 0, max: 1, min: 2, avg: 3 };

/** torch.distributed's default is 30 minutes; SEER steps are seconds, so 5 minutes still means "hung". */
export const DEFAULT_TIMEOUT_MS = 5 * 60 * 1000;

export interface InitOptions {
  /** "gloo" (CPU tensors; the default) or "nccl" (CUDA tensors; only in builds against a CUDA libtorch with NCCL). */
  backend?: Backend;
  rank: number;
  worldSize: number;
  /** Host of rank 0, which runs the store. */
  masterAddr: string;
  masterPort: number;
  /** Bound on every collective (default DEFAULT_TIMEOUT_MS). */
  timeoutMs?: number;
  /**
   * Bound on the rendezvous: how long ranks wait for each other to start (default timeoutMs). Processes that load
   * libtorch on a busy machine start seconds apart, so a short timeoutMs usually wants a longer initTimeoutMs.
   */
  initTimeoutMs?: number;
  /** How long the roll call after a failure waits for the other ranks (default min(timeoutMs, 3000)). */
  probeMs?: number;
  /**
   * Network interface Gloo binds to (e.g. "eth0"; default $GLOO_SOCKET_IFNAME). Without one: the loopback address
   * when masterAddr is a loopback address (a one-machine job), else the address this host's name resolves to.
   */
  interface?: string;
}

/** A failed collective: the operation, where it failed and which ranks are suspected dead or hung. */
export class DistError extends Error {
  override name = "DistError";
  constructor(
    readonly op: string,
    message: string,
    /** World rank of the process that saw the failure. */
    readonly rank: number,
    /** World ranks that did not answer the roll call after the failure. */
    readonly suspectRanks: number[],
  ) {
    super(message);
  }
}

const isLoopback = (host: string): boolean => host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);

function glooDevice(o: InitOptions): [kind: string, value: string] {
  const iface = o.interface ?? process.env.GLOO_SOCKET_IFNAME;
  if (iface !== undefined && iface.trim() !== "") return ["interface", iface.split(",")[0]!.trim()];
  if (isLoopback(o.masterAddr)) return ["hostname", o.masterAddr === "::1" ? "::1" : "127.0.0.1"];
  return ["default", ""];
}

function checkInt(what: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`initProcessGroup: ${what} ${v} is not an integer in ${min}..${max}`);
}

/** The backends this build of the addon can create (a subset of gloo, nccl). */
export const availableBackends = (): Backend[] => torch.distBackends().filter((b): b is Backend => b === "gloo" || b === "nccl");

/**
 * Joins the job: blocks until all worldSize ranks met at masterAddr:masterPort and the backend connected them
 * (or throws after timeoutMs, naming the store address and how far the rendezvous got).
 */
export function initProcessGroup(o: InitOptions): ProcessGroup {
  const backend = o.backend ?? "gloo";
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  checkInt("worldSize", o.worldSize, 1);
  checkInt("rank", o.rank, 0, o.worldSize - 1);
  checkInt("masterPort", o.masterPort, 1, 65535);
  checkInt("timeoutMs", timeoutMs, 1);
  const initTimeoutMs = o.initTimeoutMs ?? timeoutMs;
  checkInt("initTimeoutMs", initTimeoutMs, 1);
  if (o.masterAddr.trim() === "") throw new RangeError("initProcessGroup: masterAddr is empty");
  if (!availableBackends().includes(backend)) {
    throw new Error(
      `initProcessGroup: backend '${backend}' is not in this build (available: ${availableBackends().join(", ") || "none"}); ` +
        (backend === "nccl" ? "NCCL needs a CUDA libtorch with NCCL headers at build time" : "Gloo needs gloo's headers at build time (Debian: libgloo-dev)"),
    );
  }
  const probeMs = o.probeMs ?? Math.min(timeoutMs, 3000);
  const device = glooDevice(o);
  let id: GroupId;
  try {
    id = torch.distInit(backend, o.masterAddr.trim(), o.masterPort, o.rank, o.worldSize, timeoutMs, initTimeoutMs, probeMs, ...device);
  } catch (e) {
    // "rank 1 could not join the store ... (run by rank 0)": rank 0 is the suspect; otherwise nobody in particular.
    const message = (e as Error).message.replace(/^distInit: /, "");
    throw new DistError("initProcessGroup", message, o.rank, /could not join the store/.test(message) ? [0] : []);
  }
  const ranks = Array.from({ length: o.worldSize }, (_, r) => r);
  return new ProcessGroup(id, { name: "world", backend, ranks, rank: o.rank, timeoutMs, device, world: { nextTag: 0 } });
}

/** initProcessGroup() with the rank layout of fromEnv() (torchrun's or SLURM's variables). */
export function initProcessGroupFromEnv(
  o: Omit<InitOptions, "rank" | "worldSize" | "masterAddr" | "masterPort"> & { env?: Record<string, string | undefined> } = {},
): { pg: ProcessGroup; env: DistEnv } {
  const env = fromEnv(o.env ?? process.env);
  const pg = initProcessGroup({ ...o, rank: env.rank, worldSize: env.worldSize, masterAddr: env.masterAddr, masterPort: env.masterPort });
  return { pg, env };
}

interface GroupInfo {
  name: string;
  backend: Backend;
  /** World ranks of the members, in group-rank order. */
  ranks: number[];
  /** This process's rank in the group. */
  rank: number;
  timeoutMs: number;
  device: [string, string];
  /** Shared by a world group and all groups made from it: numbers new groups the same way on every rank. */
  world: { nextTag: number };
}

/** A set of ranks that run collectives together. Made by initProcessGroup(), newGroup() or splitGroups(). */
export class ProcessGroup implements Disposable {
  private destroyed = false;

  private duplicates = 0; // numbers the groups duplicate() makes

  /** @internal use initProcessGroup() */
  constructor(
    private readonly id: GroupId,
    private readonly info: GroupInfo,
  ) {}

  /** This process's rank in the group. */
  get rank(): number {
    return this.info.rank;
  }
  get worldSize(): number {
    return this.info.ranks.length;
  }
  /** World ranks of the members, in group-rank order. */
  get ranks(): readonly number[] {
    return this.info.ranks;
  }
  /** This process's rank in the whole job. */
  get globalRank(): number {
    return this.info.ranks[this.info.rank]!;
  }
  get backend(): Backend {
    return this.info.backend;
  }
  get name(): string {
    return this.info.name;
  }
  get timeoutMs(): number {
    return this.info.timeoutMs;
  }

  /** Reduces t over the group's ranks, in place on every rank ("avg": sum, then divide by worldSize). Returns t. */
  allReduce(t: Tensor, op: ReduceOp = "sum"): Tensor {
    this.call(() => torch.distAllReduce(this.id, t.id, REDUCE_CODES[op]));
    return t;
  }

  /**
   * The sum of t over the ranks as a new tensor that autograd differentiates: the gradient reaching each rank's t
   * is the sum over ranks of the gradients of the result (torch.distributed.nn's all_reduce). Its backward runs a
   * collective, so every rank must backpropagate through it.
   */
  allReduceWithGrad(t: Tensor): Tensor {
    return new Tensor(this.call(() => torch.distAllReduceWithGrad(this.id, t.id)));
  }

  /**
   * Training-mode batch normalization of x (N, C, ...) with the mean and variance of the whole batch over the
   * group's ranks, differentiable in x, weight and bias (one collective in forward, one in backward; see
   * native/src/dist.cc). Returns y and, for the running statistics, [mean (C), unbiased variance (C), N (1)] in
   * float64 (no gradient). Every rank must call it, and backpropagate through y, in the same order.
   */
  syncBatchNorm(x: Tensor, weight: Tensor | undefined, bias: Tensor | undefined, eps: number): [Tensor, Tensor] {
    const [y, stats] = this.call(() => torch.distSyncBatchNorm(this.id, x.id, weight?.id ?? null, bias?.id ?? null, eps));
    return [new Tensor(y), new Tensor(stats)];
  }

  /**
   * Native gradient averaging for params (leaves that require grad), in buckets of bucketSizes consecutive params,
   * overlappable with backward (hooks on their AccumulateGrad nodes; native/src/dist.cc). GradientAllReducer
   * (data_parallel.ts) is the interface to use.
   */
  gradientHooks(params: readonly Tensor[], bucketSizes: readonly number[]): { arm(): void; finish(): number; dispose(): void } {
    const id = this.call(() => torch.distReducerNew(this.id, params.map((p) => p.id), [...bucketSizes]));
    return {
      arm: () => torch.distReducerArm(id),
      finish: () => this.call(() => torch.distReducerFinish(id)),
      dispose: () => torch.distReducerDestroy(id),
    };
  }

  /**
   * How many collectives this process has waited for in this group and how long it was blocked in them (the
   * exchange plus waiting for slower ranks), since the group was created; sub-groups count their own.
   */
  waitStats(): { collectives: number; blockedMs: number } {
    const [collectives, blockedMs] = this.call(() => torch.distWaitStats(this.id));
    return { collectives, blockedMs };
  }

  /** Every rank's t concatenated along dim 0 in rank order (0-d tensors are stacked). Same shape on every rank. */
  allGather(t: Tensor): Tensor {
    return new Tensor(this.call(() => torch.distAllGatherCat(this.id, t.id)));
  }

  /**
   * Every rank's t (n, ...) concatenated along dim 0 in rank order -> (worldSize·n, ...), differentiable: the
   * gradient reaching this rank's t is the sum over ranks of the gradients of its slice of the result (solo-learn's
   * GatherLayer, SimCLR's tpu_cross_replica_concat). So when every rank's loss uses the gathered batch and the
   * parameter gradients are then averaged, each rank gets exactly the gradient of the mean of the ranks' losses, as
   * one process on the whole batch would. Built as TF SimCLR does: t placed at its rank's rows of a zero tensor,
   * then allReduceWithGrad (a sum: the other ranks' rows add exact zeros). Every rank must pass the same shape.
   */
  allGatherWithGrad(t: Tensor): Tensor {
    if (this.worldSize === 1) return t;
    return tidy(() => {
      const n = t.shape[0]!;
      const rest = t.shape.slice(1);
      const opts = { dtype: t.dtype, device: t.device };
      const parts: Tensor[] = [];
      if (this.rank > 0) parts.push(zeros([this.rank * n, ...rest], opts)); // (rank·n, ...)
      parts.push(t); // (n, ...)
      if (this.rank < this.worldSize - 1) parts.push(zeros([(this.worldSize - 1 - this.rank) * n, ...rest], opts));
      return this.allReduceWithGrad(cat(parts)); // (worldSize·n, ...)
    });
  }

  /**
   * Reduces a few numbers over the ranks (in float64) and returns the result on every rank: e.g. [loss, stop vote]
   * once per step, so that all ranks take the same decision.
   */
  allReduceValues(values: readonly number[], op: ReduceOp = "sum", device: Device = "cpu"): number[] {
    if (this.backend === "nccl" && device === "cpu") throw new RangeError("allReduceValues: NCCL reduces CUDA tensors; pass this rank's CUDA device");
    return tidy(() => this.allReduce(tensor([...values], { dtype: "float64", device }), op).toArray() as number[]);
  }

  /** Every rank's t, in rank order. */
  allGatherList(t: Tensor): Tensor[] {
    return this.call(() => torch.distAllGather(this.id, t.id)).map((id) => new Tensor(id));
  }

  /** Overwrites t on every rank with root's t (root: a rank of this group). Returns t. */
  broadcast(t: Tensor, root = 0): Tensor {
    this.call(() => torch.distBroadcast(this.id, t.id, root));
    return t;
  }

  /** Returns once every rank of the group has called barrier(). */
  barrier(): void {
    this.call(() => torch.distBarrier(this.id));
  }

  /**
   * A group of the given world ranks. Every rank of the job calls newGroup() with the same ranks, in the same
   * order relative to other newGroup()/splitGroups() calls (that numbers the group alike everywhere); members get
   * the group, others undefined.
   */
  newGroup(worldRanks: number[]): ProcessGroup | undefined {
    const ranks = this.checkRanks(worldRanks);
    const tag = `group${this.info.world.nextTag++}`;
    return this.makeGroup(tag, ranks);
  }

  /**
   * A second group of the same ranks, with its own connections and its own sequence of collectives: collectives
   * started at moments that differ from rank to rank (gradient buckets, whenever backward finishes them) cannot then
   * interleave differently with this group's. Every rank of this group calls it, in the same order.
   */
  duplicate(): ProcessGroup {
    return this.makeGroup(`${this.name}.dup${this.duplicates++}`, [...this.info.ranks])!;
  }

  /**
   * Splits this group into consecutive groups of groupSize ranks (SEER synchronizes BatchNorm within groups of
   * 64 GPUs) and returns the one this rank is in. Every rank of this group calls it. groupSize must divide
   * worldSize; groupSize >= worldSize returns this group.
   */
  splitGroups(groupSize: number): ProcessGroup {
    if (!Number.isInteger(groupSize) || groupSize < 1) throw new RangeError(`splitGroups: groupSize ${groupSize} is not a positive integer`);
    if (groupSize >= this.worldSize) return this;
    if (this.worldSize % groupSize !== 0) throw new RangeError(`splitGroups: groupSize ${groupSize} does not divide the group's ${this.worldSize} ranks`);
    const index = Math.floor(this.rank / groupSize);
    const tag = `split${this.info.world.nextTag++}.${index}`;
    const ranks = this.info.ranks.slice(index * groupSize, (index + 1) * groupSize);
    return this.makeGroup(tag, ranks)!;
  }

  /** The failure that broke this group, if one did. */
  failure(): DistError | undefined {
    if (this.destroyed) return undefined;
    const f = torch.distFailure(this.id);
    return f && new DistError(f[0], f[1], this.globalRank, f[2]);
  }

  /** Releases the group (its connections close when no pending autograd hook still needs it). Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    torch.distDestroy(this.id);
  }

  [Symbol.dispose](): void {
    this.destroy();
  }

  private makeGroup(tag: string, ranks: number[]): ProcessGroup | undefined {
    const id = this.call(() => torch.distNewGroup(this.id, tag, ranks, ...this.info.device));
    if (id < 0) return undefined;
    return new ProcessGroup(id, { ...this.info, name: tag, ranks, rank: ranks.indexOf(this.globalRank) });
  }

  private checkRanks(worldRanks: number[]): number[] {
    const members = new Set(this.info.ranks);
    if (worldRanks.length === 0) throw new RangeError("newGroup: no ranks");
    if (new Set(worldRanks).size !== worldRanks.length) throw new RangeError(`newGroup: ranks [${worldRanks.join(", ")}] repeat`);
    for (const r of worldRanks) if (!members.has(r)) throw new RangeError(`newGroup: rank ${r} is not in group '${this.name}'`);
    return [...worldRanks];
  }

  /** Runs a native call; a collective failure becomes a DistError with the group's recorded failure. */
  private call<R>(fn: () => R): R {
    if (this.destroyed) throw new Error(`process group '${this.name}' was destroyed`);
    try {
      return fn();
    } catch (e) {
      const failure = this.failure();
      throw failure ?? e;
    }
  }
}
