// Frozen-backbone features of a labelled image source, for the evaluations (kNN, linear probe, low-shot), cached on
// disk so that every evaluation of one checkpoint on one data set decodes and forwards the images once.
//
// The eval transform is the standard one of the linear-evaluation protocols (SwAV eval_linear.py, DINO
// eval_linear.py / eval_knn.py, MoCo v3 main_lincls.py): Resize(256) → CenterCrop(224) → ToTensor → Normalize with
// the ImageNet mean/std, then the trunk in eval mode under no_grad and global average pooling
// (`backbone.forwardFeatures`). 32×32 CIFAR images are taken as they are (no resize, no crop), as solo-learn and
// Lightly do for CIFAR. What differs from torchvision: the resize is sharp's (libvips Lanczos3 with shrink-on-load)
// instead of PIL bilinear with antialias, so pixels differ slightly; the crop offsets are torchvision's exactly
// (`int(round((H - S) / 2))`, round half to even) and an image smaller than the crop is padded with zeros, as
// torchvision's CenterCrop pads.
//
// decodeLabelledImages keeps the transformed images themselves in memory instead (fine-tuning evaluates a model on
// the same test images several times, so they decode once).
//
// Bad images (unreadable, truncated, not images, ...) are skipped and counted by reason (decode.ts DecodeStats),
// never fatal: a feature set lists, for each row, the index of the record it came from.
//
// Cache: one safetensors file per (model identity, source, record list, transform, feature width), named
// `<source-slug>-<sha256 of that key, 16 hex>.safetensors` in `${CACHE_DIR}/features` (or the folder given),
// holding `features` (N, D) float32, `labels` (N) int64 and `record_indices` (N) int64, with the key itself in
// the metadata (checked on load, so a hash collision or a format change recomputes instead of returning wrong
// rows). The model identity is the caller's: `loadBackbone` (backbone.ts) gives path + size + mtime of the weights,
// or `random:<arch>` + seed for a random-init baseline. Writes are atomic (saveSafetensors).
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Progress } from "../cli/progress";
import { DecodeStats, type DecodeOptions, type DecodedImage, type Logger, type SkipReason, decodeRecord } from "../data/decode";
import { IMAGENET_MEAN, IMAGENET_STD } from "../data/multicrop";
import { type ImageRecord, type ImageSource, isIndexed } from "../data/sources";
import { loadSafetensors, readSafetensorsHeader, saveSafetensors, disposeTensors } from "../io/safetensors";
import type { Module } from "../nn/module";
import { type Device, cat, empty, noGrad, tensor, tidy, type Tensor } from "../tensor";
import { CACHE_DIR } from "../util/paths";

// ---------------------------------------------------------------------------------------------------------------
// The eval transform

