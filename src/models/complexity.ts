// Parameters, FLOPs and activations of a backbone design, counted the way pycls counts them, for any input size.
//
// pycls (Radosavovic et al. 2020, "Designing Network Design Spaces"; `pycls/core/net.py` `complexity_conv2d`,
// `complexity_batchnorm2d`, `complexity_maxpool2d`, and each module's `complexity()` in `pycls/models/anynet.py`):
// - conv k×k, cin -> cout, groups, stride s, pad p: output h' = (h + 2p - k) // s + 1;
//   flops += k·k·cin·cout·h'·w' / groups (multiply-adds); params += k·k·cin·cout / groups; acts += cout·h'·w';
//   a bias adds cout params and cout·h'·w' flops.
// - BatchNorm: params += 2·c (γ, β; running stats are buffers), no flops, no acts.
// - max-pool: acts += c·h'·w' (pycls 2020, the version that produced dev/model_complexity.json).
// - SE: two biased 1x1 convs at 1×1 spatial size (after the global pool), then the spatial size is restored.
// - head: global pool, then a biased FC w -> classes at 1×1.
// These reproduce pycls `dev/model_complexity.json` exactly for the RegNetX/Y baselines and R-50.
//
// What differs: pycls counts a bias as cout flops regardless of the spatial size; we count cout·h'·w'. Every biased
// layer here runs at 1×1, so the totals are the same. `complexity()` walks the same block lists
// (`regnetBlocks`, `resnetBlocks`) a module builder walks, so the count mirrors the constructor.

import { type ModelDesign, type RegNetDesign, type ResNetDesign, regnetBlocks, resnetBlocks } from "./regnet_design";

/** Totals: parameters, multiply-adds, and activations (output elements of convs, FCs and pools). */
export interface Complexity {
  params: number;
  flops: number;
  acts: number;
}

export interface ComplexityOptions {
  /** Input height and width (one number for square). Default 224. */
  imageSize?: number | readonly [number, number];
  /** Classes of the FC head; 0 counts the trunk only (no head). Default 1000. */
  numClasses?: number;
  /**
   * Small-image stem: a 3x3 stride-1 conv (+ BN) in place of the stride-2 stem (pycls `ResStemCifar`); for ResNets
   * this also drops the max-pool. Changes FLOPs and activations (and a ResNet's parameters: 3x3 instead of 7x7).
   */
  smallImageStem?: boolean;
}

export interface ComplexityReport extends Complexity {
  /** The stem alone. */
  stem: Complexity;
  /** Each stage alone, in order. */
  stages: Complexity[];
  /** The FC head alone (zeros when numClasses is 0). */
  head: Complexity;
  /** Spatial size [h, w] of the trunk output. */
  featureSize: [number, number];
}

/** Running state: spatial size plus the totals, as pycls's `cx` dict. */
interface Cx extends Complexity {
  h: number;
  w: number;
}

const zero = (): Complexity => ({ params: 0, flops: 0, acts: 0 });
const outSize = (n: number, k: number, stride: number, pad: number): number => Math.floor((n + 2 * pad - k) / stride) + 1;

function conv(cx: Cx, cin: number, cout: number, k: number, o: { stride?: number; groups?: number; bias?: boolean } = {}): void {
  const stride = o.stride ?? 1;
  const groups = o.groups ?? 1;
  const pad = Math.floor(k / 2); // every conv here is "same"-padded: 1x1 pad 0, 3x3 pad 1, 7x7 pad 3
  cx.h = outSize(cx.h, k, stride, pad);
  cx.w = outSize(cx.w, k, stride, pad);
  const hw = cx.h * cx.w;
  cx.flops += Math.floor((k * k * cin * cout * hw) / groups) + (o.bias ? cout * hw : 0);
  cx.params += Math.floor((k * k * cin * cout) / groups) + (o.bias ? cout : 0);
  cx.acts += cout * hw;
}

function batchNorm(cx: Cx, c: number): void {
  cx.params += 2 * c;
}

function maxPool(cx: Cx, c: number, k: number, stride: number, pad: number): void {
  cx.h = outSize(cx.h, k, stride, pad);
  cx.w = outSize(cx.w, k, stride, pad);
  cx.acts += c * cx.h * cx.w;
}

/** Runs `fn` on a branch that does not change the main path's spatial size (SE, projection shortcut). */
function sideBranch(cx: Cx, fn: () => void): void {
  const { h, w } = cx;
  fn();
  cx.h = h;
  cx.w = w;
}

/** Global average pool then FC(w -> numClasses) with bias. */
function head(cx: Cx, w: number, numClasses: number): void {
  cx.h = 1;
  cx.w = 1;
  conv(cx, w, numClasses, 1, { bias: true });
}

/** Adds what `fn` accumulates into `cx` as a separate Complexity (for the per-part report). */
function measure(cx: Cx, fn: () => void): Complexity {
  const before = { params: cx.params, flops: cx.flops, acts: cx.acts };
  fn();
  return { params: cx.params - before.params, flops: cx.flops - before.flops, acts: cx.acts - before.acts };
}

