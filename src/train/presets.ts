// The pretraining configuration: one typed object, its presets, and its validation.
//
// Presets:
// - `seer-regnety-{8,16,32,64,128,256}gf`: SEER's recipe (Goyal et al. 2021, "Self-supervised Pretraining of
//   Visual Features in the Wild"; VISSL projects/SEER/MODEL_DOCUMENTATION.md and
//   configs/config/pretrain/swav/swav_8node_resnet.yaml; see /work/shared/docs/seer-facts.md §1.2, §3, §6): SwAV
//   with 2x224 + 4x96 crops, a W -> 8192 -> 8192 -> 256 head without BN and 16,000 prototypes, Sinkhorn 10 × ε 0.05,
//   τ 0.1, prototypes frozen for 313 iterations, LARC (trust 0.001, no clip) + SGD momentum 0.9, 0.3 per 256
//   images at a global batch of 8192 (9.6), weight decay 1e-5, linear warmup 0.15 -> 9.6 over 8k iterations then
//   VISSL's global-progress cosine to 0.0096, one pass over 1B images (122k iterations). They need a cluster (512
//   GPUs in the paper): here they construct and validate, and document the recipe. They run on CUDA with bf16
//   autocast (SEER used apex O1 fp16; bf16 needs no loss scaling), channels-last, and BatchNorm synchronized in
//   groups of 64 ranks as SEER's syncBN64. Not reproduced here: activation checkpointing.
// - `swav-cifar-tiny` (the default), `simclr-cifar-tiny`, `swav-pool-tiny`: runs that fit two CPU cores, with the
//   trunk design of /work/shared/anchors/README.md (RegNetY-200MF with a 3x3 stride-1 stem) and an online kNN
//   monitor that shows what a few minutes of pretraining buy over the random init.
//
// A config is a plain object whose shape is its schema (config/overrides.ts): `key=value` overrides and JSON files
// may only name keys that exist here, with the default's type. validatePretrainConfig() then checks ranges and
// cross-key constraints, naming the key in every error.
import { ConfigError, freezeConfig } from "../config/overrides";
import { parseCropSpec, type CropGroup } from "../data/multicrop";
import { getModelEntry } from "../models/registry_table";

export type PretrainMethod = "swav" | "simclr";
export const PRETRAIN_METHODS: readonly PretrainMethod[] = ["swav", "simclr"];

/** How the cosine follows the warmup. */
export type CosineMode = "global" | "after-warmup";
export const COSINE_MODES: readonly CosineMode[] = ["global", "after-warmup"];
export const PRECISIONS: readonly RunConfig["precision"][] = ["fp32", "bf16"];

export interface ModelConfig {
  /** Trunk name as createModel takes it (`seer models` lists them), e.g. "regnet_y_200mf", "seer_regnet_y_256gf". */
  arch: string;
  /** CIFAR stem: a 3x3 stride-1 conv instead of the stride-2 one (pycls ResStemCifar); for 16-64 px crops. */
  smallImageStem: boolean;
  /** RegNet design override: depth d (0 keeps the arch's value). */
  depth: number;
  /** RegNet design override: initial width w0 (0 keeps the arch's value). */
  w0: number;
  /** RegNet design override: width slope wa (0 keeps the arch's value). */
  wa: number;
  /** RegNet design override: width multiplier wm (0 keeps the arch's value). */
  wm: number;
  /** RegNet design override: group width g (0 keeps the arch's value). */
  groupWidth: number;
}

export interface DataConfig {
  /**
   * Training images, labels dropped: a source as resolveSource takes it (folder, .txt list, tar shard pattern,
   * builtin:NAME/SPLIT); several joined by "+" are concatenated (an uncurated pool).
   */
  source: string;
  /** Train on a seeded random subset of this many images of an indexed source (0: all of them). */
  limit: number;
  /**
   * Crops per image, large crops first: "COUNTxSIZE@MIN-MAX" terms joined by "+", MIN-MAX the RandomResizedCrop
   * area range (e.g. "2x224@0.14-1+4x96@0.05-0.14"); SimCLR takes exactly one group of 2.
   */
  crops: string;
  /** Images per iteration: the global batch, split evenly over the processes of a distributed run. */
  batchSize: number;
  /** Decode worker threads (0: sharp's own thread pool, in process). */
  workers: number;
  /** Colour distortion strength s: ColorJitter(0.8s, 0.8s, 0.8s, 0.2s) with p 0.8 (SimCLR; SwAV/SEER: 1). */
  colorStrength: number;
  /** Probability of grayscale per crop (SimCLR/SwAV: 0.2). */
  grayscaleProb: number;
  /** Probability of Gaussian blur per crop (SwAV/SEER: 0.5; SimCLR on CIFAR: 0). */
  blurProb: number;
}

