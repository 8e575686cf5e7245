// Synchronized BatchNorm: in training mode, normalize with the mean and variance of the batch over all ranks of a
// group (SEER: groups of 64 GPUs), not of this rank's slice; eval mode uses the running statistics as usual.
//
// The arithmetic is one native autograd node (ProcessGroup.syncBatchNorm, native/src/dist.cc), as torch's
// SyncBatchNorm on CUDA: per channel, forward all-reduces [n·mean, n·(var + mean²), n] of each rank's slice (in
// float64) and normalizes with ATen's fused batch_norm; backward all-reduces [Σ dy, Σ dy·x̂] and forms the input
// gradient of the whole batch's normalization. Each rank's weight and bias get their local gradient, which
// GradientAllReducer then averages like any parameter's. So R ranks on B/R samples each take the same steps as one
// process on B samples with BatchNorm (tests/dist.test.ts, tests/pretrain_dist.test.ts).
import { BatchNorm, BatchNorm2d, type BatchNormOptions, type BatchNormTrainingForward } from "../nn/layers";
import type { Module } from "../nn/module";
import { noGrad } from "../tensor/grad";
import { tidy } from "../tensor/scope";
import type { Tensor } from "../tensor/tensor";
import type { ProcessGroup } from "./process_group";

/** The training-mode forward with statistics over a process group's ranks. */
export class GroupBatchStats implements BatchNormTrainingForward {
  constructor(readonly pg: ProcessGroup) {}

  forward(bn: BatchNorm, x: Tensor): Tensor {
    return tidy(() => {
      const channels = x.shape[1]!;
      if (channels !== bn.numFeatures) throw new RangeError(`SyncBatchNorm: expected ${bn.numFeatures} channels, got ${channels}`);
      const [y, running] = this.pg.syncBatchNorm(x, bn.weight ?? undefined, bn.bias ?? undefined, bn.eps);
      const [mean, unbiasedVar] = running.split([channels, channels, 1]);
      updateRunningStats(bn, mean!, unbiasedVar!);
      return y;
    });
  }
}

/** As torch's _BatchNorm: count the batch, then move the running statistics towards the batch's (no autograd). */
function updateRunningStats(bn: BatchNorm, mean: Tensor, unbiasedVar: Tensor): void {
  noGrad(() => {
    const counter = bn.numBatchesTracked;
    let factor = bn.momentum ?? 0;
    if (counter) {
      counter.add_(1);
      if (bn.momentum === null) factor = 1 / counter.item();
    }
    const rm = bn.runningMean;
    const rv = bn.runningVar;
    if (rm) rm.mul_(1 - factor).add_(mean.to(rm.dtype), factor);
    if (rv) rv.mul_(1 - factor).add_(unbiasedVar.to(rv.dtype), factor);
  });
}

export interface SyncBatchNormOptions extends BatchNormOptions {
  /**
   * Synchronize within consecutive groups of this many ranks instead of the whole group (SEER: 64). Every rank
   * must construct/convert with the same groupSize, which must divide the group's size.
   */
  groupSize?: number;
}

/** A BatchNorm2d whose training-mode statistics are those of the whole batch over pg's ranks (or a sub-group). */
export class SyncBatchNorm extends BatchNorm2d {
  constructor(numFeatures: number, pg: ProcessGroup, o: SyncBatchNormOptions = {}) {
    super(numFeatures, o);
    const group = o.groupSize === undefined ? pg : pg.splitGroups(o.groupSize);
    if (group.worldSize > 1) this.trainingForward = new GroupBatchStats(group);
  }
}

/**
 * Makes every BatchNorm in module (BatchNorm1d and BatchNorm2d) synchronized, in place: the modules, their
 * parameters, buffers and names stay as they are, so state dicts and references held by models keep working.
 * With groupSize, one sub-group of that size is made (all ranks must call this) and shared by all the layers.
 * Returns the number of layers converted. A group of one rank changes nothing.
 */
export function convertSyncBatchNorm(module: Module, pg: ProcessGroup, o: { groupSize?: number } = {}): number {
  const bns = module.modules().filter((m): m is BatchNorm => m instanceof BatchNorm);
  const group = o.groupSize === undefined ? pg : pg.splitGroups(o.groupSize);
  if (group.worldSize === 1) return 0;
  const sync = new GroupBatchStats(group);
  for (const bn of bns) bn.trainingForward = sync;
  return bns.length;
}
