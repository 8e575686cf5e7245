// Photometric augmentations as batched tensor ops on the model's device, with per-crop random parameters.
//
// Each op is the batched twin of torchvision.transforms.functional (v0.14, functional_tensor.py) on float images in
// [0, 1]: rgb_to_grayscale (weights 0.2989, 0.587, 0.114), adjust_brightness / adjust_contrast / adjust_saturation
// (`_blend` then clamp to [0, 1]), adjust_hue (RGB → HSV, shift, HSV → RGB), gaussian_blur (reflect padding,
// normalized Gaussian kernel), solarize, hflip and normalize. Where torchvision takes one factor, these take one per
// image (a (n) vector). tests/oracle/multicrop.py checks them against torchvision on the same tensors.
//
// `applyPhotometric_` runs SwAV's per-crop chain (flip → ColorJitter in a per-crop random order → grayscale → blur
// → solarize → normalize) on a whole resolution group at once: each op runs on the subset of rows that draw it
// (gathered with index_select, written back row by row). How it differs from torchvision's PIL path: the ops run
// on float values, so there is no rounding to 8 bits between them.
//
// NOTE: on CPU the subsets are processed at most `maxRowsPerCall` rows at a time. With glibc's malloc, buffers above
// the mmap threshold come back as fresh pages on every allocation, and first-touch page faults can cost more than
// the arithmetic (we measured 15 µs per 4 KiB page in a sandboxed VM); small calls keep temporaries in reused heap.
import { conv2d, pad } from "../nn/functional";
import { emptyLike, tensor, tidy, where, type Device, type Tensor } from "../tensor";
import { JITTER_OPS, blurKernelSize, type MultiCropConfig, type PhotometricParams } from "./multicrop";

/** torchvision's rgb_to_grayscale weights for tensors (ITU-R 601-2 luma; PIL uses 0.299 and integer math). */
export const GRAY_WEIGHTS: readonly [number, number, number] = Object.freeze([0.2989, 0.587, 0.114] as const);

/** Per-image values as an (n, 1, 1, 1) float32 tensor on `device`, to broadcast over (n, C, H, W). */
export function perImage(values: ArrayLike<number>, device: Device): Tensor {
  return tensor(Float32Array.from(values), { shape: [values.length, 1, 1, 1], device });
}

function checkImages(x: Tensor, what: string): [number, number, number, number] {
  const s = x.shape;
  if (s.length !== 4 || s[1] !== 3) throw new Error(`${what}: expected images (n, 3, H, W) but received shape [${s.join(", ")}]`);
  return s as [number, number, number, number];
}

function checkCount(values: ArrayLike<number>, n: number, what: string): void {
  if (values.length !== n) throw new Error(`${what}: expected ${n} per-image values but received ${values.length}`);
}

/** (n, 3, H, W) → (n, 1, H, W) luma. */
export function rgbToGrayscale(x: Tensor): Tensor {
  checkImages(x, "rgbToGrayscale");
  return tidy(() => {
    const [r, g, b] = x.split(1, 1); // (n, 1, H, W) views
    return r.mul(GRAY_WEIGHTS[0]).add_(g, GRAY_WEIGHTS[1]).add_(b, GRAY_WEIGHTS[2]);
  });
}

/** clamp(f * x, 0, 1) per image: torchvision adjust_brightness. */
export function adjustBrightness(x: Tensor, factors: ArrayLike<number>): Tensor {
  const [n] = checkImages(x, "adjustBrightness");
  checkCount(factors, n, "adjustBrightness");
  return tidy(() => x.mul(perImage(factors, x.device)).clamp_(0, 1));
}

/** clamp(f * x + (1 - f) * mean(gray(x)), 0, 1) per image: torchvision adjust_contrast. */
export function adjustContrast(x: Tensor, factors: ArrayLike<number>): Tensor {
  const [n] = checkImages(x, "adjustContrast");
  checkCount(factors, n, "adjustContrast");
  return tidy(() => {
    const w = tensor([[GRAY_WEIGHTS[0]], [GRAY_WEIGHTS[1]], [GRAY_WEIGHTS[2]]], { device: x.device }); // (3, 1)
    const mean = x.mean([2, 3]).matmul(w).view(n, 1, 1, 1); // (n, 1, 1, 1): the mean of the grayscale image
    const rest = Array.from(factors, (f) => 1 - f);
    return x.mul(perImage(factors, x.device)).add_(mean.mul(perImage(rest, x.device))).clamp_(0, 1);
  });
}