export interface OptimConfig {
  /** Wrap SGD in LARC (apex LARC as SwAV/SEER use it: a trust ratio per parameter). */
  larc: boolean;
  /** Peak learning rate per 256 images; the run's peak is baseLrPer256 × batchSize / 256 (linear scaling rule). */
  baseLrPer256: number;
  /** L2 weight decay (SEER 1e-5, SwAV 1e-6). */
  weightDecay: number;
  /** SGD momentum (0.9). */
  momentum: number;
  /** LARC trust coefficient (0.001 in SwAV/SEER). */
  trustCoefficient: number;
  /** LARC clip mode, min(trust / lr, 1) (false in SwAV/SEER). */
  clip: boolean;
  /** Keep biases and norm parameters out of weight decay (and LARC adaptation), as SimCLR does; SwAV/SEER: false. */
  excludeBiasAndNorm: boolean;
  /** Linear warmup length in iterations (added to warmupEpochs). */
  warmupIters: number;
  /** Linear warmup length in epochs (indexed sources; added to warmupIters). */
  warmupEpochs: number;
  /** Learning rate at iteration 0 as a fraction of the peak (SEER 0.15 / 9.6; SwAV 0). */
  startLrRatio: number;
  /** Learning rate at the end as a fraction of the peak (SEER and SwAV 0.001). */
  finalLrRatio: number;
  /** "global": VISSL's cosine of the global progress (SEER); "after-warmup": SwAV's cosine restarted after warmup. */
  cosine: CosineMode;
}

export interface ScheduleConfig {
  /** Passes over the data (indexed sources); used when iterations is 0. */
  epochs: number;
  /** Total iterations; when > 0 it wins over epochs. */
  iterations: number;
}

export interface SwAVConfig {
  /** Projection head after the trunk width W: [hidden..., output], e.g. [2048, 128] (W -> 2048 -> 128). */
  headDims: number[];
  /** BatchNorm1d after each hidden Linear (SwAV's ResNet head: true; SEER: false). */
  headBatchNorm: boolean;
  /** Number of prototypes K (SwAV 3000; SEER 16000). */
  prototypes: number;
  /** Softmax temperature τ over the prototype scores (0.1). */
  temperature: number;
  /** Sinkhorn-Knopp iterations (SwAV 3; SEER 10). */
  sinkhornIterations: number;
  /** Sinkhorn's entropic regularization ε (0.05). */
  epsilon: number;
  /** Prototype gradients are dropped for this many first iterations (313). */
  freezePrototypesIters: number;
  /** Embedding queue length per assignment crop, rounded down to a multiple of the batch (0: no queue). */
  queueLength: number;
  /** Epoch (0-based) from which the queue is filled and, once full, used. */
  queueStartEpoch: number;
}

export interface SimCLRConfig {
  /** Projection head after the trunk width W: [hidden..., output], e.g. [2048, 128]. */
  headDims: number[];
  /** BatchNorm1d after each hidden Linear. */
  headBatchNorm: boolean;
  /** NT-Xent temperature τ (SimCLR 0.1; 0.2-0.5 on CIFAR). */
  temperature: number;
}

export interface RunConfig {
  /** Seed of the weights' init, the data order and the augmentations. */
  seed: number;
  /** Intra-op threads (0: the machine's cores, at most 16). A bit-exact resume needs the same count. */
  threads: number;
  /** Save a checkpoint every this many iterations (0: only at the end and on interruption). */
  checkpointEvery: number;
  /** Checkpoints kept in the run folder (older ones are deleted). */
  keep: number;
  /** Write a metrics.jsonl line every this many iterations. */
  logEvery: number;
  /** Where the model, the augmentations and the kNN monitor run: "cpu", "cuda" or "cuda:N". */
  device: string;
  /** "fp32", or "bf16": CUDA autocast of the forward and loss (weights, gradients and optimizer stay float32). */
  precision: "fp32" | "bf16";
  /** Convolution weights and crops channels-last (NHWC): faster cuDNN kernels with bf16; no effect on values. */
  channelsLast: boolean;
}

