// Crop + resize of 8-bit RGB pixels, bit-exact with Pillow's BILINEAR resize (Pillow src/libImaging/Resample.c),
// which is what torchvision's RandomResizedCrop does to the PIL images of SwAV's and SEER's data loaders:
// F.resized_crop = img.crop(box).resize(size, BILINEAR).
//
// Pillow's algorithm: a separable convolution with the triangle filter stretched by the downscale factor (so it
// antialiases when shrinking), coefficients normalized per output pixel, rounded to 22-bit fixed point; horizontal
// pass first into an 8-bit intermediate (rows limited to those the vertical pass reads), then vertical; each pass
// rounds and clips to 0..255. The same integer arithmetic here (sums stay below 2^31), so the results match Pillow
// to the bit. The intermediate is kept as planes, which also makes the planar output ("chw") free.
// Pure JS: it runs in the decode worker threads, where it is several times cheaper than a libvips pipeline per crop.
import type { CropBox } from "./multicrop";

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

/** Per output pixel: first input pixel, tap count, and fixed-point weights (ksize apart). */
interface Coefficients {
  ksize: number;
  start: Int32Array;
  count: Int32Array;
  weights: Int32Array;
}

const bilinear = (x: number): number => {
  const a = Math.abs(x);
  return a < 1 ? 1 - a : 0;
};

/** Pillow precompute_coeffs + normalize_coeffs_8bpc for input [in0, in1) of inSize pixels → outSize pixels. */
function coefficients(inSize: number, in0: number, in1: number, outSize: number): Coefficients {
  const scale = (in1 - in0) / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1 * filterscale; // bilinear support is 1
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const pre = new Float64Array(ksize);
  const fixed = new Int32Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bilinear((x + xmin - center + 0.5) * ss);
      pre[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? pre[x]! / ww : pre[x]!;
      fixed[x] = k < 0 ? Math.trunc(-0.5 + k * ONE) : Math.trunc(0.5 + k * ONE);
    }
    // Taps whose weight rounds to 0 add nothing: drop them from both ends.
    let a = 0;
    let b = xmax;
    while (a < b && fixed[a] === 0) a++;
    while (b > a && fixed[b - 1] === 0) b--;
    for (let x = a; x < b; x++) weights[xx * ksize + x - a] = fixed[x]!;
    start[xx] = xmin + a;
    count[xx] = b - a;
  }
  return { ksize, start, count, weights };
}

// Scratch buffer reused across calls (the function is synchronous, and each thread has its own module instance).
let tempScratch = new Uint8Array(0);

function scratchBytes(n: number): Uint8Array {
  if (tempScratch.length < n) tempScratch = new Uint8Array(Math.max(n, 2 * tempScratch.length));
  return tempScratch;
}

function clip8(ss: number): number {
  if (ss >= ONE * 256) return 255;
  if (ss <= 0) return 0;
  return ss >> PRECISION_BITS;
}

/** Pixel layouts of a crop: interleaved (H, W, 3), or planar (3, H, W) as a tensor's channels. */
export type PixelLayout = "hwc" | "chw";

/**
 * Resizes `box` of an (H, W, 3) uint8 image `src` of width `srcWidth` to outHeight x outWidth into `dst` at
 * `dstOffset`, as Pillow's `img.crop(box).resize((outWidth, outHeight), Image.BILINEAR)`; the output is (H, W, 3),
 * or (3, H, W) planes with layout "chw".
 */