/** clamp(f * x + (1 - f) * gray(x), 0, 1) per image: torchvision adjust_saturation. */
export function adjustSaturation(x: Tensor, factors: ArrayLike<number>): Tensor {
  const [n] = checkImages(x, "adjustSaturation");
  checkCount(factors, n, "adjustSaturation");
  return tidy(() => {
    const rest = Array.from(factors, (f) => 1 - f);
    const gray = rgbToGrayscale(x).mul_(perImage(rest, x.device)); // (n, 1, H, W)
    return x.mul(perImage(factors, x.device)).add_(gray).clamp_(0, 1);
  });
}

/**
 * Rotates hue by `shifts` turns (in [-0.5, 0.5]) per image, keeping HSV saturation and value: torchvision
 * adjust_hue. Same HSV hexagon as torchvision's _rgb2hsv/_hsv2rgb, written without its six-way masks: with
 * M = max(r, g, b), c = M - min(r, g, b) and h6 the hue in sixths of a turn, channel n (5 for R, 3 for G, 1 for B)
 * is M - c * clamp(min(k, 4 - k), 0, 1) with k = (n + h6) mod 6 (the usual closed form of HSV → RGB).
 */
export function adjustHue(x: Tensor, shifts: ArrayLike<number>): Tensor {
  const [n] = checkImages(x, "adjustHue");
  checkCount(shifts, n, "adjustHue");
  return tidy(() => {
    const [r, g, b] = x.split(1, 1); // (n, 1, H, W) views
    const M = r.maximum(g).maximum(b); // value
    const c = M.sub(r.minimum(g).minimum(b)); // chroma
    const cd = c.clampMin(1e-30); // c = 0 means gray: any hue works, the output is M
    // torchvision's priority: red if it is the max, else green, else blue. Masks as 0/1 floats.
    // Selecting with 0/1 products is exact: h * 1 = h and h * 0 = 0 for finite h.
    const isR = M.eq(r).to("float32");
    const isG = M.eq(g).to("float32");
    const hB = r.sub(g).div_(cd).add_(4); // hue (in sixths) when blue is the max
    const hG = b.sub(r).div_(cd).add_(2); // ... green
    const hR = g.sub(b).div_(cd); // ... red
    const h6 = hB.mul_(isG.rsub(1)).addcmul_(hG, isG); // green, else blue
    h6.mul_(isR.rsub(1)).addcmul_(hR, isR); // red overrides both
    h6.add_(perImage(Array.from(shifts, (s) => 6 * s), x.device)); // in [-4, 8)
    h6.sub_(h6.div(6).floor().mul_(6)); // mod 6: the shifted hue in [0, 6)
    // clamp(min(k, 4 - k), 0, 1) at k = (n + h6) mod 6, unrolled per channel over h6 in [0, 6):
    const f = [
      h6.sub(1).minimum(h6.rsub(5)), // R (n = 5)
      h6.rsub(1).maximum(h6.sub(3)), // G (n = 3)
      h6.rsub(3).maximum(h6.sub(5)), // B (n = 1)
    ];
    const out = emptyLike(x);
    f.forEach((fc, ch) => out.narrow(1, ch, 1).copy_(M).sub_(fc.clamp_(0, 1).mul_(c)));
    return out;
  });
}

/** Where an index of a padded axis reads from, with reflect padding (no edge repeat), as torch's "reflect". */
function reflectIndex(i: number, size: number): number {
  if (size === 1) return 0;
  const period = 2 * (size - 1);
  let m = ((i % period) + period) % period;
  if (m >= size) m = period - m;
  return m;
}

/** torchvision _get_gaussian_kernel1d: exp(-x^2 / (2 sigma^2)) at x = -r..r, normalized; float32. */
export function gaussianKernel1d(kernelSize: number, sigma: number): Float32Array {
  const half = (kernelSize - 1) / 2;
  const k = new Float32Array(kernelSize);
  let sum = 0;
  for (let i = 0; i < kernelSize; i++) {
    const x = Math.fround(-half + i);
    const v = Math.fround(Math.exp(Math.fround(-0.5 * Math.fround(Math.fround(x / sigma) ** 2))));
    k[i] = v;
    sum += v;
  }
  for (let i = 0; i < kernelSize; i++) k[i] = k[i]! / Math.fround(sum);
  return k;
}

/** Kernel taps lighter than this (relative to the kernel's sum) are skipped: together they move no value by 1e-8. */
const NEGLIGIBLE_TAP = 2 ** -32;

