// The SwAV loss ("swapped prediction") and SwAV's embedding queue.
//
// Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments", eq. (1)-(2):
// the code q_a of one crop (Sinkhorn-Knopp on its prototype scores, no gradient) is predicted from every other
// crop v by p_v = softmax(z_v Cᵀ / τ), with loss -Σ_k q_a,k log p_v,k. Follows facebookresearch/swav
// main_swav.py `train()` term for term: the subloss of assignment crop a is the mean over the V-1 other crops
// (the other large crop and all small crops) of the batch-mean cross-entropy, and the loss is the mean over
// assignment crops. VISSL's swav_loss.py computes the same and also averages over prototype sets; here that
// average is the caller's (methods/swav.ts), since the loss sees one score matrix at a time.
// What differs:
//   - the queue's scores are appended after the batch and the first B rows of Q kept (VISSL's order); swav
//     prepends them and keeps the last B. Sinkhorn treats samples symmetrically, so both give the same codes up to
//     rounding.
//   - Sinkhorn subtracts the max before exp() (see sinkhorn.ts).
// Note that the anchor step (shared/anchors/pytorch_cpu_step.py) sums the terms instead of averaging them: its loss
// is 2·(V-1) times this one.
//
// Layout: scores are crop-major, (V·B, K): rows [v·B, (v+1)·B) are crop v of every image in the batch.
import { cat, stack, zeros } from "../tensor/creation";
import type { DType, Device } from "../tensor/dtype";
import { noGrad } from "../tensor/grad";
import { keep, tidy } from "../tensor/scope";
import type { Tensor } from "../tensor/tensor";
import * as F from "../nn/functional";
import { sinkhorn } from "./sinkhorn";
import type { AllReduce } from "./types";

/** (G, ...) -> G tensors (...). */
const unstack = (t: Tensor): Tensor[] => Array.from({ length: t.shape[0]! }, (_, g) => t.select(0, g));

export interface SwAVLossOptions {
  /** V, crops per image over all resolutions (the sum of swav's nmb_crops, e.g. 2 + 6). */
  numCrops: number;
  /** τ of the softmax over prototypes (swav: 0.1). */
  temperature?: number;
  /** Sinkhorn-Knopp iterations (swav: 3; SEER: 10). */
  sinkhornIterations?: number;
  /** Sinkhorn's ε (swav: 0.05). */
  epsilon?: number;
  /** Crops whose codes are computed and predicted from the others (swav: [0, 1], the two large crops). */
  cropsForAssign?: readonly number[];
  /** Makes Sinkhorn's sums global under distributed training (see sinkhorn.ts); identity by default. */
  allReduce?: AllReduce;
  /** Workers taking part in allReduce (default 1). */
  worldSize?: number;
}

export type SwAVLossConfig = Readonly<Required<Omit<SwAVLossOptions, "allReduce">>> & { readonly allReduce?: AllReduce };

export class SwAVLoss {
  readonly config: SwAVLossConfig;

  constructor(o: SwAVLossOptions) {
    const config = {
      numCrops: o.numCrops,
      temperature: o.temperature ?? 0.1,
      sinkhornIterations: o.sinkhornIterations ?? 3,
      epsilon: o.epsilon ?? 0.05,
      cropsForAssign: Object.freeze([...(o.cropsForAssign ?? [0, 1])]),
      worldSize: o.worldSize ?? 1,
      allReduce: o.allReduce,
    };
    if (!Number.isInteger(config.numCrops) || config.numCrops < 2) throw new RangeError(`SwAVLoss: expected an integer >= 2 for numCrops but received ${config.numCrops}`);
    if (!(config.temperature > 0)) throw new RangeError(`SwAVLoss: expected a positive number for temperature but received ${config.temperature}`);
    if (config.cropsForAssign.length === 0) throw new RangeError("SwAVLoss: expected at least one crop in cropsForAssign");
    for (const a of config.cropsForAssign) {
      if (!Number.isInteger(a) || a < 0 || a >= config.numCrops) throw new RangeError(`SwAVLoss: cropsForAssign entry ${a} is not a crop index below numCrops ${config.numCrops}`);
    }
    if (new Set(config.cropsForAssign).size !== config.cropsForAssign.length) throw new RangeError(`SwAVLoss: cropsForAssign has duplicates: [${config.cropsForAssign.join(", ")}]`);
    this.config = Object.freeze(config);
  }

