// Multi-crop augmentation as SwAV and SEER use it: the typed configuration, its presets, and the per-crop random
// parameters. Pure JS (no tensors), so decode workers import it too.
//
// SwAV (Caron et al. 2020, arXiv 2006.09882; facebookresearch/swav src/multicropdataset.py) and SEER (Goyal et al.
// 2021, arXiv 2103.01988; VISSL configs/config/pretrain/swav/transforms/multicrop_6crop_2x224_4x96.yaml) take, per
// image, several RandomResizedCrops per resolution, each resolution with its own area range, then per crop:
// horizontal flip (p 0.5) → ColorJitter(0.8s, 0.8s, 0.8s, 0.2s) with p 0.8 in random order → grayscale (p 0.2) →
// Gaussian blur (p 0.5, sigma U(0.1, 2.0)) → ToTensor → Normalize(ImageNet mean/std). SimCLR's two-view recipe
// (Chen et al. 2020, arXiv 2002.05709, Appendix A; google-research/simclr data_util.py) is the same chain with two
// 224 crops of area (0.08, 1) and a blur kernel of 10% of the image side; it is a preset here.
//
// Random parameters follow torchvision (v0.14 transforms.py): RandomResizedCrop.get_params with its 10 attempts and
// center-crop fallback, ColorJitter.get_params (a random order of the four ops, factors uniform in
// [max(0, 1 - v), 1 + v], hue in [-h, h]), GaussianBlur.get_params (sigma uniform). They are drawn with rng.ts from
// keys such as (seed, epoch, image index), not from torch's global generator, so they do not depend on timing.
//
// Differences from the references, on purpose:
// - the blur is torchvision's tensor GaussianBlur (reflect padding, kernel 2*floor(0.1*size/2)+1 as in SimCLR), not
//   SwAV's PIL ImageFilter.GaussianBlur(radius=sigma);
// - std is VISSL's [0.229, 0.224, 0.225] (the SwAV repository has 0.228 for red);
// - crops are resized by a JS port of Pillow's BILINEAR (bit-exact), or optionally by libvips through sharp.
import { Rng } from "./rng";

// ---------------------------------------------------------------------------------------------------------------
// Configuration

/** One resolution: `count` square crops of `size` pixels per image. */
export interface CropGroup {
  /** Crops of this resolution per image. */
  readonly count: number;
  /** Output side in pixels. */
  readonly size: number;
  /** RandomResizedCrop area range, as fractions of the image area. */
  readonly scale: readonly [number, number];
  /** RandomResizedCrop aspect-ratio range (width / height). */
  readonly ratio: readonly [number, number];
}

/** torchvision ColorJitter applied with probability `prob` (RandomApply). */
export interface ColorJitterConfig {
  /** Probability that a crop is jittered at all. */
  readonly prob: number;
  /** Brightness factor drawn from [max(0, 1 - v), 1 + v]; 0 leaves brightness alone. */
  readonly brightness: number;
  /** Contrast factor drawn from [max(0, 1 - v), 1 + v]. */
  readonly contrast: number;
  /** Saturation factor drawn from [max(0, 1 - v), 1 + v]. */
  readonly saturation: number;
  /** Hue shift drawn from [-v, v], in turns of the colour wheel; v <= 0.5. */
  readonly hue: number;
}

/** torchvision GaussianBlur applied with probability `prob`. */
export interface BlurConfig {
  readonly prob: number;
  /** Sigma range in pixels of the output crop; sigma is uniform in it. */
  readonly sigma: readonly [number, number];
  /** Kernel side as a fraction of the crop side: k = 2 * floor(floor(fraction * size) / 2) + 1 (SimCLR). */
  readonly kernelFraction: number;
}

/** torchvision RandomSolarize: pixels >= threshold become 1 - pixel (on [0, 1] values). */
export interface SolarizeConfig {
  readonly prob: number;
  readonly threshold: number;
}

