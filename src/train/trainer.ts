// The pretraining loop: SwAV or SimCLR on a RegNet/ResNet trunk, single process, resumable bit for bit.
//
// One readable loop in the order of facebookresearch/swav main_swav.py `train()` (and VISSL's SwAV hooks, which
// SEER uses):
//
//   for each iteration:
//     lr = lr_schedule[iteration]                          (precomputed: linear warmup, then cosine)
//     loss = model(crops)                                  (the queue is used and filled inside, swav's order)
//     if the loss is not finite: save the last good state, stop with a message naming the step and the loss
//     backward; drop the prototype gradients while frozen (swav freeze_prototypes_niters / VISSL
//     TEMP_FROZEN_PARAMS_ITER_MAP); optimizer step (LARC around SGD, apex LARC as SwAV/SEER)
//     re-normalize the prototypes (VISSL NormalizePrototypesHook.on_update; swav does it before each forward)
//     log, checkpoint, kNN monitor
//
// The learning rate is given per 256 images and scaled linearly with the batch (VISSL auto_scale, Goyal et al.
// 2017). Not reproduced here: mixed precision and activation checkpointing.
//
// Data parallel (several processes; src/dist/): pretrain() joins a process group when a launcher left torchrun's or
// SLURM's variables (`seer pretrain --nproc N` starts N local workers with torchrun's), and then
//   - data.batchSize stays the global batch (the learning rate scales with it, as VISSL's auto_scale with
//     batch_size_per_gpu × world size); each rank trains on batchSize / W images per iteration, rank r on positions
//     r, r + W, ... of the epoch's permutation, so the ranks' batches together are the batch one process would get;
//   - the weights are broadcast from rank 0 once; BatchNorm layers of trunk and head become SyncBatchNorm (statistics
//     over all ranks, or groups of dist.syncBnGroupSize); the gradients are averaged in 25 MB buckets
//     (GradientAllReducer), each bucket's all-reduce starting during backward as soon as its gradients are done;
//   - SwAV's Sinkhorn sums and maxima are all-reduced (swav's distributed_sinkhorn: codes equipartitioned over the
//     global batch); each rank keeps queueLength / W rows of the queue; SimCLR's negatives are gathered over the
//     global batch (ProcessGroup.allGatherWithGrad: each rank's embeddings get the gradient from every rank's
//     loss). Each rank's loss is the mean over its images; with averaged gradients that is the gradient of the
//     global mean, so W processes take the steps of one process on the whole batch (up to rounding;
//     tests/pretrain_dist.test.ts checks it);
//   - once per iteration one all-reduce of [loss, stop vote] makes every decision global: the logged loss is the
//     global mean, a non-finite loss on any rank skips the step everywhere, and a signal on any rank stops every rank
//     after the same iteration;
//   - rank 0 alone writes checkpoints (the queue gathered from all ranks, stored in one process's layout, and the
//     sampler position in global images, so a checkpoint resumes under any world size that divides the batch),
//     metrics.jsonl, backbone.safetensors and summary.json, and logs; every rank resumes from the same checkpoint
//     (and checks that it did). The kNN monitor runs on rank 0 only while the others wait in their next collective,
//     so a kNN evaluation must fit in the collective timeout (distTimeoutMs, 5 minutes by default);
//   - a rank that dies or hangs makes the others' next collective fail within distTimeoutMs with a DistError naming
//     it; they exit non-zero, and checkpoint writes are atomic, so rerunning the command resumes from the last one.
//
// Checkpoints (train/checkpoint.ts) hold the whole model (trunk, head, prototypes, BN statistics), the optimizer's
// momentum buffers and step count, the SwAV queue, and as JSON the step, the data sampler's position (epoch and
// images handed out, so a resumed run continues mid-epoch), the config and the seed. `pretrain()` resumes by itself
// from the newest intact checkpoint of its run folder, and refuses when the folder's saved config differs in a key
// that changes the run (unless `force`). Everything random is seeded and keyed by position (weights' init by
// run.seed; crops and order by (seed, epoch, image); libtorch's generator re-seeded each iteration), so on the CPU
// with the same threads a run killed at any point and resumed ends with exactly the weights of an uninterrupted
// run. SIGINT/SIGTERM finish the current iteration, save a checkpoint and return status "interrupted".
//
// The run folder: config.json (the resolved config), metrics.jsonl (metrics.ts), checkpoint-<step>/ (the last
// run.keep), and at the end backbone.safetensors (the trunk alone, torchvision's names, with arch and stem in its
// metadata, for `seer eval`) and summary.json.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Progress } from "../cli/progress";
import { ConfigError } from "../config/overrides";
import type { MultiCropBatch, MultiCropLoader } from "../data/loader";
import type { CropGroup } from "../data/multicrop";
import type { SamplerState } from "../data/sampler";
import { disposeTensors, saveSafetensors } from "../io/safetensors";
import {
  broadcastBuffers, broadcastModule, convertSyncBatchNorm, DEFAULT_TIMEOUT_MS, detectDistEnv, GradientAllReducer, initProcessGroupFromEnv,
  type ProcessGroup,
} from "../dist";
import { createModel, type BackboneModel } from "../models/registry";
import type { Module } from "../nn/module";
import {
  LARC, SGD, isBiasOrNorm, lrArray, scaleLr, visslWarmupCosine, warmupCosine,
  type OptimizerLike, type OptimizerStateDict, type ParamGroupInput, type SavedGroup, type SGDHyperparams,
} from "../optim";
import { ProjectionHead, SimCLR, SwAV, SwAVPrototypes, SwAVQueue } from "../ssl";
import {
  checkDevice, cudaAvailable, cudaDeviceCount, cudaIndex, keep, manualSeed, noGrad, setCudaBackend, setCudaDevice, setNumThreads, tidy, torchVersion, withAutocast,
  type Device, type DType, type Tensor,
} from "../tensor";
import { CheckpointManager } from "./checkpoint";
import { KnnMonitor } from "./knn_monitor";
import { MetricsLog, ThroughputWindow, type MetricsLine } from "./metrics";
import { configCrops, DEFAULT_PRESET, finalizePretrainConfig, modelOptions, presetConfig, runChangingDifferences, type PretrainConfig } from "./presets";
import { openPretrainLoader } from "./pretrain_data";

// ---------------------------------------------------------------------------------------------------------------
// Options and results