  /**
   * The codes q_a (B, K) of each assignment crop a, in cropsForAssign order, without gradient. queueScores[j]
   * (L, K), if given, are scores of earlier embeddings of crop cropsForAssign[j]: they join Sinkhorn's batch
   * (enlarging the equipartition) and their rows are dropped afterwards.
   */
  assignments(scores: Tensor, batchSize: number, queueScores?: readonly Tensor[]): Tensor[] {
    const { cropsForAssign, sinkhornIterations, epsilon, allReduce, worldSize } = this.config;
    this.checkScores(scores, batchSize, queueScores);
    const B = batchSize;
    return noGrad(() =>
      tidy(() => {
        const problems = cropsForAssign.map((a, j) => {
          const own = scores.narrow(0, a * B, B).detach(); // (B, K)
          const queued = queueScores?.[j];
          return queued ? cat([own, queued.detach()]) : own; // (B [+ L_j], K)
        });
        const solve = (out: Tensor): Tensor => sinkhorn(out, { iterations: sinkhornIterations, epsilon, allReduce, worldSize });
        // One Sinkhorn for all crops when their problems have one shape (the usual case): a collective per step for
        // all of them, instead of one per crop.
        const sameShape = problems.every((p) => p.shape[0] === problems[0]!.shape[0]);
        const Qs = sameShape ? unstack(solve(stack(problems))) : problems.map(solve); // each (B [+ L], K)
        return Qs.map((Q) => Q.narrow(0, 0, B)); // (B, K): the current batch's codes
      }),
    );
  }

  /**
   * The swapped prediction loss given the codes (one (B, K) per assignment crop, treated as constants): a scalar.
   * Differentiable in scores.
   */
  swappedPrediction(scores: Tensor, batchSize: number, codes: readonly Tensor[]): Tensor {
    const { numCrops, temperature, cropsForAssign } = this.config;
    this.checkScores(scores, batchSize);
    if (codes.length !== cropsForAssign.length) throw new RangeError(`SwAVLoss: expected ${cropsForAssign.length} code matrices (one per assignment crop) but received ${codes.length}`);
    const B = batchSize;
    return tidy(() => {
      const logP = F.logSoftmax(scores.div(temperature), 1); // (V·B, K), log p_v for every crop
      let loss: Tensor | undefined;
      cropsForAssign.forEach((a, j) => {
        const q = codes[j]!.detach(); // (B, K)
        let subloss: Tensor | undefined;
        for (let v = 0; v < numCrops; v++) {
          if (v === a) continue;
          const ce = q.mul(logP.narrow(0, v * B, B)).sum(1).mean().neg(); // () mean_b -Σ_k q log p_v
          subloss = subloss ? subloss.add(ce) : ce;
        }
        const term = subloss!.div(numCrops - 1);
        loss = loss ? loss.add(term) : term;
      });
      return loss!.div(cropsForAssign.length); // ()
    });
  }

  /**
   * scores (V·B, K) crop-major -> the SwAV loss (a scalar). queueScores: see assignments(). Gradients flow into
   * scores through the predictions only; the codes are constants, as in SwAV.
   */
  forward(scores: Tensor, batchSize: number, queueScores?: readonly Tensor[]): Tensor {
    return tidy(() => this.swappedPrediction(scores, batchSize, this.assignments(scores, batchSize, queueScores)));
  }

  private checkScores(scores: Tensor, batchSize: number, queueScores?: readonly Tensor[]): void {
    const { numCrops, cropsForAssign } = this.config;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`SwAVLoss: expected a positive integer for batchSize but received ${batchSize}`);
    const s = scores.shape;
    if (s.length !== 2 || s[0] !== numCrops * batchSize) {
      throw new RangeError(`SwAVLoss: expected scores of shape (numCrops·B, K) = (${numCrops}·${batchSize}, K) but received [${s.join(", ")}]`);
    }
    if (!queueScores) return;
    if (queueScores.length !== cropsForAssign.length) throw new RangeError(`SwAVLoss: expected ${cropsForAssign.length} queue score matrices (one per assignment crop) but received ${queueScores.length}`);
    for (const q of queueScores) {
      const qs = q.shape;
      if (qs.length !== 2 || qs[1] !== s[1]) throw new RangeError(`SwAVLoss: expected queue scores of shape (L, ${s[1]}) but received [${qs.join(", ")}]`);
    }
  }
}

export interface SwAVQueueOptions {
  /** Queues kept, one per assignment crop (default 2, for cropsForAssign [0, 1]). */
  numQueues?: number;
  dtype?: DType;
  device?: Device;
}

/** What a checkpoint stores of a queue. */
export interface SwAVQueueState {
  /** (numQueues, length, dim), newest rows first. */
  embeddings: Tensor;
  /** Rows written so far in each queue, capped at length. */
  filled: number[];
}

/**
 * SwAV's queue (main_swav.py; the paper's "working with small batches"): for each assignment crop, the L most recent
 * embeddings z (not scores; the scores are recomputed with the current prototypes, queue Cᵀ, at every use), newest
 * first. Filled from startEpoch on and used only once full, as swav (which creates it zeroed at
 * epoch_queue_starts and uses it once its last row is non-zero).
 * Distributed training gives each worker queue_length / world_size rows, with queue_length first rounded down to a
 * multiple of the global batch (swav, VISSL); that arithmetic is the trainer's.
 */