function checkOptions(o: ComplexityOptions): { h: number; w: number; numClasses: number; small: boolean } {
  const size = o.imageSize ?? 224;
  const [h, w] = typeof size === "number" ? [size, size] : size;
  for (const [name, v] of [["imageSize height", h], ["imageSize width", w]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`Expected a positive integer for ${name} but received ${v}`);
  }
  const numClasses = o.numClasses ?? 1000;
  if (!Number.isInteger(numClasses) || numClasses < 0) throw new RangeError(`Expected a non-negative integer for numClasses but received ${numClasses}`);
  return { h, w, numClasses, small: o.smallImageStem ?? false };
}

function regnetComplexity(d: RegNetDesign, o: ComplexityOptions): ComplexityReport {
  const { h, w, numClasses, small } = checkOptions(o);
  const cx: Cx = { h, w, ...zero() };
  // Stem: pycls `SimpleStemIN` (3x3/2) or `ResStemCifar` (3x3/1), each conv + BN + ReLU.
  const stem = measure(cx, () => {
    conv(cx, 3, d.stemWidth, 3, { stride: small ? 1 : 2 });
    batchNorm(cx, d.stemWidth);
  });
  const blocks = regnetBlocks(d);
  const stages = d.stages.map((_, si) =>
    measure(cx, () => {
      for (const b of blocks.filter((x) => x.stage === si + 1)) {
        // pycls `ResBottleneckBlock`: optional projection, then `BottleneckTransform` a (1x1), b (3x3 grouped), SE, c (1x1).
        if (b.projection) {
          sideBranch(cx, () => {
            conv(cx, b.wIn, b.wOut, 1, { stride: b.stride });
            batchNorm(cx, b.wOut);
          });
        }
        conv(cx, b.wIn, b.bottleneckWidth, 1);
        batchNorm(cx, b.bottleneckWidth);
        conv(cx, b.bottleneckWidth, b.bottleneckWidth, 3, { stride: b.stride, groups: b.groups });
        batchNorm(cx, b.bottleneckWidth);
        if (b.seWidth > 0) {
          sideBranch(cx, () => {
            cx.h = 1;
            cx.w = 1;
            conv(cx, b.bottleneckWidth, b.seWidth, 1, { bias: true });
            conv(cx, b.seWidth, b.bottleneckWidth, 1, { bias: true });
          });
        }
        conv(cx, b.bottleneckWidth, b.wOut, 1);
        batchNorm(cx, b.wOut);
      }
    }),
  );
  const featureSize: [number, number] = [cx.h, cx.w];
  const headCx = numClasses > 0 ? measure(cx, () => head(cx, d.numFeatures, numClasses)) : zero();
  return { params: cx.params, flops: cx.flops, acts: cx.acts, stem, stages, head: headCx, featureSize };
}

function resnetComplexity(d: ResNetDesign, o: ComplexityOptions): ComplexityReport {
  const { h, w, numClasses, small } = checkOptions(o);
  const cx: Cx = { h, w, ...zero() };
  // Stem: torchvision conv1 7x7/2 + bn1 + relu + maxpool 3x3/2 (pycls `ResStemIN`), or 3x3/1 + BN (`ResStemCifar`).
  const stem = measure(cx, () => {
    if (small) {
      conv(cx, 3, d.stemWidth, 3);
      batchNorm(cx, d.stemWidth);
    } else {
      conv(cx, 3, d.stemWidth, 7, { stride: 2 });
      batchNorm(cx, d.stemWidth);
      maxPool(cx, d.stemWidth, 3, 2, 1);
    }
  });
  const blocks = resnetBlocks(d);
  const stages = d.stages.map((_, si) =>
    measure(cx, () => {
      for (const b of blocks.filter((x) => x.stage === si + 1)) {
        if (b.projection) {
          sideBranch(cx, () => {
            conv(cx, b.wIn, b.wOut, 1, { stride: b.stride });
            batchNorm(cx, b.wOut);
          });
        }
        if (d.block === "basic") {
          // torchvision `BasicBlock`: 3x3 (stride) + BN + ReLU, 3x3 + BN.
          conv(cx, b.wIn, b.wOut, 3, { stride: b.stride });
          batchNorm(cx, b.wOut);
          conv(cx, b.wOut, b.wOut, 3);
          batchNorm(cx, b.wOut);
        } else {
          // torchvision `Bottleneck` (v1.5): 1x1, 3x3 (stride), 1x1 (x4), each + BN.
          conv(cx, b.wIn, b.bottleneckWidth, 1);
          batchNorm(cx, b.bottleneckWidth);
          conv(cx, b.bottleneckWidth, b.bottleneckWidth, 3, { stride: b.stride });
          batchNorm(cx, b.bottleneckWidth);
          conv(cx, b.bottleneckWidth, b.wOut, 1);
          batchNorm(cx, b.wOut);
        }
      }
    }),
  );
  const featureSize: [number, number] = [cx.h, cx.w];
  const headCx = numClasses > 0 ? measure(cx, () => head(cx, d.numFeatures, numClasses)) : zero();
  return { params: cx.params, flops: cx.flops, acts: cx.acts, stem, stages, head: headCx, featureSize };
}

/**
 * Parameters, FLOPs (multiply-adds) and activations of a design at the given input size, counted as pycls does.
 * Defaults: 224×224 input, 1000-class FC head, the ImageNet stem.
 */
export function complexity(design: ModelDesign, options: ComplexityOptions = {}): ComplexityReport {
  return design.family === "regnet" ? regnetComplexity(design, options) : resnetComplexity(design, options);
}