/**
 * How crops are resized: "pil-bilinear" is Pillow's BILINEAR, bit-exact, in JS (resample.ts; what torchvision does
 * to PIL images); the others are libvips kernels run by sharp (extract + resize).
 */
export type ResizeKernel = "pil-bilinear" | "nearest" | "linear" | "cubic" | "mitchell" | "lanczos2" | "lanczos3";

/** Every parameter of the multi-crop augmentation. */
export interface MultiCropConfig {
  /** Resolutions, in output order (SwAV: the large crops first; crops_for_assign index into this order). */
  readonly crops: readonly CropGroup[];
  /** Horizontal flip probability. */
  readonly flipProb: number;
  readonly colorJitter: ColorJitterConfig;
  /** Probability of converting a crop to grayscale (3 equal channels). */
  readonly grayscaleProb: number;
  readonly blur: BlurConfig;
  readonly solarize: SolarizeConfig;
  /** Per-channel normalization (RGB) applied last: (x - mean) / std on [0, 1] values. */
  readonly mean: readonly [number, number, number];
  readonly std: readonly [number, number, number];
  /** Kernel for the crop resize at decode time. */
  readonly resizeKernel: ResizeKernel;
}

/** torchvision RandomResizedCrop's default aspect ratios. */
export const DEFAULT_RATIO: readonly [number, number] = Object.freeze([3 / 4, 4 / 3] as const);
export const IMAGENET_MEAN: readonly [number, number, number] = Object.freeze([0.485, 0.456, 0.406] as const);
export const IMAGENET_STD: readonly [number, number, number] = Object.freeze([0.229, 0.224, 0.225] as const);

/** SimCLR's colour distortion of strength s: ColorJitter(0.8s, 0.8s, 0.8s, 0.2s) with probability `prob`. */
export function colorJitterOfStrength(s: number, prob = 0.8): ColorJitterConfig {
  return Object.freeze({ prob, brightness: 0.8 * s, contrast: 0.8 * s, saturation: 0.8 * s, hue: 0.2 * s });
}

function freezeConfig(c: MultiCropConfig): MultiCropConfig {
  return Object.freeze({
    ...c,
    crops: Object.freeze(c.crops.map((g) => Object.freeze({ ...g, scale: Object.freeze([...g.scale]), ratio: Object.freeze([...g.ratio]) }))),
    colorJitter: Object.freeze({ ...c.colorJitter }),
    blur: Object.freeze({ ...c.blur, sigma: Object.freeze([...c.blur.sigma]) }),
    solarize: Object.freeze({ ...c.solarize }),
    mean: Object.freeze([...c.mean]),
    std: Object.freeze([...c.std]),
  }) as MultiCropConfig;
}

/** SEER (and VISSL's multicrop_6crop_2x224_4x96): 2x224 at area (0.14, 1) + 4x96 at (0.05, 0.14), strength 1. */
export const SEER_MULTICROP: MultiCropConfig = freezeConfig({
  crops: [
    { count: 2, size: 224, scale: [0.14, 1], ratio: DEFAULT_RATIO },
    { count: 4, size: 96, scale: [0.05, 0.14], ratio: DEFAULT_RATIO },
  ] as CropGroup[],
  flipProb: 0.5,
  colorJitter: colorJitterOfStrength(1.0, 0.8),
  grayscaleProb: 0.2,
  blur: { prob: 0.5, sigma: [0.1, 2.0], kernelFraction: 0.1 },
  solarize: { prob: 0, threshold: 0.5 },
  mean: IMAGENET_MEAN,
  std: IMAGENET_STD,
  resizeKernel: "pil-bilinear",
});

/** SwAV's main ImageNet setting (swav_800ep_pretrain.sh): 2x224 + 6x96, otherwise as SEER. */
export const SWAV_MULTICROP: MultiCropConfig = freezeConfig({
  ...SEER_MULTICROP,
  crops: [
    { count: 2, size: 224, scale: [0.14, 1], ratio: DEFAULT_RATIO },
    { count: 6, size: 96, scale: [0.05, 0.14], ratio: DEFAULT_RATIO },
  ],
});