/** Test and tooling hooks; a normal run sets none. */
export interface TrainerHooks {
  /** Sees each iteration's loss (0-based iteration) before the finiteness check and backward; may replace it. */
  beforeBackward?: (iteration: number, loss: Tensor) => Tensor;
  /**
   * Sees each completed iteration (0-based), its time in ms (data wait excluded) and, with several processes, how
   * long this rank was blocked in collectives during it (the scaling benchmark).
   */
  afterIteration?: (iteration: number, ms: number, blocked?: { collectives: number; blockedMs: number }) => void;
}

export interface PretrainOptions {
  /** The run's configuration (validated here). */
  config: PretrainConfig;
  /** The run folder: checkpoints, metrics.jsonl, config.json, backbone.safetensors. */
  outDir: string;
  /** Preset or file name, for reports. */
  name?: string;
  /** Resume even if the folder's saved config differs in keys that change the run. */
  force?: boolean;
  /** Where report lines go (default console.log). */
  log?: (line: string) => void;
  /** Show the progress bar on stderr (default true). */
  progress?: boolean;
  /** Catch SIGINT/SIGTERM: finish the iteration, save, return "interrupted" (default true). */
  handleSignals?: boolean;
  hooks?: TrainerHooks;
  /**
   * Data parallel: the process group to train over. Default: joined from the environment when a launcher left one
   * (torchrun's RANK, WORLD_SIZE, ..., as `seer pretrain --nproc N` sets them, or SLURM's), else one process.
   * null: one process, whatever the environment.
   */
  processGroup?: ProcessGroup | null;
  /** Bound on every collective of a group joined from the environment (default 5 minutes; see the header). */
  distTimeoutMs?: number;
  /**
   * Intra-op threads of each process. Default: run.threads (0: the machine's cores) divided among the processes on
   * this machine (LOCAL_WORLD_SIZE / SLURM_NTASKS_PER_NODE; all of the group's when it was passed in).
   */
  threadsPerProcess?: number;
  /** Dtype of the weights and activations (default float32; float64 lets tests compare runs to 1e-9). */
  dtype?: "float32" | "float64";
}

export interface PretrainResult {
  /** "completed": all iterations done; "interrupted": stopped by a signal after saving a checkpoint. */
  status: "completed" | "interrupted";
  /** Iterations completed. */
  step: number;
  totalSteps: number;
  /** The checkpoint step this invocation resumed from (0 for a fresh run). */
  resumedFrom: number;
  outDir: string;
  /** Wall time of this invocation, and of its training iterations alone. */
  wallSeconds: number;
  trainSeconds: number;
  /** Images per second over this invocation's iterations. */
  imagesPerS: number;
  lastLoss?: number;
  /** Top-1 kNN accuracy of the monitor for the random init and at the end (when the monitor is on). */
  knnRandomInit?: number;
  knnFinal?: number;
  /** The last checkpoint folder written or loaded. */
  checkpoint?: string;
  /** The trunk's weights (completed runs). */
  backboneFile?: string;
  /** This process's rank and the number of processes (0 of 1 when not distributed). */
  rank: number;
  worldSize: number;
}