export interface KnnConfig {
  /** Run the online kNN monitor (before training, every `every` iterations, and at the end). */
  enabled: boolean;
  /** Also evaluate every this many iterations (0: only before training and at the end). */
  every: number;
  /** Labelled source of the kNN "train" bank (builtin:NAME/SPLIT, a folder of class folders, a labelled list). */
  trainSource: string;
  /** Labelled source of the evaluated images. */
  testSource: string;
  /** Images of trainSource in the bank (a seeded subset; 0: all). */
  trainSamples: number;
  /** Images of testSource evaluated (a seeded subset; 0: all). */
  testSamples: number;
  /** Neighbours k. */
  k: number;
  /** Temperature T of the exp(cosine / T) vote weights. */
  temperature: number;
  /** Side of the (center-cropped, resized) evaluation images (0: the first crop group's size). */
  imageSize: number;
  /** Images per forward pass when extracting features. */
  batchSize: number;
}

export interface DistConfig {
  /**
   * Under data-parallel training (several processes), BatchNorm statistics are computed over consecutive groups of
   * this many ranks (SEER: 64 GPUs); 0: over all ranks. Must divide the number of processes. No effect in one process.
   */
  syncBnGroupSize: number;
}

/** Everything a pretraining run depends on. */
export interface PretrainConfig {
  /** "swav" or "simclr". */
  method: PretrainMethod;
  model: ModelConfig;
  data: DataConfig;
  optim: OptimConfig;
  schedule: ScheduleConfig;
  /** SwAV settings (used when method is "swav"). */
  swav: SwAVConfig;
  /** SimCLR settings (used when method is "simclr"). */
  simclr: SimCLRConfig;
  run: RunConfig;
  knn: KnnConfig;
  /** Data-parallel settings (used when the run has several processes). */
  dist: DistConfig;
}

// ---------------------------------------------------------------------------------------------------------------
// Presets

/** The base every preset starts from: swav-cifar-tiny's values. */
function baseConfig(): PretrainConfig {
  return {
    method: "swav",
    model: { arch: "regnet_y_200mf", smallImageStem: true, depth: 0, w0: 0, wa: 0, wm: 0, groupWidth: 0 },
    data: {
      source: "builtin:cifar10/train",
      limit: 0,
      crops: "2x32@0.2-1",
      batchSize: 64,
      workers: 0,
      colorStrength: 0.5,
      grayscaleProb: 0.2,
      blurProb: 0,
    },
    optim: {
      larc: false,
      baseLrPer256: 0.6,
      weightDecay: 1e-6,
      momentum: 0.9,
      trustCoefficient: 0.001,
      clip: false,
      excludeBiasAndNorm: false,
      warmupIters: 10,
      warmupEpochs: 0,
      startLrRatio: 0,
      finalLrRatio: 0.001,
      cosine: "after-warmup",
    },
    schedule: { epochs: 0, iterations: 330 },
    swav: {
      headDims: [2048, 128],
      headBatchNorm: true,
      prototypes: 300,
      temperature: 0.1,
      sinkhornIterations: 3,
      epsilon: 0.02,
      freezePrototypesIters: 30,
      queueLength: 640,
      queueStartEpoch: 0,
    },
    simclr: { headDims: [2048, 128], headBatchNorm: true, temperature: 0.2 },
    run: { seed: 0, threads: 0, checkpointEvery: 50, keep: 3, logEvery: 5, device: "cpu", precision: "fp32", channelsLast: false },
    knn: {
      enabled: true,
      every: 0,
      trainSource: "builtin:cifar10/train",
      testSource: "builtin:cifar10/test",
      trainSamples: 5000,
      testSamples: 1000,
      k: 20,
      temperature: 0.07,
      imageSize: 32,
      batchSize: 100, // NOTE: 500 ran 7x slower per image than 100 here (activations above glibc's 32 MiB mmap threshold page-fault on every use)
    },
    dist: { syncBnGroupSize: 0 },
  };
}