/** SimCLR's two views: 2x224 at area (0.08, 1), colour strength 1.0, blur p 0.5 with a 10% kernel. */
export const SIMCLR_TWO_VIEW: MultiCropConfig = freezeConfig({
  ...SEER_MULTICROP,
  crops: [{ count: 2, size: 224, scale: [0.08, 1], ratio: DEFAULT_RATIO }],
});

export const MULTICROP_PRESETS: Readonly<Record<"seer" | "swav" | "simclr", MultiCropConfig>> = Object.freeze({
  seer: SEER_MULTICROP,
  swav: SWAV_MULTICROP,
  simclr: SIMCLR_TWO_VIEW,
});

/** Overrides of a configuration: any subset of keys, nested objects merged key by key. */
export interface MultiCropOverrides {
  crops?: readonly CropGroupInput[] | string;
  flipProb?: number;
  colorJitter?: Partial<ColorJitterConfig>;
  grayscaleProb?: number;
  blur?: Partial<BlurConfig>;
  solarize?: Partial<SolarizeConfig>;
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
  resizeKernel?: ResizeKernel;
}

/** A crop group as written by hand: the ratio defaults to [3/4, 4/3]. */
export interface CropGroupInput {
  count: number;
  size: number;
  scale: readonly [number, number];
  ratio?: readonly [number, number];
}

const TOP_KEYS = ["crops", "flipProb", "colorJitter", "grayscaleProb", "blur", "solarize", "mean", "std", "resizeKernel"];
const NESTED_KEYS: Record<string, readonly string[]> = {
  colorJitter: ["prob", "brightness", "contrast", "saturation", "hue"],
  blur: ["prob", "sigma", "kernelFraction"],
  solarize: ["prob", "threshold"],
};
const GROUP_KEYS = ["count", "size", "scale", "ratio"];
const KERNELS: readonly ResizeKernel[] = ["pil-bilinear", "nearest", "linear", "cubic", "mitchell", "lanczos2", "lanczos3"];

function checkKeys(obj: object, known: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) throw new Error(`${where}: unknown key "${k}" (known: ${known.join(", ")})`);
  }
}

/**
 * A validated, frozen configuration: `base` (default SEER) with `overrides` applied. Unknown keys, wrong types and
 * out-of-range values are errors that name the key. `crops` may be a spec string such as "2x224+4x96".
 */
export function multiCropConfig(overrides: MultiCropOverrides = {}, base: MultiCropConfig = SEER_MULTICROP): MultiCropConfig {
  checkKeys(overrides, TOP_KEYS, "multiCropConfig");
  for (const [k, keys] of Object.entries(NESTED_KEYS)) {
    const v = (overrides as Record<string, unknown>)[k];
    if (v !== undefined) {
      if (typeof v !== "object" || v === null) throw new Error(`multiCropConfig: expected an object for ${k} but received ${String(v)}`);
      checkKeys(v, keys, `multiCropConfig.${k}`);
    }
  }
  let crops: readonly CropGroup[] = base.crops;
  if (typeof overrides.crops === "string") crops = parseCropSpec(overrides.crops);
  else if (overrides.crops !== undefined) {
    crops = overrides.crops.map((g, i) => {
      checkKeys(g, GROUP_KEYS, `multiCropConfig.crops[${i}]`);
      return { count: g.count, size: g.size, scale: g.scale, ratio: g.ratio ?? DEFAULT_RATIO };
    });
  }
  const config: MultiCropConfig = {
    crops,
    flipProb: overrides.flipProb ?? base.flipProb,
    colorJitter: { ...base.colorJitter, ...overrides.colorJitter },
    grayscaleProb: overrides.grayscaleProb ?? base.grayscaleProb,
    blur: { ...base.blur, ...overrides.blur },
    solarize: { ...base.solarize, ...overrides.solarize },
    mean: overrides.mean ?? base.mean,
    std: overrides.std ?? base.std,
    resizeKernel: overrides.resizeKernel ?? base.resizeKernel,
  };
  validateConfig(config);
  return freezeConfig(config);
}