/**
 * Gaussian blur with one sigma per image and a shared odd kernel size: torchvision gaussian_blur (reflect padding),
 * computed as two depthwise convolutions (the 2-d kernel is the outer product of the 1-d ones). Taps that weigh
 * less than 2^-32 of the kernel in every image are left out (for sigma 0.5 a 23-tap kernel has 7 that matter), so
 * small sigmas cost less; the weights keep torchvision's normalization over the full kernel. (n, C, H, W) → same.
 */
export function gaussianBlur(x: Tensor, sigmas: ArrayLike<number>, kernelSize: number): Tensor {
  const [n, C, H, W] = checkImages(x, "gaussianBlur");
  checkCount(sigmas, n, "gaussianBlur");
  if (!Number.isInteger(kernelSize) || kernelSize < 1 || kernelSize % 2 === 0) {
    throw new Error(`Expected odd positive integer for kernelSize but received ${kernelSize}`);
  }
  const half = (kernelSize - 1) / 2;
  const kernels = Array.from(sigmas, (s) => gaussianKernel1d(kernelSize, s));
  let r = 0; // taps kept on each side of the centre
  for (const k of kernels) while (r < half && k[half + r + 1]! >= NEGLIGIBLE_TAP) r++;
  if (r === 0) return x.clone(); // every kernel is a delta at float32 precision
  const k = 2 * r + 1;
  return tidy(() => {
    const weights = new Float32Array(n * C * k); // (n*C, k): each image's kernel, once per channel
    kernels.forEach((k1, i) => {
      for (let ch = 0; ch < C; ch++) weights.set(k1.subarray(half - r, half + r + 1), (i * C + ch) * k);
    });
    const device = x.device;
    const wv = tensor(weights, { shape: [n * C, 1, k, 1], device });
    const wh = wv.view(n * C, 1, 1, k);
    const planes = x.reshape(1, n * C, H, W); // one group per (image, channel)
    const v = conv2d(reflectPad(planes, 2, r), wv, null, { groups: n * C }); // (1, nC, H, W): blurred down columns
    return conv2d(reflectPad(v, 3, r), wh, null, { groups: n * C }).view(n, C, H, W); // ... and along rows
  });
}

/** Reflect padding by r on both sides of dim 2 or 3 of a 4-d tensor (torch's "reflect": the edge is not repeated). */
export function reflectPad(x: Tensor, dim: 2 | 3, r: number): Tensor {
  const size = x.size(dim);
  if (dim === 2 || r >= size) {
    // A row gather is fast, and handles several bounces.
    const from = Array.from({ length: size + 2 * r }, (_, i) => reflectIndex(i - r, size));
    return tidy(() => x.indexSelect(dim, tensor(from, { dtype: "int64", device: x.device })));
  }
  // NOTE: along the last dim, a zero pad with its borders overwritten is ~25x faster than index_select on CPU.
  return tidy(() => {
    const p = pad(x, dim === 3 ? [r, r, 0, 0] : [0, 0, r, r]);
    p.narrow(dim, 0, r).copy_(x.narrow(dim, 1, r).flip(dim));
    p.narrow(dim, size + r, r).copy_(x.narrow(dim, size - 1 - r, r).flip(dim));
    return p;
  });
}

/** Pixels >= threshold become 1 - pixel: torchvision solarize on [0, 1] floats. */
export function solarize(x: Tensor, threshold: number): Tensor {
  return tidy(() => where(x.ge(threshold), x.rsub(1), x));
}

/** Mirror left-right: torchvision hflip. */
export const hflip = (x: Tensor): Tensor => x.flip(3);

/** (x - mean) / std per channel, in place: torchvision normalize on (n, 3, H, W). */
export function normalize_(x: Tensor, mean: readonly number[], std: readonly number[]): Tensor {
  checkImages(x, "normalize_");
  tidy(() => {
    const m = tensor(Float32Array.from(mean), { shape: [1, 3, 1, 1], device: x.device });
    const s = tensor(Float32Array.from(std), { shape: [1, 3, 1, 1], device: x.device });
    x.sub_(m).div_(s);
  });
  return x;
}

/**
 * uint8 crops → x (N, 3, S, S) float in [0, 1], in place: torchvision ToTensor. The crops are (N, 3, S, S) planes,
 * or (N, S, S, 3) interleaved pixels with layout "nhwc".
 */
export function fromUint8_(x: Tensor, crops: Tensor, layout: "nchw" | "nhwc" = "nchw"): Tensor {
  tidy(() => {
    x.copy_(layout === "nhwc" ? crops.permute(0, 3, 1, 2) : crops);
  });
  return x.div_(255);
}