/** SEER's recipe (see the header) on a RegNetY trunk. */
function seerConfig(arch: string): PretrainConfig {
  const c = baseConfig();
  return {
    ...c,
    method: "swav",
    model: { ...c.model, arch, smallImageStem: false },
    data: {
      ...c.data,
      source: "/data/ig-1b/shard-{000000..099999}.tar", // uncurated Instagram images: give yours with --data
      limit: 0,
      crops: "2x224@0.14-1+4x96@0.05-0.14",
      batchSize: 8192, // 16 per GPU × 512 GPUs
      workers: 8,
      colorStrength: 1,
      grayscaleProb: 0.2,
      blurProb: 0.5,
    },
    optim: {
      larc: true,
      baseLrPer256: 0.3, // → 9.6 at 8192
      weightDecay: 1e-5,
      momentum: 0.9,
      trustCoefficient: 0.001,
      clip: false,
      excludeBiasAndNorm: false,
      warmupIters: 8000,
      warmupEpochs: 0,
      startLrRatio: 0.15 / 9.6,
      finalLrRatio: 0.001, // 9.6 → 0.0096
      cosine: "global",
    },
    schedule: { epochs: 0, iterations: 122_070 }, // 1e9 images / 8192
    swav: {
      headDims: [8192, 8192, 256],
      headBatchNorm: false,
      prototypes: 16000,
      temperature: 0.1,
      sinkhornIterations: 10,
      epsilon: 0.05,
      freezePrototypesIters: 313,
      queueLength: 0,
      queueStartEpoch: 0,
    },
    run: { seed: 0, threads: 0, checkpointEvery: 5000, keep: 3, logEvery: 10, device: "cuda", precision: "bf16", channelsLast: true },
    knn: { ...c.knn, enabled: false, trainSource: "builtin:imagenette/train", testSource: "builtin:imagenette/val", imageSize: 224, batchSize: 64 },
    dist: { syncBnGroupSize: 64 }, // SEER's syncBN64
  };
}

/**
 * swav-cifar-tiny: SwAV on CIFAR-10 train (labels dropped) with the anchors' RegNetY-200MF-design trunk and a 3x3
 * stride-1 stem, two 32x32 views, batch 64, 330 iterations (21,120 images, about 0.4 epoch), plain SGD at
 * 0.15, 300 prototypes, τ 0.1, Sinkhorn 3. The kNN monitor compares the trunk with its random init on 1000 CIFAR-10
 * test images against 5000 train images (k 20, T 0.07).
 * Tuned on this budget (same monitor, seed 0): with SwAV's ε 0.05 and no queue the loss sits at ln K (5.70, uniform
 * predictions) for the whole run and the kNN accuracy does not move (-2 to +2 points over 12 runs of batch 64-128,
 * lr 0.3-0.6 per 256, 30-300 prototypes, frozen prototypes, no head BN); sharper codes (ε 0.02) together with a
 * 640-embedding queue from the start and prototypes frozen for 30 iterations get the loss below ln K within ~50
 * iterations and the accuracy from 24.9% to 30.2% (5 minutes on 2 cores). SimCLR gains more with fewer iterations (below).
 */
function swavCifarTiny(): PretrainConfig {
  return baseConfig();
}

/**
 * simclr-cifar-tiny: SimCLR (NT-Xent, τ 0.2, weight decay 5e-4 off biases and norms) on the same trunk and data,
 * two 32x32 views, batch 128, 120 iterations at 0.15 (24.9% -> 31.9% on the monitor, 3m20s on 2 cores).
 */
function simclrCifarTiny(): PretrainConfig {
  const c = baseConfig();
  return {
    ...c,
    method: "simclr",
    data: { ...c.data, batchSize: 128 },
    optim: { ...c.optim, baseLrPer256: 0.3, weightDecay: 5e-4, excludeBiasAndNorm: true },
    schedule: { epochs: 0, iterations: 120 },
  };
}