export interface EvalTransform {
  /** Resize so that the short side has this many pixels (aspect ratio kept, upscaling allowed); 0: keep the decoded size. */
  resizeShortSide: number;
  /**
   * Center crop to centerCrop × centerCrop (torchvision CenterCrop offsets; zero padding where the image is smaller);
   * 0: no crop, and then every image must have the size of the first one.
   */
  centerCrop: number;
  /** Per-channel mean and std of ToTensor'd pixels (values in [0, 1]). */
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

/** Resize(256) → CenterCrop(224) → ImageNet normalization (SwAV / DINO / MoCo v3 linear eval, test side). */
export const IMAGENET_EVAL_TRANSFORM: Readonly<EvalTransform> = Object.freeze({ resizeShortSide: 256, centerCrop: 224, mean: IMAGENET_MEAN, std: IMAGENET_STD });

/** Images as decoded (CIFAR 32×32), ImageNet normalization. */
export const AS_IS_TRANSFORM: Readonly<EvalTransform> = Object.freeze({ resizeShortSide: 0, centerCrop: 0, mean: IMAGENET_MEAN, std: IMAGENET_STD });

/** The default transform for a source argument: as-is for CIFAR-10 (32×32), Resize(256) → CenterCrop(224) otherwise. */
export function defaultEvalTransform(sourceSpec: string): EvalTransform {
  return /^builtin:cifar10\//.test(sourceSpec) ? { ...AS_IS_TRANSFORM } : { ...IMAGENET_EVAL_TRANSFORM };
}

/** "resize 256, crop 224" / "as decoded" (mean/std left out: they are the ImageNet ones unless changed). */
export function describeTransform(t: EvalTransform): string {
  const parts: string[] = [];
  if (t.resizeShortSide > 0) parts.push(`resize ${t.resizeShortSide}`);
  if (t.centerCrop > 0) parts.push(`crop ${t.centerCrop}`);
  return parts.length > 0 ? parts.join(", ") : "as decoded";
}

function checkTransform(t: EvalTransform): void {
  for (const key of ["resizeShortSide", "centerCrop"] as const) {
    if (!Number.isInteger(t[key]) || t[key] < 0) throw new RangeError(`Expected a non-negative integer for ${key} but received ${t[key]}`);
  }
  if (t.mean.length !== 3 || t.std.length !== 3 || t.std.some((s) => !(s > 0))) {
    throw new RangeError(`Expected 3 means and 3 positive stds but received mean [${t.mean.join(", ")}], std [${t.std.join(", ")}]`);
  }
}

/** Python's round(): half to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Center crop of (H, W, 3) uint8 pixels to (S, S, 3), as torchvision CenterCrop: top = int(round((H - S) / 2)),
 * left = int(round((W - S) / 2)) with Python's round half to even; where the image is smaller than S it is padded
 * with zeros on both sides first (torchvision pads (S - H) // 2 on top, the rest below, which is the same offset).
 */
export function centerCropHwc(img: DecodedImage, size: number): Uint8Array {
  const out = new Uint8Array(size * size * 3); // zeros: the padding
  // Where output pixel (0, 0) sits in the image: torchvision pads a too-small side by floor((S - H) / 2) first.
  const top0 = img.height < size ? -Math.floor((size - img.height) / 2) : roundHalfEven((img.height - size) / 2);
  const left0 = img.width < size ? -Math.floor((size - img.width) / 2) : roundHalfEven((img.width - size) / 2);
  const rowBytes = img.width * 3;
  for (let y = 0; y < size; y++) {
    const sy = y + top0;
    if (sy < 0 || sy >= img.height) continue;
    const x0 = Math.max(0, -left0); // first output column with a source pixel
    const x1 = Math.min(size, img.width - left0); // one past the last
    if (x1 <= x0) continue;
    const src = sy * rowBytes + (x0 + left0) * 3;
    out.set(img.data.subarray(src, src + (x1 - x0) * 3), (y * size + x0) * 3);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Feature sets

/** What features are extracted from: a Module with timm's `forwardFeatures` (every seerkit Backbone is one). */
export interface FeatureExtractor extends Module {
  /** Width of the pooled features. */
  readonly numFeatures: number;
  /** (N, 3, H, W) → (N, numFeatures). */
  forwardFeatures(x: Tensor): Tensor;
}

/** Features of the good images of a labelled source, row i from record recordIndices[i]. Owns its tensors. */
export class FeatureSet implements Disposable {
  constructor(
    /** (N, D) float32, on the CPU. */
    readonly features: Tensor,
    /** (N) int64 class indices. */
    readonly labels: Tensor,
    /** For each row, the index of its record in the source (0-based, in the source's order). */
    readonly recordIndices: Int32Array,
    /** Class names from the source, when it has them. */
    readonly classes: readonly string[] | undefined,
    /** The source's description. */
    readonly source: string,
    /** Records met (good and bad). */
    readonly records: number,
    /** Skipped records by reason. */
    readonly skipped: Readonly<Record<SkipReason, number>>,
    /** Whether the rows came from the cache file rather than from the backbone. */
    readonly fromCache = false,
    /** The cache file, when cached. */
    readonly file?: string,
  ) {}

  /** Rows. */
  get length(): number {
    return this.recordIndices.length;
  }

  get numFeatures(): number {
    return this.features.size(1);
  }

  get totalSkipped(): number {
    return Object.values(this.skipped).reduce((a, b) => a + b, 0);
  }

  /** The labels as JS numbers. */
  labelArray(): Int32Array {
    return Int32Array.from(this.labels.toArray());
  }

  /**
   * The rows whose records are in `recordIndices` (e.g. a low-shot subset), in this set's row order; records that
   * were skipped as bad have no row and are left out. A new FeatureSet that owns copies of the rows.
   */
  selectRecords(recordIndices: Iterable<number>): FeatureSet {
    const wanted = new Set(recordIndices);
    const rows: number[] = [];
    this.recordIndices.forEach((r, i) => {
      if (wanted.has(r)) rows.push(i);
    });
    const idx = tensor(BigInt64Array.from(rows, (r) => BigInt(r)), { shape: [rows.length] }); // (n)
    try {
      const features = this.features.indexSelect(0, idx); // (n, D)
      const labels = this.labels.indexSelect(0, idx); // (n)
      const rec = Int32Array.from(rows, (i) => this.recordIndices[i]!);
      return new FeatureSet(features, labels, rec, this.classes, this.source, wanted.size, this.skipped, this.fromCache, this.file);
    } finally {
      idx.dispose();
    }
  }

  dispose(): void {
    this.features.dispose();
    this.labels.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** The number of classes two feature sets span: the class list's length, else the largest label + 1. */
export function numClassesOf(...sets: FeatureSet[]): number {
  let n = 0;
  for (const s of sets) {
    n = Math.max(n, s.classes?.length ?? 0);
    if (s.length === 0) continue;
    using top = s.labels.max(); // () int64
    n = Math.max(n, top.item() + 1);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// Extraction

export interface ExtractOptions {
  /** Default IMAGENET_EVAL_TRANSFORM. */
  transform?: EvalTransform;
  /** Images per forward pass. Default 64. */
  batchSize?: number;
  /** Where the backbone runs (it is moved there and back). Default "cpu". */
  device?: Device;
  /** A progress bar on stderr, with this label; false for none. Default "features". */
  progress?: string | false;
  /** One line per bad file. Default console.warn. */
  log?: Logger;
  /** Decoder strictness and pixel limit (decode.ts). */
  decode?: Pick<DecodeOptions, "limitInputPixels" | "failOn">;
}

interface Prepared {
  index: number;
  label: number;
  /** (H, W, 3) uint8 after resize and crop. */
  pixels: Uint8Array;
  height: number;
  width: number;
}

/** The source's records with their indices, lazily (indexed sources by at(), others by iteration). */
async function* enumerate(source: ImageSource): AsyncGenerator<[number, ImageRecord]> {
  if (isIndexed(source)) {
    for (let i = 0; i < source.length; i++) yield [i, source.at(i)];
    return;
  }
  let i = 0;
  for await (const r of source) yield [i++, r];
}

/** A batch of good images after the eval transform's resize and crop, as 8-bit pixels. */
interface PixelBatch {
  /** (n, H, W, 3) uint8, n = labels.length (0 when every record of the batch was bad). */
  hwc: Uint8Array;
  H: number;
  W: number;
  labels: number[];
  /** Record index of each image. */
  indices: number[];
  /** Records met so far (good and bad), for progress. */
  met: number;
}

/**
 * The labelled source's good images, decoded (sharp), resized and center-cropped by the eval transform, in record
 * order, `batchSize` records at a time. The next batch decodes (on libuv's pool) while the consumer works on the
 * current one. Records without a label are an error (an eval needs labels: folders need class subfolders).
 */
async function* pixelBatches(source: ImageSource, t: EvalTransform, batchSize: number, stats: DecodeStats, decode: ExtractOptions["decode"]): AsyncGenerator<PixelBatch> {
  const decodeOptions: DecodeOptions = { ...decode, ...(t.resizeShortSide > 0 ? { resizeShortSide: t.resizeShortSide, upscale: true } : {}) };
  const records = enumerate(source);
  let met = 0;
  let size: [number, number] | undefined = t.centerCrop > 0 ? [t.centerCrop, t.centerCrop] : undefined; // (H, W)

  const prepare = async ([index, record]: [number, ImageRecord]): Promise<Prepared | undefined> => {
    if (record.label === undefined) {
      throw new Error(`${source.description}: record ${record.key} has no label (an evaluation needs labelled data: a folder of class subfolders, a list with labels, or builtin:cifar10/imagenette)`);
    }
    const img = await decodeRecord(record, stats, decodeOptions);
    if (img === undefined) return undefined;
    if (t.centerCrop > 0) return { index, label: record.label, pixels: centerCropHwc(img, t.centerCrop), height: t.centerCrop, width: t.centerCrop };
    return { index, label: record.label, pixels: img.data, height: img.height, width: img.width };
  };
  /** The next batch's good images and how many records it took; undefined at the end. */
  const nextBatch = async (): Promise<{ images: Prepared[]; records: number } | undefined> => {
    const batch: [number, ImageRecord][] = [];
    while (batch.length < batchSize) {
      const r = await records.next();
      if (r.done) break;
      batch.push(r.value);
    }
    if (batch.length === 0) return undefined;
    const prepared = await Promise.all(batch.map(prepare));
    return { images: prepared.filter((p): p is Prepared => p !== undefined), records: batch.length };
  };

  let pending = nextBatch();
  try {
    for (;;) {
      const next = await pending;
      if (next === undefined) return;
      pending = nextBatch(); // decodes while the consumer works on this batch
      const batch = next.images;
      met += next.records;
      if (batch.length > 0) size ??= [batch[0]!.height, batch[0]!.width];
      const [H, W] = size ?? [0, 0];
      const bad = batch.find((p) => p.height !== H || p.width !== W);
      if (bad) {
        throw new Error(`${source.description}: images differ in size (${bad.width}x${bad.height} vs ${W}x${H}) and the transform has no center crop; give a crop size (--crop)`);
      }
      const hwc = new Uint8Array(batch.length * H * W * 3);
      batch.forEach((p, i) => hwc.set(p.pixels, i * H * W * 3));
      yield { hwc, H, W, labels: batch.map((p) => p.label), indices: batch.map((p) => p.index), met };
    }
  } finally {
    pending.catch(() => undefined); // on an early exit its failure, if any, is not the one to report
  }
}

/** (n, H, W, 3) uint8 pixels → (n, 3, H, W) float32 on `device`: ToTensor (/255) then Normalize per channel. */
function normalizedImages(hwc: Uint8Array, [n, H, W]: [number, number, number], t: EvalTransform, device: Device): Tensor {
  return tidy(() => {
    const raw = tensor(hwc, { shape: [n, H, W, 3], dtype: "uint8" }); // (n, H, W, 3)
    const planes = raw.permute(0, 3, 1, 2).contiguous(); // (n, 3, H, W) uint8, NCHW memory
    const onDevice = device === "cpu" ? planes : planes.to(device);
    const mean = tensor(Float32Array.from(t.mean), { shape: [1, 3, 1, 1], device });
    const std = tensor(Float32Array.from(t.std), { shape: [1, 3, 1, 1], device });
    return onDevice.to("float32").div_(255).sub_(mean).div_(std); // (n, 3, H, W)
  });
}

/**
 * The decode loop extractFeatures and decodeLabelledImages share: the transform and batch size checked, bad
 * images skipped and counted in `stats`, a progress bar (`label`, for indexed sources) advanced after each batch.
 */
function decodeLoop(source: ImageSource, o: Omit<ExtractOptions, "device">, label: string): { t: EvalTransform; stats: DecodeStats; batches: AsyncGenerator<PixelBatch> } {
  const t = o.transform ?? IMAGENET_EVAL_TRANSFORM;
  checkTransform(t);
  const batchSize = o.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`Expected a positive integer for batchSize but received ${batchSize}`);
  const stats = new DecodeStats(o.log);
  const total = isIndexed(source) ? source.length : undefined;
  const bar = o.progress !== false && total !== undefined ? new Progress(o.progress ?? label, total, "img") : undefined;
  async function* batches(): AsyncGenerator<PixelBatch> {
    for await (const b of pixelBatches(source, t, batchSize, stats, o.decode)) {
      yield b;
      bar?.update(b.met, stats.totalSkipped > 0 ? `${stats.totalSkipped} skipped` : "");
    }
  }
  return { t, stats, batches: batches() };
}

/**
 * Extracts features of every good image of a labelled source: decode (sharp) → eval transform → batches through
 * `backbone.forwardFeatures` in eval mode under noGrad. The next batch decodes (on libuv's pool) while the
 * current one runs forward. The backbone's training mode is restored afterwards. Records without a label are an
 * error (an eval needs labels: folders need class subfolders).
 */
export async function extractFeatures(backbone: FeatureExtractor, source: ImageSource, o: ExtractOptions = {}): Promise<FeatureSet> {
  const device = o.device ?? "cpu";
  const { t, stats, batches } = decodeLoop(source, o, "features");

  const chunks: Tensor[] = [];
  const labels: number[] = [];
  const indices: number[] = [];
  let met = 0;
  const wasTraining = backbone.training;
  backbone.eval();
  if (device !== "cpu") backbone.to(device);
  try {
    for await (const b of batches) {
      met = b.met;
      if (b.labels.length > 0) {
        chunks.push(forwardBatch(backbone, b.hwc, [b.labels.length, b.H, b.W], t, device)); // (n, D)
        labels.push(...b.labels);
        indices.push(...b.indices);
      }
    }
  } catch (e) {
    for (const c of chunks) c.dispose();
    throw e;
  } finally {
    if (device !== "cpu") backbone.to("cpu");
    backbone.train(wasTraining);
  }

  const features = chunks.length > 0 ? cat(chunks, 0) : empty([0, backbone.numFeatures]); // (N, D)
  for (const c of chunks) c.dispose();
  const labelTensor = tensor(BigInt64Array.from(labels, (l) => BigInt(l)), { shape: [labels.length] }); // (N)
  return new FeatureSet(features, labelTensor, Int32Array.from(indices), source.classes, source.description, met, { ...stats.skipped });
}

/** One batch of (n, H, W, 3) uint8 pixels → (n, D) float32 features on the CPU. */
function forwardBatch(backbone: FeatureExtractor, hwc: Uint8Array, shape: [number, number, number], t: EvalTransform, device: Device): Tensor {
  return noGrad(() =>
    tidy(() => {
      const x = normalizedImages(hwc, shape, t, device); // (n, 3, H, W)
      const f = backbone.forwardFeatures(x); // (n, D)
      return device === "cpu" ? f.to("float32") : f.to("cpu").to("float32");
    }),
  );
}

/** The good images of a labelled source after the eval transform, held in memory (fine-tuning's test set). */
export class LabelledImages implements Disposable {
  constructor(
    /** (N, 3, H, W) float32, normalized, on the CPU. */
    readonly images: Tensor,
    /** (N) int64 class indices. */
    readonly labels: Tensor,
    /** For each row, the index of its record in the source. */
    readonly recordIndices: Int32Array,
    readonly classes: readonly string[] | undefined,
    /** The source's description. */
    readonly source: string,
    /** Skipped records by reason. */
    readonly skipped: Readonly<Record<SkipReason, number>>,
  ) {}

  get length(): number {
    return this.recordIndices.length;
  }

  dispose(): void {
    this.images.dispose();
    this.labels.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Decodes every good image of a labelled source with the eval transform (as extractFeatures sees them) into one
 * (N, 3, H, W) tensor: for models that are evaluated several times (fine-tuning), so the images decode once.
 * Memory: N·3·H·W floats (500 images at 64×64: 25 MB).
 */
export async function decodeLabelledImages(source: ImageSource, o: Omit<ExtractOptions, "device"> = {}): Promise<LabelledImages> {
  const { t, stats, batches } = decodeLoop(source, o, "images");
  const chunks: Tensor[] = [];
  const labels: number[] = [];
  const indices: number[] = [];
  let shape: [number, number] | undefined;
  try {
    for await (const b of batches) {
      if (b.labels.length > 0) {
        shape ??= [b.H, b.W];
        chunks.push(normalizedImages(b.hwc, [b.labels.length, b.H, b.W], t, "cpu")); // (n, 3, H, W)
        labels.push(...b.labels);
        indices.push(...b.indices);
      }
    }
  } catch (e) {
    for (const c of chunks) c.dispose();
    throw e;
  }
  if (chunks.length === 0) throw new Error(`${source.description}: no readable labelled images (${stats.totalSkipped} skipped)`);
  const images = cat(chunks, 0); // (N, 3, H, W)
  for (const c of chunks) c.dispose();
  const labelTensor = tensor(BigInt64Array.from(labels, (l) => BigInt(l)), { shape: [labels.length] }); // (N)
  return new LabelledImages(images, labelTensor, Int32Array.from(indices), source.classes, source.description, { ...stats.skipped });
}

/**
 * Features of images already decoded (decodeLabelledImages): `backbone.forwardFeatures` in eval mode under noGrad,
 * `batchSize` images at a time; the training mode is restored. For several models on the same images (the
 * decoding is then paid once). A FeatureSet that owns its tensors (labels copied).
 */
export function imageFeatures(backbone: FeatureExtractor, images: LabelledImages, batchSize = 64): FeatureSet {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`Expected a positive integer for batchSize but received ${batchSize}`);
  const n = images.length;
  const wasTraining = backbone.training;
  backbone.eval();
  try {
    const features = noGrad(() =>
      tidy(() => {
        const parts: Tensor[] = [];
        for (let s = 0; s < n; s += batchSize) parts.push(backbone.forwardFeatures(images.images.narrow(0, s, Math.min(batchSize, n - s))).to("float32")); // (b, D)
        return parts.length > 0 ? cat(parts, 0) : empty([0, backbone.numFeatures]); // (N, D)
      }),
    );
    return new FeatureSet(features, images.labels.clone(), images.recordIndices, images.classes, images.source, n, images.skipped);
  } finally {
    backbone.train(wasTraining);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The cache

export interface CachedFeatureOptions extends ExtractOptions {
  /**
   * Identifies the weights, e.g. "file /runs/a/backbone.safetensors bytes 1234 mtime 1700000000000" or
   * "random:regnet_y_400mf seed 0 smallImageStem false" (what loadBackbone returns as `identity`).
   */
  modelId: string;
  /** Folder of the cache files. Default `${CACHE_DIR}/features`. */
  cacheDir?: string;
  /** Extract again and overwrite the cache file. Default false. */
  recompute?: boolean;
}

const CACHE_FORMAT = "seerkit-features-v1";

/** A short file-name-safe name for a source description: "builtin:cifar10/test" → "builtin-cifar10-test". */
export function sourceSlug(description: string): string {
  const slug = description.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "");
  return (slug.length > 60 ? slug.slice(slug.length - 60).replace(/^-+/, "") : slug) || "source";
}

/** sha256 of the records' keys, in order: changes when files are added, removed or renamed. */
export function sourceKeysHash(source: ImageSource): string | undefined {
  if (!isIndexed(source)) return undefined;
  const h = createHash("sha256");
  for (let i = 0; i < source.length; i++) h.update(source.at(i).key).update("\n");
  return h.digest("hex");
}

/** The cache key of a feature set: everything its rows depend on. */
function cacheKey(backbone: FeatureExtractor, source: ImageSource, o: CachedFeatureOptions, t: EvalTransform): string {
  return JSON.stringify({
    format: CACHE_FORMAT,
    model: o.modelId,
    numFeatures: backbone.numFeatures,
    source: source.description,
    records: isIndexed(source) ? source.length : null,
    keys: sourceKeysHash(source) ?? null,
    transform: { resizeShortSide: t.resizeShortSide, centerCrop: t.centerCrop, mean: [...t.mean], std: [...t.std] },
    decode: o.decode ?? {},
  });
}

/** The cache file a feature set would be stored in. */
export function featureCacheFile(backbone: FeatureExtractor, source: ImageSource, o: CachedFeatureOptions): string {
  const t = o.transform ?? IMAGENET_EVAL_TRANSFORM;
  const hash = createHash("sha256").update(cacheKey(backbone, source, o, t)).digest("hex").slice(0, 16);
  return path.join(o.cacheDir ?? path.join(CACHE_DIR, "features"), `${sourceSlug(source.description)}-${hash}.safetensors`);
}

/**
 * extractFeatures, cached: returns the stored feature set when the cache file for this (model, source, transform)
 * exists and its key matches, and extracts and stores it otherwise. A damaged cache file is reported and replaced.
 */
export async function cachedFeatures(backbone: FeatureExtractor, source: ImageSource, o: CachedFeatureOptions): Promise<FeatureSet> {
  const t = o.transform ?? IMAGENET_EVAL_TRANSFORM;
  checkTransform(t);
  const key = cacheKey(backbone, source, o, t);
  const file = featureCacheFile(backbone, source, o);
  const log = o.log ?? ((m: string) => console.warn(m));
  if (!o.recompute && fs.existsSync(file)) {
    try {
      const hit = readCache(file, key);
      if (hit) return hit;
      log(`${file}: cache key differs (another model, source or transform with the same hash prefix); extracting again`);
    } catch (e) {
      log(`${file}: unreadable feature cache (${(e as Error).message}); extracting again`);
    }
  }
  const set = await extractFeatures(backbone, source, { ...o, transform: t });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const recordIdx = tensor(BigInt64Array.from(set.recordIndices, (i) => BigInt(i)), { shape: [set.length] }); // (N)
  try {
    const tensors = new Map<string, Tensor>([["features", set.features], ["labels", set.labels], ["record_indices", recordIdx]]);
    saveSafetensors(file, tensors, {
      key,
      classes: JSON.stringify(set.classes ?? null),
      records: String(set.records),
      skipped: JSON.stringify(set.skipped),
    });
  } finally {
    recordIdx.dispose();
  }
  return new FeatureSet(set.features, set.labels, set.recordIndices, set.classes, set.source, set.records, set.skipped, false, file);
}

/** The cached set when the file's key is `key`; undefined when it is another key. Throws on a damaged file. */
function readCache(file: string, key: string): FeatureSet | undefined {
  const meta = readSafetensorsHeader(file).metadata;
  if (meta.key !== key) return undefined;
  const parsedKey = JSON.parse(key) as { source: string };
  const loaded = loadSafetensors(file);
  const features = loaded.get("features");
  const labels = loaded.get("labels");
  const recordIdx = loaded.get("record_indices");
  try {
    if (!features || !labels || !recordIdx || features.ndim !== 2 || labels.shape[0] !== features.shape[0] || recordIdx.shape[0] !== features.shape[0]) {
      throw new Error("expected features (N, D), labels (N) and record_indices (N)");
    }
    const classes = JSON.parse(meta.classes ?? "null") as string[] | null;
    const skipped = JSON.parse(meta.skipped ?? "{}") as Record<SkipReason, number>;
    const indices = Int32Array.from(recordIdx.toArray());
    recordIdx.dispose();
    return new FeatureSet(features, labels, indices, classes ?? undefined, parsedKey.source, Number(meta.records ?? indices.length), skipped, true, file);
  } catch (e) {
    disposeTensors(loaded);
    throw e;
  }
}