/** Raised when an iteration's loss is NaN or infinite; the last good state was saved first. */
export class NonFiniteLossError extends Error {
  override name = "NonFiniteLossError";
  constructor(
    /** The iteration that produced it, counted from 1 (metrics.jsonl's step). */
    readonly step: number,
    readonly loss: number,
    /** The checkpoint holding the state before that iteration. */
    readonly checkpoint: string,
  ) {
    super(
      `the loss is ${loss} at step ${step}; training stopped before applying it. The state after step ${step - 1} is ` +
        `saved in ${checkpoint}. Lower optim.baseLrPer256 (or lengthen the warmup) and resume with --force.`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The method: SwAV or SimCLR around the trunk

interface Method {
  /** The whole trained model (trunk, head, prototypes): its state dict is the checkpoint's model. */
  module: Module;
  backbone: BackboneModel;
  /** The SwAV queue, if any (not part of the module's state dict). */
  queue?: SwAVQueue;
  /** The loss of one batch (crops grouped by resolution, crop-major). */
  loss(crops: Tensor[], epoch: number): Tensor;
  /** Between backward and the optimizer step. */
  afterBackward(iteration: number): void;
  /** After the optimizer step. */
  afterStep(): void;
}

/**
 * The model of the config (weights seeded by run.seed, so every rank builds the same), in `dtype`. With a process
 * group of W ranks the losses become global: SimCLR gathers the embeddings of all ranks (the candidates of NT-Xent
 * are the global batch), SwAV all-reduces Sinkhorn's sums and keeps 1/W of the queue on each rank.
 */
function buildMethod(c: PretrainConfig, crops: readonly CropGroup[], pg: ProcessGroup | undefined, dtype: DType, device: Device): Method {
  manualSeed(c.run.seed); // the weights' init
  const world = pg?.worldSize ?? 1;
  const backbone = createModel(c.model.arch, modelOptions(c.model));
  const W = backbone.numFeatures;
  if (c.method === "simclr") {
    const simclr = new SimCLR(backbone, {
      head: new ProjectionHead([W, ...c.simclr.headDims], { batchNorm: c.simclr.headBatchNorm }),
      loss: {
        temperature: c.simclr.temperature,
        ...(pg && world > 1 ? { allGather: (h: Tensor) => pg.allGatherWithGrad(h), rank: pg.rank } : {}),
      },
    });
    placeModel(simclr, c, dtype, device);
    return {
      module: simclr, backbone,
      loss: (views) => simclr.forward(views[0]!), // (2B, 3, S, S): view 1 of every image, then view 2
      afterBackward: () => {},
      afterStep: () => {},
    };
  }
  const s = c.swav;
  const D = s.headDims[s.headDims.length - 1]!;
  // swav: queue_length -= queue_length % (batch_size * world_size), then queue_length // world_size rows per rank;
  // data.batchSize is the global batch. One queue per assignment crop (0 and 1).
  const queueLength = s.queueLength - (s.queueLength % c.data.batchSize);
  const queue = queueLength > 0 ? new SwAVQueue(queueLength / world, D, s.queueStartEpoch, { numQueues: 2, dtype, device }) : undefined;
  const prototypes = new SwAVPrototypes(D, s.prototypes, { frozenUntilStep: s.freezePrototypesIters });
  const swav = new SwAV(backbone, {
    numCrops: crops.map((g) => g.count),
    head: new ProjectionHead([W, ...s.headDims], { batchNorm: s.headBatchNorm }),
    prototypes,
    loss: {
      temperature: s.temperature, sinkhornIterations: s.sinkhornIterations, epsilon: s.epsilon,
      // swav's distributed_sinkhorn: Q's row sums, total and maxima over all ranks; B = B_local · W.
      ...(pg && world > 1 ? { allReduce: (t: Tensor, op: "sum" | "max") => pg.allReduce(t, op), worldSize: world } : {}),
    },
    queue,
  });
  placeModel(swav, c, dtype, device);
  prototypes.normalize(); // start on the unit sphere (swav normalizes before every forward)
  return {
    module: swav, backbone, queue,
    loss: (cropsByResolution, epoch) => swav.forward(cropsByResolution, { epoch }).loss,
    afterBackward: (iteration) => void prototypes.cancelGradIfFrozen(iteration),
    afterStep: () => prototypes.normalize(),
  };
}

/** The model in its dtype, on its device, and channels-last when configured (before the optimizer sees it). */
function placeModel(m: Module, c: PretrainConfig, dtype: DType, device: Device): void {
  if (dtype !== "float32") m.to(dtype);
  if (device !== "cpu") m.to(device);
  if (c.run.channelsLast) m.channelsLast();
}

/**
 * This process's device: run.device, with plain "cuda" meaning cuda:LOCAL_RANK when several processes share a
 * machine (torchrun's convention: one GPU per local rank). Fails here, naming the key, when CUDA is absent.
 */
function runDevice(c: PretrainConfig, world: number, localRank: number): Device {
  const device = checkDevice(c.run.device === "cuda" && world > 1 ? `cuda:${localRank}` : c.run.device);
  if (device === "cpu") return device;
  if (!cudaAvailable()) throw new ConfigError(`run.device: ${c.run.device}, but this libtorch (${torchVersion()}) sees no CUDA device; use run.device=cpu (and run.precision=fp32)`);
  if (cudaIndex(device)! >= cudaDeviceCount()) throw new ConfigError(`run.device: ${device} does not exist (${cudaDeviceCount()} CUDA devices)`);
  // Crop shapes are fixed, so cuDNN's autotuner pays off; TF32 for what stays float32 (as PyTorch users set it).
  // Neither is bit-reproducible from run to run: on CUDA a resumed run continues, it is not bit-identical.
  setCudaBackend({ cudnnBenchmark: true, allowTf32: true });
  setCudaDevice(device); // NCCL and anything that means "the current GPU" use this process's own
  return device;
}

/**
 * SGD (momentum, weight decay) over named parameters, in LARC when configured. SwAV/SEER: one group, every
 * parameter decayed and adapted. With excludeBiasAndNorm (SimCLR): biases and norm parameters get no weight decay
 * (and no LARC adaptation).
 */
function buildOptimizer(c: PretrainConfig, module: Module, lr: number): OptimizerLike<SGDHyperparams> {
  const named = module.namedParameters();
  const o = c.optim;
  const hyper = { lr, momentum: o.momentum, weightDecay: o.weightDecay };
  if (o.larc) {
    return new LARC(new SGD(named, hyper), { trustCoefficient: o.trustCoefficient, clip: o.clip, excludeBiasAndNorm: o.excludeBiasAndNorm });
  }
  if (!o.excludeBiasAndNorm) return new SGD(named, hyper);
  const decayed = named.filter(([n, p]) => !isBiasOrNorm(n, p));
  const plain = named.filter(([n, p]) => isBiasOrNorm(n, p));
  const groups: ParamGroupInput<SGDHyperparams>[] = [{ params: decayed }];
  if (plain.length > 0) groups.push({ params: plain, weightDecay: 0 });
  return new SGD(groups, hyper);
}

/** The per-iteration learning rates (swav's lr_schedule array): warmup, then cosine. */
function learningRates(c: PretrainConfig, totalSteps: number, itersPerEpoch: number | undefined): { lrs: Float64Array; peak: number; warmup: number } {
  const o = c.optim;
  const peak = scaleLr(o.baseLrPer256, c.data.batchSize);
  if (o.warmupEpochs > 0 && itersPerEpoch === undefined) throw new ConfigError("optim.warmupEpochs: a stream has no epoch length; give the warmup in optim.warmupIters");
  const warmup = o.warmupIters + Math.round(o.warmupEpochs * (itersPerEpoch ?? 0));
  if (warmup >= totalSteps) throw new ConfigError(`optim.warmupIters: the warmup (${warmup} iterations) must be shorter than the run (${totalSteps})`);
  const shape = { baseLr: peak, totalIters: totalSteps, warmupIters: warmup, startLr: peak * o.startLrRatio, finalLr: peak * o.finalLrRatio };
  const schedule = o.cosine === "global" ? visslWarmupCosine(shape) : warmupCosine(shape);
  return { lrs: lrArray(schedule, totalSteps), peak, warmup };
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoint state

/** What state.json of a checkpoint holds (besides the checkpoint manager's own fields). */
interface RunState {
  format: "seerkit-pretrain-v1";
  step: number;
  totalSteps: number;
  sampler: SamplerState;
  config: PretrainConfig;
  seed: number;
  /** Processes that trained it (absent: 1). The sampler position and the queue do not depend on it. */
  worldSize?: number;
  /** For `seer eval` (eval/backbone.ts reads arch and smallImageStem). */
  arch: string;
  smallImageStem: boolean;
  modelOptions: Record<string, number | boolean>;
  optimizer: { step: number; groups: SavedGroup<SGDHyperparams>[] };
  /** Rows written in each queue, over all ranks. */
  queue?: { filled: number[] };
  knnRandomInit?: number;
  lastLoss?: number;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function asRunState(state: Record<string, unknown>, where: string): RunState {
  const ok =
    state["format"] === "seerkit-pretrain-v1" && typeof state["step"] === "number" && isRecord(state["sampler"]) &&
    isRecord(state["config"]) && isRecord(state["optimizer"]) && Array.isArray((state["optimizer"] as Record<string, unknown>)["groups"]);
  if (!ok) throw new Error(`${where} is not a seerkit pretraining checkpoint (state.json lacks step, sampler, config or optimizer)`);
  return state as unknown as RunState;
}

const pad = (step: number): string => String(step).padStart(9, "0");

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n");
  fs.renameSync(tmp, file);
}

/** A copy of the tensors a forward pass changes (BN running statistics, the queue), to undo a bad iteration. */
interface ForwardSnapshot {
  buffers: Tensor[];
  queue?: { embeddings: Tensor; filled: number[] };
}

function snapshot(m: Method): ForwardSnapshot {
  return noGrad(() => {
    const buffers = m.module.namedBuffers().map(([, t]) => keep(t.clone()));
    if (!m.queue) return { buffers };
    const q = m.queue.state();
    return { buffers, queue: { embeddings: keep(q.embeddings.clone()), filled: q.filled } };
  });
}

function restore(m: Method, s: ForwardSnapshot): void {
  noGrad(() => m.module.namedBuffers().forEach(([, t], i) => t.copy_(s.buffers[i]!)));
  if (m.queue && s.queue) m.queue.loadState(s.queue);
}

function disposeSnapshot(s: ForwardSnapshot): void {
  for (const t of s.buffers) t.dispose();
  s.queue?.embeddings.dispose();
}

// Under data parallelism rank r of W holds (numQueues, L/W, D) of the SwAV queue: its B/W rows of each of the last
// L/B batches, newest first. A checkpoint stores the queues in one process's layout (numQueues, L, D): newest batch
// first, each batch's B rows in the order one process would have them. Rank r's i-th image of a batch is the batch's
// image r + i·W (the sampler deals positions round-robin), so a block of B rows is the ranks' rows interleaved. With
// W = 1 both layouts are the same; for an indexed source the file is the one a single process writes.

/** All ranks' queues (numQueues, L/W, D) -> one process's layout (numQueues, L, D), a new tensor. */
function gatherQueue(local: Tensor, pg: ProcessGroup, rowsPerBatch: number): Tensor {
  return noGrad(() =>
    tidy(() => {
      const [nq, rows, D] = local.shape as [number, number, number];
      const W = pg.worldSize;
      const batches = rows / rowsPerBatch;
      const all = pg.allGather(local); // (W·nq, rows, D), rank-major
      // (W, nq, batches, B/W, D) -> (nq, batches, B/W, W, D): row i·W + r of a batch block is rank r's i-th.
      return all.view(W, nq, batches, rowsPerBatch, D).permute(1, 2, 3, 0, 4).reshape(nq, batches * rowsPerBatch * W, D); // (nq, L, D)
    }),
  );
}

/** One process's layout (numQueues, L, D) -> rank's share (numQueues, L/W, D), a new tensor. */
function scatterQueue(global: Tensor, rank: number, worldSize: number, rowsPerBatch: number): Tensor {
  return noGrad(() =>
    tidy(() => {
      const [nq, L, D] = global.shape as [number, number, number];
      const batches = L / (worldSize * rowsPerBatch);
      if (!Number.isInteger(batches)) throw new Error(`the saved SwAV queue of ${L} rows does not hold whole batches of ${worldSize} × ${rowsPerBatch}`);
      return global.view(nq, batches, rowsPerBatch, worldSize, D).select(3, rank).reshape(nq, batches * rowsPerBatch, D); // (nq, L/W, D)
    }),
  );
}

/** Data parallelism of a run with more than one process. */
interface DataParallel {
  pg: ProcessGroup;
  reducer: GradientAllReducer;
  /** BatchNorm layers synchronized (0 when groups of one rank keep them local). */
  syncBnLayers: number;
  /** Ranks per BatchNorm group. */
  syncBnGroup: number;
}

// ---------------------------------------------------------------------------------------------------------------
// The run

export function defaultThreads(): number {
  return Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 16));
}

/**
 * A config saved before the `dist` and run.device/precision/channelsLast keys existed reads as if it had their
 * defaults (its run was one process, on the CPU, in float32).
 */
function withNewDefaults(saved: Record<string, unknown>): Record<string, unknown> {
  const defaults = presetConfig(DEFAULT_PRESET);
  const run = isRecord(saved.run) ? saved.run : {};
  const { device, precision, channelsLast } = defaults.run;
  return { ...saved, dist: saved.dist ?? defaults.dist, run: { device, precision, channelsLast, ...run } };
}

/** Refuses a run folder whose saved config differs in keys that change the run (unless forced). */
function checkRunFolder(outDir: string, config: PretrainConfig, force: boolean, log: (l: string) => void): void {
  const file = path.join(outDir, "config.json");
  if (!fs.existsSync(file)) return;
  const saved = JSON.parse(fs.readFileSync(file, "utf8")) as unknown;
  if (!isRecord(saved)) throw new ConfigError(`${file} is not a JSON object`);
  const diffs = runChangingDifferences(withNewDefaults(saved), config);
  if (diffs.length === 0) return;
  const list = diffs.map((d) => `  ${d}`).join("\n");
  if (!force) {
    throw new ConfigError(
      `${outDir} holds a run with another config; resuming it with this one would change the run:\n${list}\n` +
        `Use another --out folder, the saved config (--config ${file}), or --force to resume with the new values.`,
    );
  }
  log(`warning: --force: resuming ${outDir} with changed settings:\n${list}`);
}

/**
 * Threads of each process: threadsPerProcess, else run.threads (0: the machine's cores) shared by the processes on
 * this machine.
 */
function threadsOf(c: PretrainConfig, o: PretrainOptions, processesHere: number): number {
  if (o.threadsPerProcess !== undefined) {
    if (!Number.isInteger(o.threadsPerProcess) || o.threadsPerProcess < 1) throw new ConfigError(`threads per process: expected a positive integer but received ${o.threadsPerProcess}`);
    return o.threadsPerProcess;
  }
  return Math.max(1, Math.floor((c.run.threads || defaultThreads()) / processesHere));
}

/** Trains (or resumes) the run in `o.outDir` to the end, or until a signal; see the header. */
export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  // The process group: given, or joined from a launcher's variables (then ours to destroy).
  let pg = o.processGroup ?? undefined;
  let processesHere = pg?.worldSize ?? 1;
  let localRank = pg?.rank ?? 0;
  let joined: ProcessGroup | undefined;
  if (o.processGroup === undefined) {
    const env = detectDistEnv();
    if (env && env.worldSize > 1) {
      const timeoutMs = o.distTimeoutMs ?? DEFAULT_TIMEOUT_MS;
      // NCCL between GPUs, Gloo between CPUs (torch DDP's choice). Ranks start seconds apart on a busy machine
      // (loading libtorch): the rendezvous gets at least 2 minutes.
      const backend = o.config.run.device === "cpu" ? "gloo" : "nccl";
      joined = pg = initProcessGroupFromEnv({ backend, timeoutMs, initTimeoutMs: Math.max(timeoutMs, 120_000) }).pg;
      processesHere = env.localWorldSize ?? 1;
      localRank = env.localRank;
    }
  }
  try {
    const run = await PretrainRun.open(o, pg, processesHere, localRank);
    try {
      run.resume();
      await run.openMonitor();
      await run.train();
      const r = run.finish();
      pg?.barrier(); // nobody leaves (rank 0 takes the store down with it) before every rank is done
      return r;
    } finally {
      await run.close();
    }
  } finally {
    joined?.destroy();
  }
}

/** One invocation of a run: what pretrain() builds, trains and closes, in that order. */
class PretrainRun {
  // What the run is.
  private readonly log: (line: string) => void;
  /** The global batch (all ranks). */
  private readonly B: number;
  private readonly rank: number;
  private readonly world: number;
  private readonly dtype: DType;
  // Where it is: iterations completed, the sampler position after them, and what the next checkpoint records.
  private step = 0;
  private startStep = 0;
  /** In global images (rank r's loader is at position / W): a checkpoint resumes under any world size. */
  private sampler: SamplerState;
  private epoch = 0;
  private lastLoss: number | undefined;
  private knnRandomInit: number | undefined;
  private knnFinal: number | undefined;
  private checkpointDir: string | undefined;
  private savedAt = -1;
  private trainMs = 0;
  private monitor: KnnMonitor | undefined;
  private stopSignal: NodeJS.Signals | undefined;
  /** Data parallel: some rank voted to stop after the last iteration (every rank learns it in the same all-reduce). */
  private stopAgreed = false;
  private readonly removeSignalHandlers: (() => void)[] = [];