/**
 * swav-pool-tiny: SwAV on an uncurated pool (Imagenette train + tiny COCO, labels dropped: object-centric photos
 * and scene photos of mixed sizes), 2x64 + 4x32 crops, batch 64; kNN on Imagenette val against Imagenette train.
 */
function swavPoolTiny(): PretrainConfig {
  const c = baseConfig();
  return {
    ...c,
    data: { ...c.data, source: "builtin:imagenette/train+builtin:tiny_coco/train", crops: "2x64@0.14-1+4x32@0.05-0.14", batchSize: 64, colorStrength: 1, blurProb: 0.5 },
    schedule: { epochs: 0, iterations: 100 },
    knn: { ...c.knn, trainSource: "builtin:imagenette/train", testSource: "builtin:imagenette/val", trainSamples: 2000, testSamples: 500, imageSize: 64 },
  };
}

/** Preset name -> a fresh config. */
export const PRETRAIN_PRESETS: Readonly<Record<string, () => PretrainConfig>> = Object.freeze({
  "swav-cifar-tiny": swavCifarTiny,
  "simclr-cifar-tiny": simclrCifarTiny,
  "swav-pool-tiny": swavPoolTiny,
  "seer-regnety-8gf": () => seerConfig("regnet_y_8gf"),
  "seer-regnety-16gf": () => seerConfig("regnet_y_16gf"),
  "seer-regnety-32gf": () => seerConfig("regnet_y_32gf"),
  "seer-regnety-64gf": () => seerConfig("seer_regnet_y_64gf"),
  "seer-regnety-128gf": () => seerConfig("seer_regnet_y_128gf"),
  "seer-regnety-256gf": () => seerConfig("seer_regnet_y_256gf"),
});

export const DEFAULT_PRESET = "swav-cifar-tiny";

/** One line per preset, for --help and --presets. */
export const PRESET_NOTES: Readonly<Record<string, string>> = Object.freeze({
  "swav-cifar-tiny": "SwAV, CIFAR-10 train, RegNetY-200MF small stem, 2x32, batch 64, 330 iterations; kNN vs random init (2 CPU cores: 3-4 minutes)",
  "simclr-cifar-tiny": "SimCLR, CIFAR-10 train, RegNetY-200MF small stem, 2x32, batch 128, 120 iterations; kNN vs random init",
  "swav-pool-tiny": "SwAV on an uncurated pool (Imagenette train + tiny COCO), 2x64+4x32, batch 64, 100 iterations; kNN on Imagenette val",
  "seer-regnety-8gf": "SEER recipe on RegNetY-8GF (needs a cluster: batch 8192, 122k iterations)",
  "seer-regnety-16gf": "SEER recipe on RegNetY-16GF (needs a cluster)",
  "seer-regnety-32gf": "SEER recipe on RegNetY-32GF (needs a cluster)",
  "seer-regnety-64gf": "SEER recipe on RegNetY-64GF (needs a cluster)",
  "seer-regnety-128gf": "SEER recipe on RegNetY-128GF (needs a cluster)",
  "seer-regnety-256gf": "SEER recipe on SEER's RegNetY-256GF, 1.3B parameters (needs a cluster)",
});

/** A fresh, mutable copy of a preset; unknown names are a ConfigError listing the known ones. */
export function presetConfig(name: string): PretrainConfig {
  const make = PRETRAIN_PRESETS[name];
  if (!make) throw new ConfigError(`unknown preset '${name}' (known: ${Object.keys(PRETRAIN_PRESETS).join(", ")})`);
  return make();
}

// ---------------------------------------------------------------------------------------------------------------
// Validation

function fail(key: string, want: string, got: unknown): never {
  throw new ConfigError(`${key}: expected ${want} but got ${JSON.stringify(got)}`);
}

function int(key: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) fail(key, `an integer >= ${min}`, v);
}

function num(key: string, v: number, lo: number, hi: number, o: { openLo?: boolean; openHi?: boolean } = {}): void {
  const okLo = o.openLo ? v > lo : v >= lo;
  const okHi = o.openHi ? v < hi : v <= hi;
  if (typeof v !== "number" || !Number.isFinite(v) || !okLo || !okHi) {
    fail(key, `a number in ${o.openLo ? "(" : "["}${lo}, ${hi}${o.openHi ? ")" : "]"}`, v);
  }
}