function expectNumber(v: unknown, name: string, lo: number, hi: number, integer = false): void {
  const ok = typeof v === "number" && Number.isFinite(v) && v >= lo && v <= hi && (!integer || Number.isInteger(v));
  if (!ok) throw new Error(`Expected ${integer ? "integer" : "number"} in [${lo}, ${hi}] for ${name} but received ${String(v)}`);
}

function expectRange(v: unknown, name: string, lo: number, hi: number, strictLo: boolean): void {
  const inRange = (x: unknown): boolean => typeof x === "number" && Number.isFinite(x) && x <= hi && (strictLo ? x > lo : x >= lo);
  const ok = Array.isArray(v) && v.length === 2 && v.every(inRange) && v[0] <= v[1];
  if (!ok) throw new Error(`Expected [min, max] with ${lo} ${strictLo ? "<" : "<="} min <= max <= ${hi} for ${name} but received ${JSON.stringify(v)}`);
}

/** Throws naming the first invalid parameter. */
export function validateConfig(c: MultiCropConfig): void {
  if (!Array.isArray(c.crops) || c.crops.length === 0) throw new Error("Expected at least one crop group for crops");
  c.crops.forEach((g, i) => {
    expectNumber(g.count, `crops[${i}].count`, 1, 1024, true);
    expectNumber(g.size, `crops[${i}].size`, 1, 16384, true);
    expectRange(g.scale, `crops[${i}].scale`, 0, 1, true);
    expectRange(g.ratio, `crops[${i}].ratio`, 0, 100, true);
  });
  expectNumber(c.flipProb, "flipProb", 0, 1);
  expectNumber(c.colorJitter.prob, "colorJitter.prob", 0, 1);
  expectNumber(c.colorJitter.brightness, "colorJitter.brightness", 0, 1e6);
  expectNumber(c.colorJitter.contrast, "colorJitter.contrast", 0, 1e6);
  expectNumber(c.colorJitter.saturation, "colorJitter.saturation", 0, 1e6);
  expectNumber(c.colorJitter.hue, "colorJitter.hue", 0, 0.5);
  expectNumber(c.grayscaleProb, "grayscaleProb", 0, 1);
  expectNumber(c.blur.prob, "blur.prob", 0, 1);
  expectRange(c.blur.sigma, "blur.sigma", 0, 1e6, true);
  expectNumber(c.blur.kernelFraction, "blur.kernelFraction", 0, 1);
  expectNumber(c.solarize.prob, "solarize.prob", 0, 1);
  expectNumber(c.solarize.threshold, "solarize.threshold", 0, 1);
  for (const [name, v] of [["mean", c.mean], ["std", c.std]] as const) {
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x))) {
      throw new Error(`Expected 3 numbers for ${name} but received ${JSON.stringify(v)}`);
    }
  }
  if (!c.std.every((x) => x > 0)) throw new Error(`Expected positive numbers for std but received ${JSON.stringify(c.std)}`);
  if (!KERNELS.includes(c.resizeKernel)) throw new Error(`Expected one of ${KERNELS.join(", ")} for resizeKernel but received ${String(c.resizeKernel)}`);
}

/**
 * Crop groups from a spec such as "2x224+4x96" (SwAV's nmb_crops/size_crops). Each term is COUNTxSIZE, optionally
 * with an area range "@MIN-MAX" ("2x224@0.14-1+4x96@0.05-0.14"); without one, the first group gets `largeScale`
 * and the others `smallScale` (SEER's (0.14, 1) and (0.05, 0.14) by default).
 */