  private constructor(
    private readonly startedAt: number,
    private readonly o: PretrainOptions,
    private readonly config: Readonly<PretrainConfig>,
    private readonly outDir: string,
    private readonly crops: readonly CropGroup[],
    private readonly loader: MultiCropLoader,
    private readonly totalSteps: number,
    private readonly method: Method,
    private readonly optimizer: OptimizerLike<SGDHyperparams>,
    private readonly lrs: Float64Array,
    private readonly manager: CheckpointManager,
    /** Rank 0's; other ranks write no metrics. */
    private readonly metrics: MetricsLog | undefined,
    private readonly dp: DataParallel | undefined,
    /** Where the model, the crops and the kNN monitor live. */
    private readonly device: Device,
  ) {
    this.rank = dp?.pg.rank ?? 0;
    this.world = dp?.pg.worldSize ?? 1;
    this.log = this.rank === 0 ? (o.log ?? ((l: string) => console.log(l))) : () => {};
    this.B = config.data.batchSize;
    this.dtype = o.dtype ?? "float32";
    const local = loader.state();
    this.sampler = { ...local, position: local.position * this.world };
  }

  /**
   * Validates the config, checks the run folder, and builds the data loader (this rank's shard), the model (broadcast
   * from rank 0, BatchNorm synchronized), the optimizer and the schedule.
   */
  static async open(o: PretrainOptions, pg: ProcessGroup | undefined, processesHere: number, localRank: number): Promise<PretrainRun> {
    const startedAt = performance.now();
    const rank = pg?.rank ?? 0;
    const world = pg?.worldSize ?? 1;
    const log = rank === 0 ? (o.log ?? ((l: string) => console.log(l))) : () => {};
    const config = finalizePretrainConfig(structuredClone(o.config));
    const outDir = path.resolve(o.outDir);
    fs.mkdirSync(outDir, { recursive: true });
    checkRunFolder(outDir, config, o.force ?? false, log);
    const threads = threadsOf(config, o, processesHere);
    setNumThreads(threads);
    const device = runDevice(config, world, localRank);
    const groupSize = config.dist.syncBnGroupSize;
    if (world > 1 && groupSize > 0 && groupSize < world && world % groupSize !== 0) {
      throw new ConfigError(`dist.syncBnGroupSize: groups of ${groupSize} ranks do not divide the ${world} processes (rank ${rank})`);
    }

    const crops = configCrops(config);
    const loader = await openPretrainLoader(config, crops, { rank, worldSize: world, device });
    try {
      const itersPerEpoch = loader.batchesPerEpoch;
      let totalSteps = config.schedule.iterations;
      if (totalSteps === 0) {
        if (itersPerEpoch === undefined) throw new ConfigError(`schedule.epochs: ${config.data.source} is a stream without a length; give the run's length in schedule.iterations`);
        totalSteps = Math.max(1, Math.round(config.schedule.epochs * itersPerEpoch));
      }
      const { lrs, peak, warmup } = learningRates(config, totalSteps, itersPerEpoch);
      const method = buildMethod(config, crops, pg, o.dtype ?? "float32", device);
      let dp: DataParallel | undefined;
      try {
        if (pg && world > 1) {
          // Every rank builds the same seeded init; the broadcast makes sure (torch DDP does it at construction).
          const syncBnGroup = groupSize > 0 ? Math.min(groupSize, world) : world;
          const syncBnLayers = convertSyncBatchNorm(method.module, pg, syncBnGroup < world ? { groupSize: syncBnGroup } : {});
          broadcastModule(method.module, pg);
          dp = { pg, reducer: new GradientAllReducer(method.module, pg), syncBnLayers, syncBnGroup };
        }
      } catch (e) {
        method.queue?.dispose();
        method.module.dispose();
        throw e;
      }
      const optimizer = buildOptimizer(config, method.module, lrs[0]!);
      const manager = new CheckpointManager(outDir, config.run.keep, (m) => log(`warning: ${m}`));
      const metrics = rank === 0 ? new MetricsLog(path.join(outDir, "metrics.jsonl")) : undefined;
      log(
        `run        ${outDir}: ${totalSteps} iterations` +
          (itersPerEpoch !== undefined ? ` (${(totalSteps / itersPerEpoch).toFixed(2)} epochs of ${itersPerEpoch})` : "") +
          `; ${loader.source.description}; peak lr ${peak.toPrecision(4)} after ${warmup} warmup iterations; ` +
          `${(method.module.numParameters() / 1e6).toFixed(2)}M parameters (trunk ${(method.backbone.numParameters() / 1e6).toFixed(2)}M)`,
      );
      if (dp) {
        log(
          `dist       ${world} processes (${pg!.backend}), ${config.data.batchSize / world} images each per iteration, ${threads} thread${threads > 1 ? "s" : ""} each; ` +
            `${dp.syncBnLayers} BatchNorm layers synchronized over ${dp.syncBnGroup === world ? "all ranks" : `groups of ${dp.syncBnGroup}`}; ` +
            `gradients all-reduced in ${dp.reducer.buckets.length} bucket${dp.reducer.buckets.length > 1 ? "s" : ""} during backward`,
        );
        if (device === "cpu" && dp.syncBnLayers > 0) {
          // Measured (BENCHMARKS.md, distributed): SyncBN took 2 CPU processes from 60% scaling efficiency to 42%,
          // slower than 1 process; SEER synchronizes BatchNorm between GPUs.
          log(
            `note: each of the ${dp.syncBnLayers} synchronized BatchNorm layers waits on 2 collectives per iteration, which between CPU processes ` +
              "can cost more than the processes gain; dist.syncBnGroupSize=1 keeps BatchNorm per process",
          );
        }
      }
      return new PretrainRun(startedAt, o, config, outDir, crops, loader, totalSteps, method, optimizer, lrs, manager, metrics, dp, device);
    } catch (e) {
      await loader.close();
      throw e;
    }
  }