export function resizedCropBilinear(
  src: Uint8Array,
  srcWidth: number,
  box: CropBox,
  outWidth: number,
  outHeight: number,
  dst: Uint8Array,
  dstOffset: number,
  layout: PixelLayout = "hwc",
): void {
  const { top, left, width: w, height: h } = box;
  const needH = outWidth !== w;
  const needV = outHeight !== h;
  const vert = needV ? coefficients(h, 0, h, outHeight) : undefined;

  // Horizontal pass over the rows the vertical pass reads, into 8-bit planes (3, rows, tw): Pillow's imTemp.
  const first = vert ? vert.start[0]! : 0;
  const last = vert ? vert.start[outHeight - 1]! + vert.count[outHeight - 1]! : h;
  const rows = last - first;
  const tw = needH ? outWidth : w;
  const plane = rows * tw;
  const temp = scratchBytes(3 * plane);
  if (needH) {
    const { ksize, start, count, weights } = coefficients(w, 0, w, outWidth);
    for (let y = 0; y < rows; y++) {
      const rowBase = ((top + first + y) * srcWidth + left) * 3;
      const o = y * tw;
      for (let xx = 0; xx < outWidth; xx++) {
        const n = count[xx]!;
        const kb = xx * ksize;
        let p = rowBase + start[xx]! * 3;
        let s0 = HALF;
        let s1 = HALF;
        let s2 = HALF;
        if (n === 2) {
          // Enlarging: two taps (the common case for crops of small images).
          const k0 = weights[kb]!;
          const k1 = weights[kb + 1]!;
          s0 = (s0 + Math.imul(src[p]!, k0) + Math.imul(src[p + 3]!, k1)) | 0;
          s1 = (s1 + Math.imul(src[p + 1]!, k0) + Math.imul(src[p + 4]!, k1)) | 0;
          s2 = (s2 + Math.imul(src[p + 2]!, k0) + Math.imul(src[p + 5]!, k1)) | 0;
        } else {
          for (let x = 0; x < n; x++, p += 3) {
            const k = weights[kb + x]!;
            s0 = (s0 + Math.imul(src[p]!, k)) | 0;
            s1 = (s1 + Math.imul(src[p + 1]!, k)) | 0;
            s2 = (s2 + Math.imul(src[p + 2]!, k)) | 0;
          }
        }
        temp[o + xx] = clip8(s0);
        temp[plane + o + xx] = clip8(s1);
        temp[2 * plane + o + xx] = clip8(s2);
      }
    }
  } else {
    for (let y = 0; y < rows; y++) {
      let p = ((top + first + y) * srcWidth + left) * 3;
      const o = y * tw;
      for (let x = 0; x < w; x++, p += 3) {
        temp[o + x] = src[p]!;
        temp[plane + o + x] = src[p + 1]!;
        temp[2 * plane + o + x] = src[p + 2]!;
      }
    }
  }

  // Vertical pass, channel by channel, row by row; exact integer sums in any order.
  const outPlane = outWidth * outHeight;
  const chw = layout === "chw";
  for (let c = 0; c < 3; c++) {
    const cBase = c * plane;
    for (let yy = 0; yy < outHeight; yy++) {
      const o = chw ? dstOffset + c * outPlane + yy * outWidth : dstOffset + yy * outWidth * 3 + c;
      const step = chw ? 1 : 3;
      if (vert === undefined) {
        const b = cBase + yy * tw;
        for (let x = 0; x < outWidth; x++) dst[o + x * step] = temp[b + x]!;
        continue;
      }
      const n = vert.count[yy]!;
      const kb = yy * vert.ksize;
      const b0 = cBase + (vert.start[yy]! - first) * tw;
      if (n === 2) {
        const k0 = vert.weights[kb]!;
        const k1 = vert.weights[kb + 1]!;
        const b1 = b0 + tw;
        for (let x = 0; x < outWidth; x++) dst[o + x * step] = clip8((HALF + Math.imul(temp[b0 + x]!, k0) + Math.imul(temp[b1 + x]!, k1)) | 0);
      } else {
        for (let x = 0; x < outWidth; x++) {
          let ss = HALF;
          for (let t = 0; t < n; t++) ss = (ss + Math.imul(temp[b0 + t * tw + x]!, vert.weights[kb + t]!)) | 0;
          dst[o + x * step] = clip8(ss);
        }
      }
    }
  }
}