export function parseCropSpec(
  spec: string,
  o: { largeScale?: readonly [number, number]; smallScale?: readonly [number, number] } = {},
): CropGroup[] {
  const large = o.largeScale ?? SEER_MULTICROP.crops[0]!.scale;
  const small = o.smallScale ?? SEER_MULTICROP.crops[1]!.scale;
  const terms = spec.split("+").map((t) => t.trim());
  return terms.map((term, i) => {
    const m = /^(\d+)x(\d+)(?:@([0-9.]+)-([0-9.]+))?$/.exec(term);
    if (!m) throw new Error(`parseCropSpec: expected COUNTxSIZE[@MIN-MAX] terms joined by "+" (e.g. "2x224+4x96") but received "${spec}"`);
    const scale: readonly [number, number] = m[3] !== undefined ? [Number(m[3]), Number(m[4])] : i === 0 ? large : small;
    const group: CropGroup = { count: Number(m[1]), size: Number(m[2]), scale, ratio: DEFAULT_RATIO };
    expectNumber(group.count, `crop count in "${term}"`, 1, 1024, true);
    expectNumber(group.size, `crop size in "${term}"`, 1, 16384, true);
    expectRange(group.scale, `crop scale in "${term}"`, 0, 1, true);
    return group;
  });
}

/** "2x224+4x96" for a configuration's crops. */
export function formatCropSpec(crops: readonly CropGroup[]): string {
  return crops.map((g) => `${g.count}x${g.size}`).join("+");
}

/** Crops per image over all groups. */
export const totalCrops = (c: MultiCropConfig): number => c.crops.reduce((n, g) => n + g.count, 0);

/** The blur kernel side for a crop side: odd, 2 * floor(floor(fraction * size) / 2) + 1 (SimCLR data_util.py). */
export function blurKernelSize(size: number, fraction: number): number {
  return 2 * Math.floor(Math.floor(fraction * size) / 2) + 1;
}

// ---------------------------------------------------------------------------------------------------------------
// Random parameters

/** A crop box in pixels of the decoded image. */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision RandomResizedCrop.get_params: up to 10 tries of an area fraction uniform in `scale` and a log-uniform
 * aspect ratio in `ratio`, the first box that fits wins, at a uniform position; else a center crop of the whole
 * image clamped to the ratio range.
 */
