// Building blocks shared by the backbones: conv + BN (+ ReLU), squeeze-and-excitation, a named sequential
// container, and the `Backbone` base class every model extends.
//
// - `ConvNormAct` is torchvision's `Conv2dNormActivation` (torchvision/ops/misc.py): a conv without bias, then BN,
//   then an optional ReLU, with the children named "0" (conv) and "1" (BN) as in that nn.Sequential, so the
//   parameters read `stem.0.weight`, `f.a.1.running_mean`, ...
// - `SqueezeExcitation` is torchvision's `SqueezeExcitation` (Hu et al. 2018, "Squeeze-and-Excitation Networks",
//   Fig. 1): global average pool, 1x1 conv `fc1` (bias), ReLU, 1x1 conv `fc2` (bias), sigmoid, channel-wise scale.
// - `Backbone` gives every model timm's interface (`numFeatures`, `forwardFeatures`, `forwardHead`; timm
//   `models/regnet.py`, `models/resnet.py`) plus `forwardTrunk` for the un-pooled feature map.
//
// Memory: each forward frees its intermediates as soon as the next op has consumed them (`using`; autograd keeps
// what backward needs), so peak memory is that of PyTorch eager. The model-level forwards run inside tidy(), which
// also frees whatever is in flight if an op throws.
//
// What differs from torchvision: the SE squeeze is `mean(dims 2, 3)` instead of `AdaptiveAvgPool2d(1)` (one op, same
// value up to float rounding); the ReLUs run in place on the BN output, as torchvision's `inplace=True`.
import { BatchNorm2d, Conv2d, Identity, Linear, Module } from "../nn";
import { type Tensor, tidy } from "../tensor";

// ---------------------------------------------------------------------------------------------------------------
// Options common to every backbone

/** Construction options every backbone takes (besides its design). */
export interface BackboneOptions {
  /**
   * Classes of the linear classifier `fc` (numFeatures -> numClasses). 0 builds no classifier: `fc` is an Identity
   * without parameters and `forward` returns the pooled features. Default 1000.
   */
  numClasses?: number;
  /**
   * CIFAR-size stem: a 3x3 stride-1 conv (+ BN + ReLU) in place of the stride-2 stem, and no max-pool in a ResNet
   * (pycls `ResStemCifar`). The total stride drops from 32 to 16 (RegNet) or 8 (ResNet). Default false.
   */
  smallImageStem?: boolean;
  /**
   * Zero-init the last BN of every residual branch (`f.c.1` in a RegNet, `bn2`/`bn3` in a ResNet), so each block
   * starts as the identity (Goyal et al. 2017, "Accurate, Large Minibatch SGD", §5.1). Default false, as
   * torchvision (RegNet has no such option; ResNet `zero_init_residual=False`) and pycls (`ZERO_INIT_FINAL_GAMMA`);
   * timm's `zero_init_last` defaults to true.
   */
  zeroInitLastBn?: boolean;
}

/** The options with defaults applied and checked. */
export interface ResolvedBackboneOptions {
  numClasses: number;
  smallImageStem: boolean;
  zeroInitLastBn: boolean;
}

export function resolveBackboneOptions(o: BackboneOptions): ResolvedBackboneOptions {
  const numClasses = o.numClasses ?? 1000;
  if (!Number.isInteger(numClasses) || numClasses < 0) {
    throw new RangeError(`Expected a non-negative integer for numClasses but received ${String(numClasses)}`);
  }
  for (const key of ["smallImageStem", "zeroInitLastBn"] as const) {
    const v = o[key];
    if (v !== undefined && typeof v !== "boolean") throw new TypeError(`Expected a boolean for ${key} but received ${JSON.stringify(v)}`);
  }
  return { numClasses, smallImageStem: o.smallImageStem ?? false, zeroInitLastBn: o.zeroInitLastBn ?? false };
}

// ---------------------------------------------------------------------------------------------------------------
// Layers

/** Expected (key, shape) of a BatchNorm2d's state: what `Module.stateDict()` lists for it. */
export function bnStateShapes(prefix: string, c: number): [string, number[]][] {
  return [
    [`${prefix}.weight`, [c]],
    [`${prefix}.bias`, [c]],
    [`${prefix}.running_mean`, [c]],
    [`${prefix}.running_var`, [c]],
    [`${prefix}.num_batches_tracked`, []],
  ];
}

export interface ConvNormActOptions {
  stride?: number;
  groups?: number;
  /** ReLU after the BN. Default true. */
  act?: boolean;
}

/**
 * torchvision `Conv2dNormActivation`: conv k×k (no bias, "same" padding (k-1)/2) -> BN -> ReLU (optional).
 * (N, cin, H, W) -> (N, cout, H/stride, W/stride).
 */
export class ConvNormAct extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  readonly act: boolean;

  constructor(cin: number, cout: number, kernel: number, o: ConvNormActOptions = {}) {
    super();
    const padding = Math.floor((kernel - 1) / 2);
    this.conv = this.registerModule("0", new Conv2d(cin, cout, kernel, { stride: o.stride ?? 1, padding, groups: o.groups ?? 1, bias: false }));
    this.bn = this.registerModule("1", new BatchNorm2d(cout));
    this.act = o.act ?? true;
  }

  forward(x: Tensor): Tensor {
    using y = this.conv.forward(x); // (N, cout, H', W')
    const z = this.bn.forward(y); // (N, cout, H', W')
    return this.act ? z.relu_() : z;
  }

  /** (key, shape) pairs of this layer's state under `prefix`, without building it. */
  static stateShapes(prefix: string, cin: number, cout: number, kernel: number, groups = 1): [string, number[]][] {
    return [[`${prefix}.0.weight`, [cout, cin / groups, kernel, kernel]], ...bnStateShapes(`${prefix}.1`, cout)];
  }
}