function dims(key: string, v: number[]): void {
  if (!Array.isArray(v) || v.length === 0 || !v.every((d) => Number.isSafeInteger(d) && d >= 1)) fail(key, "a non-empty array of positive integers", v);
}

/** The crop groups of a config (throws a ConfigError naming data.crops). */
export function configCrops(c: PretrainConfig): CropGroup[] {
  try {
    return parseCropSpec(c.data.crops);
  } catch (e) {
    throw new ConfigError(`data.crops: ${(e as Error).message}`);
  }
}

/** The createModel options of a config: smallImageStem, no classifier, and the design overrides that are set. */
export function modelOptions(m: ModelConfig): { numClasses: number; smallImageStem: boolean; depth?: number; w0?: number; wa?: number; wm?: number; groupWidth?: number } {
  const o: ReturnType<typeof modelOptions> = { numClasses: 0, smallImageStem: m.smallImageStem };
  for (const k of ["depth", "w0", "wa", "wm", "groupWidth"] as const) if (m[k] !== 0) o[k] = m[k];
  return o;
}

/**
 * Checks ranges and cross-key constraints (types were checked when the config was merged); every error is a
 * ConfigError that names the key. Touches no file: a preset for data this machine lacks still validates.
 */
export function validatePretrainConfig(c: PretrainConfig): void {
  if (!PRETRAIN_METHODS.includes(c.method)) fail("method", `one of ${PRETRAIN_METHODS.join(", ")}`, c.method);

  // model
  let family: "regnet" | "resnet";
  try {
    family = getModelEntry(c.model.arch).family;
  } catch (e) {
    throw new ConfigError(`model.arch: ${(e as Error).message}`);
  }
  int("model.depth", c.model.depth, 0);
  for (const k of ["w0", "wa", "wm", "groupWidth"] as const) num(`model.${k}`, c.model[k], 0, 1e6);
  const overridden = (["depth", "w0", "wa", "wm", "groupWidth"] as const).filter((k) => c.model[k] !== 0);
  if (family === "resnet" && overridden.length > 0) throw new ConfigError(`model.${overridden[0]}: design overrides apply to RegNets only, ${c.model.arch} is a ResNet`);

  // data
  if (typeof c.data.source !== "string" || c.data.source.trim() === "") fail("data.source", "a source (folder, list, tar pattern or builtin:NAME/SPLIT)", c.data.source);
  int("data.limit", c.data.limit, 0);
  int("data.batchSize", c.data.batchSize, 1);
  int("data.workers", c.data.workers, 0);
  num("data.colorStrength", c.data.colorStrength, 0, 10);
  num("data.grayscaleProb", c.data.grayscaleProb, 0, 1);
  num("data.blurProb", c.data.blurProb, 0, 1);
  const crops = configCrops(c);
  const numViews = crops.reduce((n, g) => n + g.count, 0);
  if (c.method === "simclr" && (crops.length !== 1 || crops[0]!.count !== 2)) {
    throw new ConfigError(`data.crops: SimCLR takes exactly two views of one size (e.g. "2x32@0.2-1") but got "${c.data.crops}"`);
  }
  if (c.method === "swav" && (crops[0]!.count < 2 || numViews < 2)) {
    throw new ConfigError(`data.crops: SwAV assigns codes from the first two crops, so the first group needs a count >= 2 but got "${c.data.crops}"`);
  }

  // optim
  num("optim.baseLrPer256", c.optim.baseLrPer256, 0, 1e4, { openLo: true });
  num("optim.weightDecay", c.optim.weightDecay, 0, 1);
  num("optim.momentum", c.optim.momentum, 0, 1, { openHi: true });
  num("optim.trustCoefficient", c.optim.trustCoefficient, 0, 1e3, { openLo: true });
  int("optim.warmupIters", c.optim.warmupIters, 0);
  num("optim.warmupEpochs", c.optim.warmupEpochs, 0, 1e6);
  num("optim.startLrRatio", c.optim.startLrRatio, 0, 1);
  num("optim.finalLrRatio", c.optim.finalLrRatio, 0, 1);
  if (!COSINE_MODES.includes(c.optim.cosine)) fail("optim.cosine", `one of ${COSINE_MODES.join(", ")}`, c.optim.cosine);
  if (c.optim.clip && !c.optim.larc) throw new ConfigError("optim.clip: clip mode is LARC's; set optim.larc=true or optim.clip=false");

  // schedule
  num("schedule.epochs", c.schedule.epochs, 0, 1e6);
  int("schedule.iterations", c.schedule.iterations, 0);
  if (c.schedule.iterations === 0 && !(c.schedule.epochs > 0)) throw new ConfigError("schedule: set schedule.iterations or schedule.epochs to a positive value");
  if (c.schedule.iterations > 0 && c.optim.warmupEpochs === 0 && c.optim.warmupIters >= c.schedule.iterations) {
    throw new ConfigError(`optim.warmupIters: the warmup (${c.optim.warmupIters}) must be shorter than schedule.iterations (${c.schedule.iterations})`);
  }

  // method heads
  dims("swav.headDims", c.swav.headDims);
  int("swav.prototypes", c.swav.prototypes, 1);
  num("swav.temperature", c.swav.temperature, 0, 100, { openLo: true });
  int("swav.sinkhornIterations", c.swav.sinkhornIterations, 1);
  num("swav.epsilon", c.swav.epsilon, 0, 100, { openLo: true });
  int("swav.freezePrototypesIters", c.swav.freezePrototypesIters, 0);
  int("swav.queueLength", c.swav.queueLength, 0);
  int("swav.queueStartEpoch", c.swav.queueStartEpoch, 0);
  if (c.method === "swav" && c.swav.queueLength > 0 && c.swav.queueLength < c.data.batchSize) {
    throw new ConfigError(`swav.queueLength: a queue holds whole batches; ${c.swav.queueLength} is below data.batchSize ${c.data.batchSize} (0 turns the queue off)`);
  }
  dims("simclr.headDims", c.simclr.headDims);
  num("simclr.temperature", c.simclr.temperature, 0, 100, { openLo: true });

  // run
  int("run.seed", c.run.seed, 0);
  int("run.threads", c.run.threads, 0);
  int("run.checkpointEvery", c.run.checkpointEvery, 0);
  int("run.keep", c.run.keep, 1);
  int("run.logEvery", c.run.logEvery, 1);
  if (!/^(cpu|cuda|cuda:\d+)$/.test(c.run.device)) fail("run.device", 'cpu, cuda or cuda:N', c.run.device);
  if (!PRECISIONS.includes(c.run.precision)) fail("run.precision", `one of ${PRECISIONS.join(", ")}`, c.run.precision);
  if (c.run.precision === "bf16" && c.run.device === "cpu") throw new ConfigError("run.precision: bf16 is CUDA autocast; with run.device=cpu use fp32");

  // knn
  int("knn.every", c.knn.every, 0);
  if (c.knn.enabled) {
    for (const k of ["trainSource", "testSource"] as const) if (typeof c.knn[k] !== "string" || c.knn[k].trim() === "") fail(`knn.${k}`, "a labelled source", c.knn[k]);
  }
  int("knn.trainSamples", c.knn.trainSamples, 0);
  int("knn.testSamples", c.knn.testSamples, 0);
  int("knn.k", c.knn.k, 1);
  num("knn.temperature", c.knn.temperature, 0, 100, { openLo: true });
  int("knn.imageSize", c.knn.imageSize, 0);
  int("knn.batchSize", c.knn.batchSize, 1);

  // dist
  int("dist.syncBnGroupSize", c.dist.syncBnGroupSize, 0);
}

