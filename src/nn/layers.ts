// The layers SEER's models are built from, as in torch.nn: same constructor arguments, same parameter and
// buffer names (weight, bias, running_mean, running_var, num_batches_tracked), same default initialization and
// the same forward arithmetic (each forward is the torch.nn.functional call torch.nn makes), so state dicts and
// results carry over from PyTorch unchanged.
import { empty, ones, zeros } from "../tensor/creation";
import type { DType } from "../tensor/dtype";
import { noGrad } from "../tensor/grad";
import type { Tensor } from "../tensor/tensor";
import * as F from "./functional";
import { pair, type Pair } from "./functional";
import { defaultLayerInit_ } from "./init";
import { Module } from "./module";


/** Layers create their parameters on the CPU in float32 unless told otherwise; use module.to() to move them. */
export interface LayerDType {
  dtype?: DType;
}

export interface Conv2dOptions extends LayerDType {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

/** 2-d convolution: (N, Cin, H, W) -> (N, Cout, H', W'). weight (Cout, Cin/groups, kH, kW), bias (Cout). */
export class Conv2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: Pair, o: Conv2dOptions = {}) {
    super();
    this.kernelSize = pair(kernelSize);
    this.stride = pair(o.stride ?? 1);
    this.padding = pair(o.padding ?? 0);
    this.dilation = pair(o.dilation ?? 1);
    this.groups = o.groups ?? 1;
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new RangeError(`Conv2d: in_channels ${inChannels} and out_channels ${outChannels} must be divisible by groups ${this.groups}`);
    }
    const dtype = o.dtype ?? "float32";
    const weight = this.registerParameter("weight", empty([outChannels, inChannels / this.groups, ...this.kernelSize], { dtype }));
    const bias = (o.bias ?? true) ? this.registerParameter("bias", empty([outChannels], { dtype })) : undefined;
    defaultLayerInit_(weight, bias);
  }

  get weight(): Tensor {
    return this.param("weight");
  }
  get bias(): Tensor | undefined {
    return this.optionalParam("bias");
  }

  forward(x: Tensor): Tensor {
    const o = { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups };
    return F.conv2d(x, this.weight, this.bias, o); // (N, Cout, H', W')
  }
}

/** x (..., in) -> (..., out): x weightᵀ + bias. weight (out, in), bias (out). */
export class Linear extends Module {
  constructor(readonly inFeatures: number, readonly outFeatures: number, o: { bias?: boolean } & LayerDType = {}) {
    super();
    const dtype = o.dtype ?? "float32";
    const weight = this.registerParameter("weight", empty([outFeatures, inFeatures], { dtype }));
    const bias = (o.bias ?? true) ? this.registerParameter("bias", empty([outFeatures], { dtype })) : undefined;
    defaultLayerInit_(weight, bias);
  }

  get weight(): Tensor {
    return this.param("weight");
  }
  get bias(): Tensor | undefined {
    return this.optionalParam("bias");
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias); // (..., out)
  }
}

export interface BatchNormOptions extends LayerDType {
  eps?: number;
  /** Weight of the new batch statistic in the running average; null gives the cumulative average. */
  momentum?: number | null;
  /** Learnable weight (gamma) and bias (beta). */
  affine?: boolean;
  /** Keep running_mean / running_var (and num_batches_tracked) for eval mode. */
  trackRunningStats?: boolean;
}

/**
 * Replaces a BatchNorm's training-mode forward: SyncBatchNorm and convertSyncBatchNorm (src/dist) install one that
 * normalizes with statistics over several processes. It does all that the training-mode forward does: normalize,
 * update running_mean / running_var and count num_batches_tracked.
 */
export interface BatchNormTrainingForward {
  forward(bn: BatchNorm, x: Tensor): Tensor;
}

/**
 * Batch normalization over the channel dim 1, as torch.nn's _BatchNorm: in training mode it normalizes with batch
 * statistics, updates running_mean / running_var in place (unbiased variance, momentum 0.1) and counts
 * num_batches_tracked; in eval mode it normalizes with the running statistics. The base of BatchNorm1d/2d
 * (`instanceof BatchNorm` finds both, e.g. to exempt them from weight decay).
 */
export abstract class BatchNorm extends Module {
  readonly eps: number;
  readonly momentum: number | null;
  /**
   * Marks the last BN of a residual branch, for zero-init of its gamma (pycls's final_bn, torchvision's
   * zero_init_residual). Set by model builders; only the init schemes read it.
   */
  finalBn = false;
  /** When set, training-mode forward() goes through it (see BatchNormTrainingForward); eval mode never does. */
  trainingForward: BatchNormTrainingForward | undefined = undefined;