  /**
   * Continues from the newest intact checkpoint of the run folder, if there is one; then records the config. Every
   * rank reads the same checkpoint (the run folder must be shared), and checks that the others did.
   */
  resume(): void {
    const latest = this.manager.loadLatest();
    if (latest) {
      const where = path.join(this.outDir, `checkpoint-${pad(latest.step)}`);
      try {
        const saved = asRunState(latest.state, where);
        const changed = runChangingDifferences(withNewDefaults(saved.config as unknown as Record<string, unknown>), this.config);
        if (changed.length > 0 && !this.o.force) {
          throw new ConfigError(`${where} was saved by a run with another config (use --force to resume with this one):\n${changed.map((d) => `  ${d}`).join("\n")}`);
        }
        if (saved.totalSteps !== this.totalSteps && !this.o.force) {
          throw new ConfigError(`${where} belongs to a run of ${saved.totalSteps} iterations, this one has ${this.totalSteps}; use --force to continue with the new length`);
        }
        if (saved.config.run.threads !== this.config.run.threads) {
          this.log(`note: run.threads changed (${saved.config.run.threads} -> ${this.config.run.threads}): the run goes on, but not bit-identical to an uninterrupted one`);
        }
        const savedWorld = saved.worldSize ?? 1;
        if (savedWorld !== this.world) {
          this.log(
            `note: ${where} was written by ${savedWorld} process${savedWorld > 1 ? "es" : ""}, this run has ${this.world}: the run goes on with the same ` +
              `global batch, not bit-identical (a stream source is also sharded differently from here on)`,
          );
        }
        this.method.module.loadStateDict(latest.model);
        this.optimizer.loadStateDict(optimizerState(saved, latest.tensors));
        if (this.method.queue) {
          const embeddings = latest.tensors.get("queue.embeddings");
          if (!embeddings || !saved.queue) throw new Error(`${where} has no SwAV queue, this run has one`);
          if (this.world === 1) this.method.queue.loadState({ embeddings, filled: saved.queue.filled });
          else {
            // This rank's share of the queues; every rank pushed B/W rows per iteration, so the counts split evenly.
            using share = scatterQueue(embeddings, this.rank, this.world, this.B / this.world);
            this.method.queue.loadState({ embeddings: share, filled: saved.queue.filled.map((f) => f / this.world) });
          }
        }
        this.loader.loadState({ ...saved.sampler, position: saved.sampler.position / this.world });
        this.step = this.startStep = this.savedAt = saved.step;
        this.sampler = saved.sampler;
        this.epoch = saved.sampler.epoch;
        this.knnRandomInit = saved.knnRandomInit;
        this.lastLoss = saved.lastLoss;
        this.checkpointDir = where;
      } finally {
        disposeTensors(latest.model);
        disposeTensors(latest.tensors);
      }
      this.log(`resume     from ${where} (step ${this.step}, epoch ${this.sampler.epoch}, ${this.sampler.position} images into it)`);
    }
    if (this.dp) {
      const [highest, negLowest] = this.dp.pg.allReduceValues([this.step, -this.step], "max", this.device);
      if (highest !== this.step || -negLowest! !== this.step) {
        throw new Error(
          `rank ${this.rank} resumed at step ${this.step}, but the ranks resumed between steps ${-negLowest!} and ${highest}: ` +
            `every rank must see the same run folder ${this.outDir} (a shared file system)`,
        );
      }
    }
    if (this.rank !== 0) return;
    writeJsonAtomic(path.join(this.outDir, "config.json"), this.config);
    this.metrics!.truncateAfter(this.step);
  }