/** Validates and freezes a config; returns it. */
export function finalizePretrainConfig(c: PretrainConfig): Readonly<PretrainConfig> {
  validatePretrainConfig(c);
  return freezeConfig(c);
}

// ---------------------------------------------------------------------------------------------------------------
// What a resumed run may change

/**
 * Keys that do not change what a run computes, so a resumed run may differ in them: how it reports, how often it
 * saves, how many threads decode, and the kNN monitor. (Threads do change the rounding of a few reductions: a
 * bit-exact resume needs the same count; the run is otherwise the same.)
 */
export const RESUMABLE_KEYS: readonly string[] = [
  "run.threads", "run.checkpointEvery", "run.keep", "run.logEvery", "run.device", "run.channelsLast", "data.workers", "knn.",
];

/** Leaves of a config as "a.b.c" -> JSON text of the value. */
export function flattenConfig(c: object, prefix = ""): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(c)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) for (const [kk, vv] of flattenConfig(v as object, key)) out.set(kk, vv);
    else out.set(key, JSON.stringify(v));
  }
  return out;
}

/** Keys whose values differ between a saved config and this one, and that change the run: "key: saved -> now". */
export function runChangingDifferences(saved: object, now: object): string[] {
  const a = flattenConfig(saved);
  const b = flattenConfig(now);
  const keys = [...new Set([...a.keys(), ...b.keys()])];
  return keys
    .filter((k) => a.get(k) !== b.get(k))
    .filter((k) => !RESUMABLE_KEYS.some((r) => (r.endsWith(".") ? k.startsWith(r) : k === r)))
    .map((k) => `${k}: ${a.get(k) ?? "(absent)"} -> ${b.get(k) ?? "(absent)"}`);
}

