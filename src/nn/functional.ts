// Stateless layers and losses, named after torch.nn.functional. Each calls the ATen function PyTorch's own
// functional calls, so results match PyTorch to the last bit on the same build.
import { torch } from "../native/load";
import { Tensor } from "../tensor/tensor";

/** A size given once for both spatial dims, or as [height, width]. */
export type Pair = number | [number, number];
export const pair = (v: Pair): [number, number] => (typeof v === "number" ? [v, v] : v);
const optId = (t: Tensor | undefined | null): number | null => (t ? t.id : null);

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

/** x (N, Cin, H, W), weight (Cout, Cin/groups, kH, kW), bias (Cout) -> (N, Cout, H', W') */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, o: Conv2dOptions = {}): Tensor {
  return new Tensor(torch.conv2d(x.id, weight.id, optId(bias), pair(o.stride ?? 1), pair(o.padding ?? 0), pair(o.dilation ?? 1), o.groups ?? 1));
}

/** x (N, in) @ weight (out, in)^T + bias (out) -> (N, out) */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return new Tensor(torch.linear(x.id, weight.id, optId(bias)));
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  /** Batch statistics (and running-stat updates) when true; running statistics when false. */
  training: boolean;
  momentum?: number;
  eps?: number;
}

/** x (N, C, ...) normalized per channel. In training mode the running statistics update in place. */
export function batchNorm(x: Tensor, o: BatchNormOptions): Tensor {
  return new Tensor(
    torch.batchNorm(x.id, optId(o.weight), optId(o.bias), optId(o.runningMean), optId(o.runningVar), o.training, o.momentum ?? 0.1, o.eps ?? 1e-5),
  );
}

export function maxPool2d(x: Tensor, kernel: Pair, o: { stride?: Pair; padding?: Pair; dilation?: Pair; ceilMode?: boolean } = {}): Tensor {
  return new Tensor(torch.maxPool2d(x.id, pair(kernel), pair(o.stride ?? kernel), pair(o.padding ?? 0), pair(o.dilation ?? 1), o.ceilMode ?? false));
}

export function avgPool2d(x: Tensor, kernel: Pair, o: { stride?: Pair; padding?: Pair; ceilMode?: boolean; countIncludePad?: boolean } = {}): Tensor {
  return new Tensor(torch.avgPool2d(x.id, pair(kernel), pair(o.stride ?? kernel), pair(o.padding ?? 0), o.ceilMode ?? false, o.countIncludePad ?? true));
}

/** (N, C, H, W) -> (N, C, outH, outW) */
export function adaptiveAvgPool2d(x: Tensor, size: Pair): Tensor {
  return new Tensor(torch.adaptiveAvgPool2d(x.id, pair(size)));
}

export const relu = (x: Tensor): Tensor => x.relu();
export const softmax = (x: Tensor, dim: number): Tensor => new Tensor(torch.softmax(x.id, dim));
export const logSoftmax = (x: Tensor, dim: number): Tensor => new Tensor(torch.logSoftmax(x.id, dim));

/** Zeroes elements with probability p and scales the rest by 1/(1-p), in training mode only. */
export const dropout = (x: Tensor, p: number, training: boolean): Tensor => new Tensor(torch.dropout(x.id, p, training));

export type Reduction = "none" | "mean" | "sum";
const REDUCTION: Record<Reduction, number> = { none: 0, mean: 1, sum: 2 };

export interface CrossEntropyOptions {
  weight?: Tensor;
  reduction?: Reduction;
  ignoreIndex?: number;
  labelSmoothing?: number;
}

/** logits (N, C); target (N) class indices (int64) or (N, C) class probabilities. */
export function crossEntropy(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  return new Tensor(torch.crossEntropy(logits.id, target.id, optId(o.weight), REDUCTION[o.reduction ?? "mean"], o.ignoreIndex ?? -100, o.labelSmoothing ?? 0));
}

export function nllLoss(logProbs: Tensor, target: Tensor, o: { weight?: Tensor; reduction?: Reduction; ignoreIndex?: number } = {}): Tensor {
  return new Tensor(torch.nllLoss(logProbs.id, target.id, optId(o.weight), REDUCTION[o.reduction ?? "mean"], o.ignoreIndex ?? -100));
}

export const mseLoss = (a: Tensor, b: Tensor, reduction: Reduction = "mean"): Tensor => new Tensor(torch.mseLoss(a.id, b.id, REDUCTION[reduction]));

/** x / max(||x||_p, eps) along dim, as torch.nn.functional.normalize. */
export function normalize(x: Tensor, o: { p?: number; dim?: number; eps?: number } = {}): Tensor {
  const dim = o.dim ?? 1;
  using n = x.norm(o.p ?? 2, dim, true);
  using c = n.clampMin(o.eps ?? 1e-12);
  using e = c.expandAs(x);
  return x.div(e);
}

export type InterpolateMode = "nearest" | "bilinear" | "bicubic";
const INTERP: Record<InterpolateMode, number> = { nearest: 0, bilinear: 1, bicubic: 2 };

/** (N, C, H, W) resampled to size [outH, outW]. */
export function interpolate(x: Tensor, size: Pair, o: { mode?: InterpolateMode; alignCorners?: boolean; antialias?: boolean } = {}): Tensor {
  const mode = o.mode ?? "nearest";
  if (mode === "nearest" && o.alignCorners) throw new TypeError("interpolate: alignCorners only applies to bilinear and bicubic");
  if (mode === "nearest" && o.antialias) throw new TypeError("interpolate: antialias only applies to bilinear and bicubic");
  return new Tensor(torch.interpolate(x.id, pair(size), INTERP[mode], o.alignCorners ?? false, o.antialias ?? false));
}

/** theta (N, 2, 3) affine matrices -> sampling grid (N, H, W, 2) for size [N, C, H, W]. */
export const affineGrid = (theta: Tensor, size: [number, number, number, number], alignCorners = false): Tensor =>
  new Tensor(torch.affineGrid(theta.id, size, alignCorners));

const GRID_MODE = { bilinear: 0, nearest: 1, bicubic: 2 } as const;
const GRID_PAD = { zeros: 0, border: 1, reflection: 2 } as const;

/** Samples x (N, C, H, W) at grid (N, Ho, Wo, 2) in [-1, 1] coordinates -> (N, C, Ho, Wo). */
export function gridSample(
  x: Tensor,
  grid: Tensor,
  o: { mode?: keyof typeof GRID_MODE; paddingMode?: keyof typeof GRID_PAD; alignCorners?: boolean } = {},
): Tensor {
  return new Tensor(torch.gridSample(x.id, grid.id, GRID_MODE[o.mode ?? "bilinear"], GRID_PAD[o.paddingMode ?? "zeros"], o.alignCorners ?? false));
}

/** Zero (or constant) padding; pads = [left, right, top, bottom, ...] from the last dim backwards. */
export const pad = (x: Tensor, pads: number[], value = 0): Tensor => new Tensor(torch.constantPad(x.id, pads, value));

/** int64 class indices (N) -> (N, classes) int64 one-hot rows. */
export const oneHot = (t: Tensor, classes: number): Tensor => new Tensor(torch.oneHot(t.id, classes));