  /**
   * Decodes the kNN monitor's labelled sample and measures the random init (fresh runs). Rank 0 only: the others
   * wait at a barrier meanwhile.
   */
  async openMonitor(): Promise<void> {
    await this.openMonitorHere();
    this.dp?.pg.barrier();
  }

  private async openMonitorHere(): Promise<void> {
    const k = this.config.knn;
    if (!k.enabled || this.rank !== 0) return;
    const t = performance.now();
    this.monitor = await KnnMonitor.open({
      trainSource: k.trainSource, testSource: k.testSource, trainSamples: k.trainSamples, testSamples: k.testSamples,
      imageSize: k.imageSize || this.crops[0]!.size, k: k.k, temperature: k.temperature, batchSize: k.batchSize, seed: this.config.run.seed,
      device: this.device,
    });
    if (this.knnRandomInit === undefined && this.step === 0) {
      this.knnRandomInit = this.monitor.evaluate(this.method.backbone);
      this.metrics!.append({ step: 0, epoch: 0, knn: this.knnRandomInit });
    }
    this.log(`knn        ${this.monitor.testSize} test images against ${this.monitor.trainSize}; random init top-1 ${fmtPct(this.knnRandomInit)} (${((performance.now() - t) / 1000).toFixed(1)} s)`);
  }