/**
 * torchvision `SqueezeExcitation` (Hu et al. 2018): x · σ(fc2(ReLU(fc1(avgpool(x))))), fc1/fc2 are biased 1x1 convs.
 * (N, C, H, W) -> (N, C, H, W).
 */
export class SqueezeExcitation extends Module {
  readonly fc1: Conv2d;
  readonly fc2: Conv2d;

  constructor(channels: number, squeezeChannels: number) {
    super();
    this.fc1 = this.registerModule("fc1", new Conv2d(channels, squeezeChannels, 1));
    this.fc2 = this.registerModule("fc2", new Conv2d(squeezeChannels, channels, 1));
  }

  forward(x: Tensor): Tensor {
    using s = x.mean([2, 3], true); // (N, C, 1, 1)
    using h = this.fc1.forward(s); // (N, Cse, 1, 1)
    h.relu_();
    using g = this.fc2.forward(h); // (N, C, 1, 1)
    using w = g.sigmoid(); // (N, C, 1, 1)
    return x.mul(w); // (N, C, H, W)
  }

  static stateShapes(prefix: string, channels: number, squeezeChannels: number): [string, number[]][] {
    return [
      [`${prefix}.fc1.weight`, [squeezeChannels, channels, 1, 1]],
      [`${prefix}.fc1.bias`, [squeezeChannels]],
      [`${prefix}.fc2.weight`, [channels, squeezeChannels, 1, 1]],
      [`${prefix}.fc2.bias`, [channels]],
    ];
  }
}

/**
 * Children run in order, under the names given (torch's `nn.Sequential(OrderedDict(...))`, e.g. torchvision's
 * `trunk_output.block1` or a stage's `block1-0`). Each intermediate output is freed once the next child has read it.
 */
export class NamedSequential<M extends Module = Module> extends Module {
  readonly layers: readonly M[];

  constructor(entries: [string, M][]) {
    super();
    this.layers = entries.map(([name, m]) => this.registerModule(name, m));
  }

  forward(x: Tensor): Tensor {
    return runSequentially(this.layers, x);
  }
}

/** Applies `layers` in order to x, freeing each intermediate (never x itself); inputs (N, ...) -> last output. */
export function runSequentially(layers: readonly Module[], x: Tensor): Tensor {
  let h = x;
  try {
    for (const m of layers) {
      const next = m.forward(h);
      if (h !== x) h.dispose();
      h = next;
    }
  } catch (e) {
    if (h !== x) h.dispose();
    throw e;
  }
  return h === x ? x.to(x.dtype) : h; // a new handle even for zero layers: the caller owns what it gets
}

// ---------------------------------------------------------------------------------------------------------------
// The backbone interface

/**
 * A classification backbone: trunk (stem + stages) -> global average pool -> optional linear classifier `fc`.
 * Subclasses build the trunk, then call `addHead()` last so that `fc` comes last in the state dict, as in
 * torchvision.
 */
export abstract class Backbone extends Module {
  /** Width of the pooled features: what a head or a linear probe sees (the last stage's width). */
  readonly numFeatures: number;
  /** Classes of `fc`; 0 when there is no classifier. */
  readonly numClasses: number;
  /** The classifier: Linear(numFeatures, numClasses), or an Identity when numClasses is 0. */
  fc!: Linear | Identity;

  constructor(numFeatures: number, numClasses: number) {
    super();
    this.numFeatures = numFeatures;
    this.numClasses = numClasses;
  }

  /** Registers `fc`; call it at the end of the subclass constructor. */
  protected addHead(): void {
    this.fc = this.registerModule("fc", this.numClasses > 0 ? new Linear(this.numFeatures, this.numClasses) : new Identity());
  }

  /** The trunk's output feature map: (N, 3, H, W) -> (N, numFeatures, H/stride, W/stride). */
  abstract forwardTrunk(x: Tensor): Tensor;

  /** Globally average-pooled trunk features: (N, 3, H, W) -> (N, numFeatures). */
  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => {
      using t = this.forwardTrunk(x); // (N, C, h, w)
      return t.mean([2, 3]); // (N, C)
    });
  }

  /** The classifier on pooled features: (N, numFeatures) -> (N, numClasses), or the features when numClasses is 0. */
  forwardHead(features: Tensor): Tensor {
    return this.fc.forward(features); // (N, numClasses)
  }

  /** (N, 3, H, W) -> (N, numClasses), or (N, numFeatures) without a classifier. */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      using f = this.forwardFeatures(x); // (N, numFeatures)
      return this.forwardHead(f); // (N, numClasses)
    });
  }

  /** (key, shape) pairs of `fc`'s state. */
  static headStateShapes(numFeatures: number, numClasses: number): [string, number[]][] {
    return numClasses > 0 ? [["fc.weight", [numClasses, numFeatures]], ["fc.bias", [numClasses]]] : [];
  }
}