export class SwAVQueue implements Disposable {
  readonly numQueues: number;
  private readonly buffer: Tensor; // (numQueues, length, dim)
  private readonly fill: number[];

  constructor(readonly length: number, readonly dim: number, readonly startEpoch: number, o: SwAVQueueOptions = {}) {
    this.numQueues = o.numQueues ?? 2;
    for (const [name, v] of [["length", length], ["dim", dim], ["numQueues", this.numQueues]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`SwAVQueue: expected a positive integer for ${name} but received ${v}`);
    }
    if (!Number.isInteger(startEpoch) || startEpoch < 0) throw new RangeError(`SwAVQueue: expected a non-negative integer for startEpoch but received ${startEpoch}`);
    this.buffer = keep(zeros([this.numQueues, length, dim], { dtype: o.dtype ?? "float32", device: o.device ?? "cpu" }));
    this.fill = new Array<number>(this.numQueues).fill(0);
  }

  /** Whether the queue is filled (and, once full, used) during `epoch` (0-based). */
  isActive(epoch: number): boolean {
    return epoch >= this.startEpoch;
  }

  /** Whether queue i holds `length` embeddings, so that its scores may join Sinkhorn. */
  isFull(i: number): boolean {
    return this.fill[this.check(i)]! >= this.length;
  }

  /** Rows written so far in queue i (at most length). */
  filled(i: number): number {
    return this.fill[this.check(i)]!;
  }

  /** Queue i's embeddings (length, dim), newest first, as a new handle (dispose it). */
  embeddings(i: number): Tensor {
    return this.buffer.select(0, this.check(i)).clone();
  }

  /** Queue i's scores against prototypes C (K, dim): (length, K), without gradient. swav: mm(queue[i], Cᵀ). */
  scores(i: number, prototypes: Tensor): Tensor {
    this.check(i);
    if (prototypes.ndim !== 2 || prototypes.shape[1] !== this.dim) {
      throw new RangeError(`SwAVQueue.scores: expected prototypes of shape (K, ${this.dim}) but received [${prototypes.shape.join(", ")}]`);
    }
    return noGrad(() =>
      tidy(() => {
        const q = this.buffer.select(0, i); // (L, D)
        const C = prototypes.dtype === q.dtype ? prototypes.detach() : prototypes.to(q.dtype); // (K, D)
        return q.mm(C.t()); // (L, K)
      }),
    );
  }

  /**
   * Writes embeddings (B, dim) at the front of queue i, shifting the older rows back and dropping the oldest B
   * (swav: queue[i, bs:] = queue[i, :-bs].clone(); queue[i, :bs] = embedding). Stored detached, in the queue's dtype.
   */
  push(i: number, embeddings: Tensor): void {
    this.check(i);
    const [B, D] = embeddings.shape as [number, number];
    if (embeddings.ndim !== 2 || D !== this.dim) throw new RangeError(`SwAVQueue.push: expected embeddings of shape (B, ${this.dim}) but received [${embeddings.shape.join(", ")}]`);
    if (B > this.length) throw new RangeError(`SwAVQueue.push: a batch of ${B} does not fit a queue of length ${this.length}`);
    noGrad(() =>
      tidy(() => {
        const q = this.buffer.select(0, i); // (L, D) view
        const L = this.length;
        if (B < L) {
          const older = q.narrow(0, 0, L - B).clone(); // (L-B, D)
          q.narrow(0, B, L - B).copy_(older);
        }
        q.narrow(0, 0, B).copy_(embeddings.detach());
      }),
    );
    this.fill[i] = Math.min(this.length, this.fill[i]! + B);
  }

  /** The queue's tensor (its own: do not dispose) and fill counts, for checkpoints. */
  state(): SwAVQueueState {
    return { embeddings: this.buffer, filled: [...this.fill] };
  }

  /** Restores a state(); the tensor is copied, the caller keeps it. */
  loadState(s: SwAVQueueState): void {
    const want = this.buffer.shape;
    const got = s.embeddings.shape;
    if (got.length !== want.length || got.some((d, k) => d !== want[k])) {
      throw new RangeError(`SwAVQueue.loadState: expected embeddings of shape [${want.join(", ")}] but received [${got.join(", ")}]`);
    }
    if (s.filled.length !== this.numQueues || s.filled.some((f) => !Number.isInteger(f) || f < 0 || f > this.length)) {
      throw new RangeError(`SwAVQueue.loadState: expected ${this.numQueues} fill counts in [0, ${this.length}] but received [${s.filled.join(", ")}]`);
    }
    noGrad(() => this.buffer.copy_(s.embeddings));
    s.filled.forEach((f, i) => (this.fill[i] = f));
  }

  dispose(): void {
    this.buffer.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private check(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.numQueues) throw new RangeError(`SwAVQueue: queue index ${i} out of range for ${this.numQueues} queues`);
    return i;
  }
}
