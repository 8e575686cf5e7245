// Synchronized BatchNorm: in training mode, normalize with the mean and variance of the batch over all ranks of a
// group (SEER: groups of 64 GPUs), not of this rank's slice; eval mode uses the running statistics as usual.
//
// Forward, per channel c, on each rank r with n_r values x:
//   local:   mean_r = mean(x), m2_r = sum((x - mean_r)^2)        (stable: centred on the local mean)
//            sum_r = n_r mean_r, sumsq_r = m2_r + n_r mean_r^2     (in float64)
//   global:  [S, Q, N] = allReduce([sum_r, sumsq_r, n_r])
//            mean = S / N, var = Q / N - mean^2 (biased, for normalizing; float64 keeps the cancellation harmless)
//   y = (x - mean) / sqrt(var + eps) * weight + bias
//   running_mean/var move towards mean and N/(N-1) var (unbiased), as torch.nn.BatchNorm with N values would.
//
// Backward: c10d's allreduce is not differentiable in libtorch's C++, so [S, Q, N] comes from
// ProcessGroup.allReduceWithGrad: its value is the all-reduced sum, and a hook all-reduces the gradient arriving at
// it during backward. Each rank's loss depends on S and Q, and S and Q depend on every rank's x, so
// d(total loss)/dS = sum over ranks of dL_r/dS: exactly what the hook hands back to each rank, which then
// backpropagates it through its own local sums into its own x. The rest of the graph is ordinary autograd. (torch's
// SyncBatchNorm all-reduces the same two per-channel gradients, sum(dy) and sum(dy (x - mean)), in its hand-written
// backward.) The whole batch's gradient is thus reproduced: with gradients averaged over ranks by
// GradientAllReducer, R ranks on B/R samples each take the same steps as one process on B samples with BatchNorm.
import { BatchNorm, BatchNorm2d, type BatchNormOptions, type BatchNormTrainingForward } from "../nn/layers";
import type { Module } from "../nn/module";
import { cat, full } from "../tensor/creation";
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
      const dims = x.shape.map((_, d) => d).filter((d) => d !== 1); // all but the channel dim
      const bcast = x.shape.map((s, d) => (d === 1 ? s : 1)); // (1, C, 1, ...)
      const n = x.numel / channels;

      // Local statistics, differentiable in x.
      const mean = x.mean(dims);
      const centred = x.sub(mean.view(...bcast));
      const m2 = centred.mul(centred).sum(dims);
      const mean64 = mean.to("float64");
      const sum = mean64.mul(n);
      const sumsq = m2.to("float64").add(mean64.mul(mean64).mul(n));
      const local = cat([sum, sumsq, full([1], n, { dtype: "float64", device: x.device })]);

      // Global statistics: [S (C), Q (C), N (1)], with the gradient all-reduced in backward.
      const global = this.pg.allReduceWithGrad(local);
      const [S, Q, count] = global.split([channels, channels, 1]);
      const total = count!.item();
      if (total <= 1) throw new RangeError(`SyncBatchNorm: expected more than 1 value per channel over the group's ranks, got ${total}`);
      const gmean = S!.div(total);
      const gvar = Q!.div(total).sub(gmean.mul(gmean)).clampMin(0);

      const invstd = gvar.add(bn.eps).rsqrt().to(x.dtype);
      let y = x.sub(gmean.to(x.dtype).view(...bcast)).mul(invstd.view(...bcast));
      if (bn.weight) y = y.mul(bn.weight.view(...bcast));
      if (bn.bias) y = y.add(bn.bias.view(...bcast));

      updateRunningStats(bn, gmean, gvar.mul(total / (total - 1)));
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