// ---------------------------------------------------------------------------------------------------------------
// The per-crop chain on a whole resolution group

export interface PhotometricOptions {
  /**
   * Largest subset one op call processes (see the NOTE at the top). Default on CPU: about 2^18 floats per call
   * (2^20 for the blur); on other devices, all rows at once.
   */
  maxRowsPerCall?: number;
}

/**
 * Runs `fn` on the rows `rows` of x (n, C, H, W) and writes its result (same shape as its input) back into those
 * rows. A run of consecutive rows is a view, written back with one copy; other subsets are gathered.
 */
export function applyToRows(
  x: Tensor,
  rows: readonly number[],
  maxRows: number,
  fn: (sub: Tensor, rows: readonly number[]) => Tensor,
): void {
  for (let start = 0; start < rows.length; start += maxRows) {
    const part = rows.slice(start, start + maxRows);
    tidy(() => {
      const consecutive = part.every((r, j) => r === part[0]! + j);
      if (consecutive) {
        const view = x.narrow(0, part[0]!, part.length);
        view.copy_(fn(view, part));
        return;
      }
      const sub = x.indexSelect(0, tensor(part, { dtype: "int64", device: x.device }));
      const out = fn(sub, part);
      part.forEach((r, j) => x.select(0, r).copy_(out.select(0, j)));
    });
  }
}

function rowsWhere(n: number, pred: (i: number) => boolean): number[] {
  const rows: number[] = [];
  for (let i = 0; i < n; i++) if (pred(i)) rows.push(i);
  return rows;
}

/**
 * SwAV's photometric chain, in place on x (N, 3, S, S) holding [0, 1] values, one parameter row per crop:
 * flip → jitter (the crop's own order of brightness, contrast, saturation, hue) → grayscale → blur → solarize →
 * normalize. Afterwards x holds normalized values.
 */
export function applyPhotometric_(
  x: Tensor,
  p: PhotometricParams,
  c: MultiCropConfig,
  o: PhotometricOptions = {},
): Tensor {
  const [N, , S] = checkImages(x, "applyPhotometric_");
  if (p.n !== N) throw new Error(`applyPhotometric_: ${p.n} parameter rows for ${N} crops`);
  const rowsFor = (floats: number): number =>
    o.maxRowsPerCall ?? (x.device === "cpu" ? Math.max(1, Math.floor(floats / (3 * S * S))) : N);
  const maxRows = rowsFor(2 ** 18);
  const blurRows = rowsFor(2 ** 20); // convolutions amortize their per-call cost over more rows
  const value = (rows: readonly number[], col: number): number[] => rows.map((r) => p.factors[4 * r + col]!);

  applyToRows(x, rowsWhere(N, (i) => p.flip[i] === 1), maxRows, hflip);

  const jitterOps: ((sub: Tensor, rows: readonly number[]) => Tensor)[] = [
    (sub, rows) => adjustBrightness(sub, value(rows, 0)),
    (sub, rows) => adjustContrast(sub, value(rows, 1)),
    (sub, rows) => adjustSaturation(sub, value(rows, 2)),
    (sub, rows) => adjustHue(sub, value(rows, 3)),
  ];
  const enabled = [c.colorJitter.brightness > 0, c.colorJitter.contrast > 0, c.colorJitter.saturation > 0, c.colorJitter.hue > 0];
  for (let step = 0; step < JITTER_OPS.length; step++) {
    for (let op = 0; op < JITTER_OPS.length; op++) {
      if (!enabled[op]) continue;
      const rows = rowsWhere(N, (i) => p.jitter[i] === 1 && p.order[4 * i + step] === op);
      applyToRows(x, rows, maxRows, jitterOps[op]!);
    }
  }

  applyToRows(x, rowsWhere(N, (i) => p.grayscale[i] === 1), maxRows, (sub) => rgbToGrayscale(sub).expand(sub.size(0), 3, S, S));
  const k = blurKernelSize(S, c.blur.kernelFraction);
  // Rows sorted by sigma: each call's kernel is as short as its largest sigma allows.
  const blurred = rowsWhere(N, (i) => p.blur[i] === 1).sort((a, b) => p.sigma[a]! - p.sigma[b]!);
  if (k > 1) applyToRows(x, blurred, blurRows, (sub, rows) => gaussianBlur(sub, rows.map((r) => p.sigma[r]!), k));
  applyToRows(x, rowsWhere(N, (i) => p.solarize[i] === 1), maxRows, (sub) => solarize(sub, c.solarize.threshold));
  return normalize_(x, c.mean, c.std);
}