/** A few lines describing a config, for the start of a run. */
export function describeConfig(c: PretrainConfig, name: string): string {
  const m = c.method === "swav" ? c.swav : c.simclr;
  const head = `head [W, ${m.headDims.join(", ")}]${m.headBatchNorm ? " with BN" : ""}`;
  const design = (["depth", "w0", "wa", "wm", "groupWidth"] as const).filter((k) => c.model[k] !== 0).map((k) => `${k}=${c.model[k]}`);
  const lines = [
    `config     ${name}`,
    `method     ${c.method}; ${head}` +
      (c.method === "swav"
        ? `, ${c.swav.prototypes} prototypes (frozen ${c.swav.freezePrototypesIters} it), τ ${c.swav.temperature}, Sinkhorn ${c.swav.sinkhornIterations} × ε ${c.swav.epsilon}, queue ${c.swav.queueLength}${c.swav.queueLength > 0 ? ` from epoch ${c.swav.queueStartEpoch}` : ""}`
        : `, τ ${c.simclr.temperature}`),
    `model      ${c.model.arch}${c.model.smallImageStem ? " (small-image stem)" : ""}${design.length ? ` with ${design.join(", ")}` : ""}`,
    `data       ${c.data.source}${c.data.limit > 0 ? ` (subset of ${c.data.limit})` : ""}; crops ${c.data.crops}; batch ${c.data.batchSize}; colour ${c.data.colorStrength}, blur p ${c.data.blurProb}`,
    `optim      ${c.optim.larc ? `LARC(trust ${c.optim.trustCoefficient}${c.optim.clip ? ", clip" : ""}) + ` : ""}SGD momentum ${c.optim.momentum}, ${c.optim.baseLrPer256} per 256 images, wd ${c.optim.weightDecay}${c.optim.excludeBiasAndNorm ? " (not on biases/norms)" : ""}; warmup ${c.optim.warmupIters} it${c.optim.warmupEpochs ? ` + ${c.optim.warmupEpochs} ep` : ""}, cosine (${c.optim.cosine}) to ×${c.optim.finalLrRatio}`,
    `schedule   ${c.schedule.iterations > 0 ? `${c.schedule.iterations} iterations` : `${c.schedule.epochs} epochs`}`,
    `run        seed ${c.run.seed}, threads ${c.run.threads || "auto"}, checkpoint every ${c.run.checkpointEvery || "(end only)"}, keep ${c.run.keep}, log every ${c.run.logEvery}; ${c.run.device}${c.run.precision === "bf16" ? ", bf16 autocast" : ""}${c.run.channelsLast ? ", channels-last" : ""}`,
    `knn        ${c.knn.enabled ? `${c.knn.testSource} (${c.knn.testSamples || "all"}) against ${c.knn.trainSource} (${c.knn.trainSamples || "all"}), k ${c.knn.k}, T ${c.knn.temperature}${c.knn.every ? `, every ${c.knn.every} it` : ""}` : "off"}`,
  ];
  return lines.join("\n");
}