  /** The loop: iterations until the end of the schedule or a signal. */
  async train(): Promise<void> {
    this.catchSignals();
    const { config, totalSteps, B } = this;
    const window = new ThroughputWindow();
    const progress = (this.o.progress ?? true) && this.rank === 0 ? new Progress(this.startStep > 0 ? `pretrain (resumed at ${this.startStep})` : "pretrain", totalSteps - this.startStep) : undefined;
    let iterator: AsyncIterator<MultiCropBatch> | undefined;
    let emptyEpochs = 0;
    try {
      while (this.step < totalSteps && !this.stopping) {
        // The next batch (a new epoch when the loader's epoch has run out).
        iterator ??= this.loader[Symbol.asyncIterator]();
        const waitStart = performance.now();
        const next = await iterator.next();
        const waitMs = performance.now() - waitStart;
        if (next.done) {
          iterator = undefined;
          if (++emptyEpochs > 1) throw new Error(`${this.loader.source.description}: no complete batch of ${B} images in an epoch`);
          continue;
        }
        emptyEpochs = 0;
        using batch = next.value;
        const stepStart = performance.now();
        const hook = this.o.hooks?.afterIteration;
        const waitedBefore = hook && this.dp && blockedIn(this.dp); // only for the hook: 4 native calls
        const lr = this.lrs[this.step]!;
        const loss = this.iteration(batch, lr);
        const stepMs = performance.now() - stepStart;
        this.trainMs += stepMs;
        if (hook) {
          const waited = this.dp && blockedIn(this.dp);
          hook(this.step - 1, stepMs, waited && waitedBefore && { collectives: waited.collectives - waitedBefore.collectives, blockedMs: waited.blockedMs - waitedBefore.blockedMs });
        }
        window.add(B, waitMs);

        // Reports, kNN, checkpoints.
        const { step } = this;
        const done = step === totalSteps;
        const knn = this.monitor && (done || (config.knn.every > 0 && step % config.knn.every === 0)) ? this.monitor.evaluate(this.method.backbone) : undefined;
        if (done) this.knnFinal = knn;
        if (step % config.run.logEvery === 0 || done || knn !== undefined) {
          const { imagesPerS, dataWaitShare } = window.take();
          const line: MetricsLine = { step, epoch: batch.epoch, loss, lr, images_per_s: round(imagesPerS, 2), data_wait_share: round(dataWaitShare, 4) };
          if (knn !== undefined) line.knn = knn;
          this.metrics?.append(line);
        }
        progress?.update(step - this.startStep, `loss ${loss.toFixed(4)} lr ${lr.toPrecision(3)}${knn !== undefined ? ` knn ${fmtPct(knn)}` : ""}`);
        if (knn !== undefined && !done) this.log(`knn        step ${step}: top-1 ${fmtPct(knn)}`);
        if ((config.run.checkpointEvery > 0 && step % config.run.checkpointEvery === 0) || done) {
          this.save(this.sampler);
          window.reset(); // the save is not training time
        }
      }
    } finally {
      await iterator?.return?.(undefined);
    }
  }

  /**
   * Whether the loop stops before the next iteration: on a signal to this process, or with several processes on a
   * stop that the last iteration's all-reduce agreed on (so all ranks stop after the same iteration).
   */
  private get stopping(): boolean {
    return this.dp ? this.stopAgreed : this.stopSignal !== undefined;
  }

  /**
   * Data parallel: one all-reduce of [this rank's loss, its stop vote] -> the mean loss over the ranks (what one
   * process on the whole batch computes: every rank's loss is a mean over as many images). Records a stop vote.
   */
  private agree(loss: number): number {
    const [sum, votes] = this.dp!.pg.allReduceValues([loss, this.stopSignal !== undefined ? 1 : 0], "sum", this.device);
    if (votes! > 0) this.stopAgreed = true;
    return sum! / this.world;
  }

  /**
   * One iteration on `batch` (this rank's share) at learning rate `lr` (main_swav.py's loop body); returns its loss
   * (the mean over the ranks). A non-finite loss (on any rank) is not applied: the forward's side effects are undone,
   * the state before it saved, and NonFiniteLossError thrown.
   */
  private iteration(batch: MultiCropBatch, lr: number): number {
    const { method, optimizer } = this;
    const iteration = this.step; // 0-based
    this.optimizer.setLr(lr);
    manualSeed(iterationSeed(this.config.run.seed, iteration)); // nothing here draws from it today; resumes stay exact if something does
    const undo = snapshot(method);
    try {
      const loss = tidy(() => {
        let crops = this.dtype === "float32" ? batch.crops : batch.crops.map((x) => x.to(this.dtype)); // each (count·B/W, 3, S, S)
        if (this.config.run.channelsLast) crops = crops.map((x) => x.channelsLast());
        // bf16: the forward and the loss under CUDA autocast; backward follows the same casts, the weights, their
        // gradients and the optimizer stay float32.
        const l = withAutocast(this.config.run.precision === "bf16" ? "bfloat16" : null, () => method.loss(crops, batch.epoch));
        const checked = this.o.hooks?.beforeBackward ? this.o.hooks.beforeBackward(iteration, l) : l;
        let value = checked.item();
        if (this.dp) value = this.agree(value); // NaN anywhere -> NaN everywhere
        if (!Number.isFinite(value)) return value; // nothing applied: no backward, no step
        optimizer.zeroGrad();
        this.dp?.reducer.prepare(); // gradient buckets start their all-reduce during backward
        checked.backward(); // with SyncBN and gathered negatives, backward runs collectives too
        method.afterBackward(iteration); // frozen prototypes: their gradients dropped on every rank alike
        this.dp?.reducer.synchronize(); // waits: every .grad becomes the average over the ranks
        optimizer.step();
        method.afterStep();
        return value;
      });
      if (!Number.isFinite(loss)) {
        restore(method, undo); // this forward's BN statistics and queue writes
        const dir = this.save({ seed: this.sampler.seed, epoch: batch.epoch, position: batch.step * this.B });
        throw new NonFiniteLossError(iteration + 1, loss, dir);
      }
      this.step++;
      this.lastLoss = loss;
      this.epoch = batch.epoch;
      this.sampler = { seed: this.sampler.seed, epoch: batch.epoch, position: (batch.step + 1) * this.B };
      return loss;
    } finally {
      disposeSnapshot(undo);
    }
  }