export function randomResizedCrop(
  rng: Rng,
  width: number,
  height: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
): CropBox {
  const area = width * height;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(0, height - h + 1);
      const left = rng.int(0, width - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  // Fallback to a central crop.
  const inRatio = width / height;
  let w: number;
  let h: number;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    w = width;
    h = roundHalfEven(w / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    h = height;
    w = roundHalfEven(h * Math.max(ratio[0], ratio[1]));
  } else {
    w = width;
    h = height;
  }
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** Streams of one sample's generator key: geometry is drawn in the decode path, photometry on the main thread. */
export const STREAM_GEOMETRY = 1;
export const STREAM_PHOTOMETRY = 2;

/**
 * Which generator a sample's crops come from: (seed, epoch, index, salt). `index` is the data set index (indexed
 * sources) or a hash of the record key (streams); `salt` is 0 for an image's first use in an epoch and distinct
 * otherwise (padding repeats, replacements of bad images), so no two crops of an epoch share a generator.
 */
export interface SampleKey {
  seed: number;
  epoch: number;
  index: number;
  salt: number;
}

export function sampleRng(key: SampleKey, stream: number): Rng {
  return Rng.forKey(key.seed, key.epoch, key.index, key.salt, stream);
}

/** Crop boxes of one image, group by group, crop by crop. */
export function drawCropBoxes(key: SampleKey, width: number, height: number, crops: readonly CropGroup[]): CropBox[][] {
  const rng = sampleRng(key, STREAM_GEOMETRY);
  return crops.map((g) => Array.from({ length: g.count }, () => randomResizedCrop(rng, width, height, g.scale, g.ratio)));
}

/** Jitter ops in ColorJitter's fn_idx numbering. */
export const JITTER_OPS = ["brightness", "contrast", "saturation", "hue"] as const;
export type JitterOp = (typeof JITTER_OPS)[number];

/**
 * Photometric parameters of the n crops of one resolution, one entry per crop (rows in output order). Typed arrays
 * so that a batch's parameters are a handful of allocations.
 */
export interface PhotometricParams {
  n: number;
  /** 1: flip horizontally. */
  flip: Uint8Array;
  /** 1: apply the colour jitter. */
  jitter: Uint8Array;
  /** (n, 4): the jitter ops' order, a permutation of 0..3 (JITTER_OPS). */
  order: Uint8Array;
  /** (n, 4): brightness, contrast, saturation factors and hue shift (1, 1, 1, 0 when not jittered). */
  factors: Float32Array;
  /** 1: convert to grayscale. */
  grayscale: Uint8Array;
  /** 1: blur, with sigma[i]. */
  blur: Uint8Array;
  sigma: Float32Array;
  /** 1: solarize. */
  solarize: Uint8Array;
}

export function emptyPhotometricParams(n: number): PhotometricParams {
  return {
    n,
    flip: new Uint8Array(n),
    jitter: new Uint8Array(n),
    order: new Uint8Array(4 * n).map((_, i) => i % 4),
    factors: new Float32Array(4 * n).map((_, i) => (i % 4 === 3 ? 0 : 1)),
    grayscale: new Uint8Array(n),
    blur: new Uint8Array(n),
    sigma: new Float32Array(n),
    solarize: new Uint8Array(n),
  };
}

/**
 * Draws one crop's photometric parameters into row `row` of `p`. Every value is drawn whether or not it is used,
 * so the stream's layout does not depend on the probabilities.
 */
export function drawPhotometric(rng: Rng, c: MultiCropConfig, p: PhotometricParams, row: number): void {
  const j = c.colorJitter;
  p.flip[row] = rng.bernoulli(c.flipProb) ? 1 : 0;
  const jitter = rng.bernoulli(j.prob);
  const order = rng.permutation(4);
  const b = rng.uniform(Math.max(0, 1 - j.brightness), 1 + j.brightness);
  const ct = rng.uniform(Math.max(0, 1 - j.contrast), 1 + j.contrast);
  const s = rng.uniform(Math.max(0, 1 - j.saturation), 1 + j.saturation);
  const h = rng.uniform(-j.hue, j.hue);
  p.jitter[row] = jitter ? 1 : 0;
  for (let k = 0; k < 4; k++) p.order[4 * row + k] = order[k]!;
  p.factors[4 * row] = jitter && j.brightness > 0 ? b : 1;
  p.factors[4 * row + 1] = jitter && j.contrast > 0 ? ct : 1;
  p.factors[4 * row + 2] = jitter && j.saturation > 0 ? s : 1;
  p.factors[4 * row + 3] = jitter && j.hue > 0 ? h : 0;
  p.grayscale[row] = rng.bernoulli(c.grayscaleProb) ? 1 : 0;
  p.blur[row] = rng.bernoulli(c.blur.prob) ? 1 : 0;
  p.sigma[row] = rng.uniform(c.blur.sigma[0], c.blur.sigma[1]);
  p.solarize[row] = rng.bernoulli(c.solarize.prob) ? 1 : 0;
}

/**
 * Photometric parameters of a batch in SwAV's crop-major layout: for group g, row j * B + b is crop j of image b.
 * Each image's crops are drawn from its own generator, group by group, crop by crop.
 */
export function drawBatchPhotometric(c: MultiCropConfig, keys: readonly SampleKey[]): PhotometricParams[] {
  const B = keys.length;
  const params = c.crops.map((g) => emptyPhotometricParams(g.count * B));
  keys.forEach((key, b) => {
    const rng = sampleRng(key, STREAM_PHOTOMETRY);
    c.crops.forEach((g, gi) => {
      for (let j = 0; j < g.count; j++) drawPhotometric(rng, c, params[gi]!, j * B + b);
    });
  });
  return params;
}