  constructor(readonly numFeatures: number, o: BatchNormOptions = {}) {
    super();
    this.eps = o.eps ?? 1e-5;
    this.momentum = o.momentum === undefined ? 0.1 : o.momentum;
    const dtype = o.dtype ?? "float32";
    if (o.affine ?? true) {
      this.registerParameter("weight", ones([numFeatures], { dtype }));
      this.registerParameter("bias", zeros([numFeatures], { dtype }));
    }
    if (o.trackRunningStats ?? true) {
      this.registerBuffer("running_mean", zeros([numFeatures], { dtype }));
      this.registerBuffer("running_var", ones([numFeatures], { dtype }));
      this.registerBuffer("num_batches_tracked", zeros([], { dtype: "int64" }));
    }
  }

  get weight(): Tensor | undefined {
    return this.optionalParam("weight");
  }
  get bias(): Tensor | undefined {
    return this.optionalParam("bias");
  }
  get runningMean(): Tensor | undefined {
    return this.optionalBuffer("running_mean");
  }
  get runningVar(): Tensor | undefined {
    return this.optionalBuffer("running_var");
  }
  get numBatchesTracked(): Tensor | undefined {
    return this.optionalBuffer("num_batches_tracked");
  }

  /** Throws unless x has the dims this kind of BatchNorm takes. */
  protected abstract checkInput(x: Tensor): void;

  forward(x: Tensor): Tensor {
    this.checkInput(x);
    if (this.training && this.trainingForward) return this.trainingForward.forward(this, x);
    // Batch statistics in training mode, and in eval mode too when there are no running statistics to use.
    const useBatchStats = this.training || !this.runningMean;
    if (useBatchStats) checkBatchStatsDefined(x);
    let factor = this.momentum ?? 0;
    const counter = this.numBatchesTracked;
    if (this.training && counter) {
      noGrad(() => counter.add_(1)); // int64 counter, as torch's num_batches_tracked += 1
      if (this.momentum === null) factor = 1 / counter.item();
    }
    return F.batchNorm(x, {
      weight: this.weight,
      bias: this.bias,
      runningMean: this.runningMean,
      runningVar: this.runningVar,
      training: useBatchStats,
      momentum: factor,
      eps: this.eps,
    }); // same shape as x
  }
}

/** As torch.nn.functional.batch_norm: one value per channel has no variance (it would turn running_var into NaN). */
function checkBatchStatsDefined(x: Tensor): void {
  const shape = x.shape;
  const perChannel = shape.reduce((a, b) => a * b, 1) / shape[1]!;
  if (perChannel === 1) throw new RangeError(`BatchNorm: expected more than 1 value per channel when training, got input size [${shape.join(", ")}]`);
}

/**
 * counter += 1 for an int64 scalar tensor, exactly and on its device. The native scalar ops take doubles, which
 * libtorch refuses to add in place to an integer tensor, so the sum goes through tensors.
 */
/** BatchNorm over (N, C, H, W). */
export class BatchNorm2d extends BatchNorm {
  protected checkInput(x: Tensor): void {
    if (x.ndim !== 4) throw new RangeError(`BatchNorm2d: expected 4-d input (N, C, H, W), got ${x.ndim}-d`);
  }
}

/** BatchNorm over (N, C) or (N, C, L). */
export class BatchNorm1d extends BatchNorm {
  protected checkInput(x: Tensor): void {
    if (x.ndim !== 2 && x.ndim !== 3) throw new RangeError(`BatchNorm1d: expected 2-d or 3-d input (N, C[, L]), got ${x.ndim}-d`);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}

/** Passes its input through (as a new handle on the same tensor, so the caller owns what forward returns). */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x.to(x.dtype); // same tensor, same autograd history
  }
}

/** Flattens dims startDim..endDim into one: (N, C, H, W) -> (N, C·H·W) by default. */
export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
}

/** (N, C, H, W) -> (N, C, outH, outW), averaging over adaptive windows. */
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, this.outputSize);
  }
}

/** Runs its children in order; they are named "0", "1", ... as in torch.nn.Sequential. */
export class Sequential extends Module {
  private readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
    layers.forEach((m, i) => this.registerModule(String(i), m));
  }

  get length(): number {
    return this.layers.length;
  }

  /** The i-th child (negative i counts from the end). */
  at(i: number): Module {
    const m = this.layers.at(i);
    if (!m) throw new RangeError(`Sequential: index ${i} out of range for ${this.layers.length} layers`);
    return m;
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.layers[Symbol.iterator]();
  }

  /** Each intermediate output is freed as soon as the next layer has consumed it (autograd keeps what it needs). */
  forward(x: Tensor): Tensor {
    let h = x;
    try {
      for (const m of this.layers) {
        const next = m.forward(h);
        if (h !== x && next !== h) h.dispose();
        h = next;
      }
    } catch (e) {
      if (h !== x) h.dispose();
      throw e;
    }
    return h;
  }
}