  /**
   * Saves a checkpoint of the state after `this.step` iterations, with the sampler at `at` (global images); returns
   * its folder. Every rank calls it (the queue is gathered, BatchNorm buffers of partial groups broadcast); rank 0
   * writes.
   */
  private save(at: SamplerState): string {
    const dp = this.dp;
    // BatchNorm synchronized in groups smaller than the job: each group has its own running statistics; rank 0's
    // become everyone's (DDP's broadcast_buffers), so that a resumed run continues exactly as this one does.
    if (dp && dp.syncBnGroup < this.world) broadcastBuffers(this.method.module, dp.pg);
    const q = this.method.queue?.state();
    const queue = q && dp ? { embeddings: gatherQueue(q.embeddings, dp.pg, this.B / this.world), filled: q.filled.map((f) => f * this.world) } : q;
    try {
      if (this.rank !== 0) {
        this.savedAt = this.step;
        return (this.checkpointDir = path.join(this.outDir, `checkpoint-${pad(this.step)}`)); // rank 0 writes it
      }
      const sd = this.optimizer.stateDict();
      const tensors = new Map<string, Tensor>();
      for (const [k, t] of sd.state) tensors.set(`optim.${k}`, t);
      if (queue) tensors.set("queue.embeddings", queue.embeddings);
      const { config } = this;
      const state: RunState = {
        format: "seerkit-pretrain-v1", step: this.step, totalSteps: this.totalSteps, sampler: at, config, seed: config.run.seed, worldSize: this.world,
        arch: config.model.arch, smallImageStem: config.model.smallImageStem, modelOptions: modelOptions(config.model),
        optimizer: { step: sd.step, groups: sd.groups },
        ...(queue ? { queue: { filled: queue.filled } } : {}),
        ...(this.knnRandomInit !== undefined ? { knnRandomInit: this.knnRandomInit } : {}),
        ...(this.lastLoss !== undefined ? { lastLoss: this.lastLoss } : {}),
      };
      this.checkpointDir = this.manager.save({ step: this.step, model: this.method.module.stateDict(), tensors, state: state as unknown as Record<string, unknown> });
      this.savedAt = this.step;
      return this.checkpointDir;
    } finally {
      if (queue && dp) queue.embeddings.dispose(); // the gathered copy (a single process's is the queue itself)
    }
  }

  /** SIGINT/SIGTERM: finish the iteration, save, stop; a second signal exits at once. */
  private catchSignals(): void {
    if (!(this.o.handleSignals ?? true)) return;
    const onSignal = (sig: NodeJS.Signals): void => {
      if (this.stopSignal) {
        this.log(`\n${sig} again: exiting without a checkpoint`);
        process.exit(130);
      }
      this.stopSignal = sig;
      this.log(`\n${sig}: finishing the current iteration, then saving a checkpoint (send it again to exit at once)`);
    };
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      process.on(sig, onSignal);
      this.removeSignalHandlers.push(() => process.off(sig, onSignal));
    }
  }

  /**
   * After the loop: a checkpoint on interruption; at the end, the final kNN, backbone.safetensors and summary.json
   * (those on rank 0).
   */
  finish(): PretrainResult {
    if (this.stopping && this.step < this.totalSteps) {
      if (this.savedAt !== this.step && this.step > 0) this.save(this.sampler);
      const by = this.stopSignal ?? "a signal to another rank";
      this.log(
        `interrupted by ${by} at step ${this.step} of ${this.totalSteps} (epoch ${this.epoch}); ` +
          (this.checkpointDir ? `saved ${this.checkpointDir}. Run the same command to resume.` : "nothing trained yet, nothing saved."),
      );
      return this.result("interrupted");
    }
    if (this.savedAt !== this.step) this.save(this.sampler);
    if (this.rank !== 0) return this.result("completed");
    if (this.monitor && this.knnFinal === undefined) this.knnFinal = this.monitor.evaluate(this.method.backbone); // resumed at the end
    const backboneFile = path.join(this.outDir, "backbone.safetensors");
    const { config } = this;
    saveSafetensors(backboneFile, this.method.backbone.stateDict(), {
      format: "pt", arch: config.model.arch, smallImageStem: String(config.model.smallImageStem),
      modelOptions: JSON.stringify(modelOptions(config.model)), method: config.method, step: String(this.step),
    });
    const r = this.result("completed", backboneFile);
    writeJsonAtomic(path.join(this.outDir, "summary.json"), r);
    return r;
  }

  private result(status: PretrainResult["status"], backboneFile?: string): PretrainResult {
    const trainSeconds = this.trainMs / 1000;
    const out: PretrainResult = {
      status, step: this.step, totalSteps: this.totalSteps, resumedFrom: this.startStep, outDir: this.outDir, rank: this.rank, worldSize: this.world,
      wallSeconds: round((performance.now() - this.startedAt) / 1000, 2), trainSeconds: round(trainSeconds, 2),
      imagesPerS: round(trainSeconds > 0 ? ((this.step - this.startStep) * this.B) / trainSeconds : 0, 2),
    };
    if (this.lastLoss !== undefined) out.lastLoss = this.lastLoss;
    if (this.knnRandomInit !== undefined) out.knnRandomInit = this.knnRandomInit;
    if (this.knnFinal !== undefined) out.knnFinal = this.knnFinal;
    if (this.checkpointDir !== undefined) out.checkpoint = this.checkpointDir;
    if (backboneFile !== undefined) out.backboneFile = backboneFile;
    return out;
  }

  /** Frees everything the run holds and stops the loader; removes the signal handlers. */
  async close(): Promise<void> {
    for (const remove of this.removeSignalHandlers) remove();
    this.monitor?.dispose();
    this.dp?.reducer.dispose();
    this.method.queue?.dispose();
    this.optimizer.dispose();
    this.method.module.dispose();
    await this.loader.close();
  }
}

/** Collectives waited for, and ms blocked in them, in the world group and the gradient buckets' group together. */
function blockedIn(dp: DataParallel): { collectives: number; blockedMs: number } {
  const a = dp.pg.waitStats();
  const b = dp.reducer.group?.waitStats() ?? { collectives: 0, blockedMs: 0 };
  return { collectives: a.collectives + b.collectives, blockedMs: a.blockedMs + b.blockedMs };
}

/** The optimizer state dict a checkpoint holds: JSON groups and step, tensors under "optim.". */
function optimizerState(saved: RunState, tensors: Map<string, Tensor>): OptimizerStateDict<SGDHyperparams> {
  const state = new Map<string, Tensor>();
  for (const [k, t] of tensors) if (k.startsWith("optim.")) state.set(k.slice("optim.".length), t);
  return { step: saved.optimizer.step, groups: saved.optimizer.groups, state };
}

/** libtorch's generator seed for an iteration: a pure function of (seed, iteration), so a resume draws the same. */
function iterationSeed(seed: number, iteration: number): number {
  return (seed * 1_000_003 + iteration) % Number.MAX_SAFE_INTEGER;
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export function fmtPct(v: number | undefined): string {
  return v === undefined ? "-" : `${(100 * v).toFixed(1)}%`;
}
