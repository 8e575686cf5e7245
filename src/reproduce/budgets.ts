// The budgets of `seer reproduce`: what the SEER study (Goyal et al. 2021) becomes at a given amount of compute.
//
// The study, as the paper sets it up (/work/shared/docs/seer-facts.md §1): SwAV pretraining of RegNetY trunks of
// several sizes on random, uncurated images (labels and metadata unused), compared with the same trunks trained from
// scratch, by fine-tuning (full and low-shot 1% / 10% of the labels) and linear evaluation; SimCLR as the other
// self-supervised method. Here each budget fixes:
//
//   pools    "uncurated": a seeded sample of a mix of sources of mixed sizes and content, labels dropped
//            (Imagenette train 224 px object photos + CIFAR-10 test 32 px photos of other classes + tiny COCO
//            640x480 scenes); "curated": the same number of images from Imagenette train alone, the domain of the
//            evaluation (the role ImageNet plays in the paper's comparisons)
//   trunks   RegNetY designs with the CIFAR stem (3x3 stride 1) for 32 px crops: the anchors' RegNetY-200MF design
//            and narrower / wider ones (design overrides of regnet_y_200mf, or regnet_y_400mf)
//   methods  SwAV and SimCLR from the tiny presets (src/train/presets.ts), whose settings were tuned on this machine:
//            SwAV needs a queue and a sharp ε (0.02) at small batches and short runs
//   eval     Imagenette: kNN and linear probe on frozen features of (a sample of) train, low-shot fine-tuning on the
//            stratified 1% / 10% subsets of train, all tested on (a sample of) val; every pretrained trunk has its
//            scratch twin (same architecture and fine-tuning schedule from the random init)
//
// `tiny` fits 15 minutes on 2 CPU cores; `small` is an overnight run on the same machine; `full` records the paper's
// configuration (RegNetY-8GF..256GF, SEER's recipe, ImageNet) and refuses to start without GPUs. `test` is a
// micro budget for the tests (seconds per stage; its numbers mean nothing).
import type { CreateModelOptions } from "../models/registry";

export type BudgetName = "test" | "tiny" | "small" | "full";
export const BUDGET_NAMES: readonly BudgetName[] = ["tiny", "small", "full"]; // "test" is hidden

export interface TrunkSpec {
  /** Short id used in stage names and file names, e.g. "ry200mf". */
  id: string;
  /** For tables, e.g. "RegNetY-200MF". */
  label: string;
  /** createModel name. */
  arch: string;
  /** RegNet design overrides (createModel options). */
  design: CreateModelOptions;
  smallImageStem: boolean;
}

export interface PoolSpec {
  id: "uncurated" | "curated";
  /** For tables. */
  label: string;
  /** data.source of the pretraining config ("+"-joined sources). */
  source: string;
  /** What the pool is, for the report. */
  description: string;
}

export interface LowShotSpec {
  /** Percent of each class of the eval train set. */
  pct: number;
  iterations: number;
  batchSize: number;
  lr: number;
  headLr: number;
}

export interface ReproduceBudget {
  name: BudgetName;
  /** One line for --help and the report. */
  summary: string;
  /** Crop side of pretraining's large crops, of fine-tuning, and of the evaluation images. */
  imageSize: number;
  /** Images in each pretraining pool (data.limit). */
  poolImages: number;
  pools: PoolSpec[];
  methods: ("swav" | "simclr")[];
  trunks: TrunkSpec[];
  /** key=value overrides of the swav-cifar-tiny / simclr-cifar-tiny presets (after the budget's own keys). */
  pretrain: { swav: string[]; simclr: string[] };
  eval: {
    /** Labelled sources of the evaluation (same classes). */
    trainSource: string;
    testSource: string;
    /** Seeded samples of them for kNN / the linear probe / the test set (0: all). */
    trainSamples: number;
    testSamples: number;
    knn: { k: number; temperature: number };
    linear: { epochs: number; batchSize: number; lr: number };
    lowshot: LowShotSpec[];
    /** Smallest RandomResizedCrop area of fine-tuning. */
    cropScale: number;
    weightDecay: number;
  };
  /** Seed of everything (init, data order, subsets). */
  seed: number;
  /** Whether the budget can run on CPUs at all (full cannot). */
  cpu: boolean;
  /** Rough wall time on 2 cores, for --help and the start line. */
  expected: string;
}

const SMALL_STEM = true;

/** The anchors' trunk: RegNetY-200MF's design (d 13, w0 24, wa 36.44, wm 2.49, g 8) with the CIFAR stem. */
const RY200: TrunkSpec = { id: "ry200mf", label: "RegNetY-200MF", arch: "regnet_y_200mf", design: {}, smallImageStem: SMALL_STEM };
/** A narrow RegNetY (widths 16, 40, 96; depths 1, 2, 5): 0.17M parameters, a third of the 200MF step time at 32 px. */
const RY_NARROW: TrunkSpec = { id: "rynarrow", label: "RegNetY-narrow (w0 16, wa 16, wm 2.5, d 8)", arch: "regnet_y_200mf", design: { w0: 16, wa: 16, wm: 2.5, depth: 8 }, smallImageStem: SMALL_STEM };
const RY400: TrunkSpec = { id: "ry400mf", label: "RegNetY-400MF", arch: "regnet_y_400mf", design: {}, smallImageStem: SMALL_STEM };
/** Micro trunks for the test budget (a few thousand parameters). */
const MICRO_A: TrunkSpec = { id: "microa", label: "RegNetY-micro-a", arch: "regnet_y_200mf", design: { w0: 8, wa: 8, wm: 2, depth: 3, groupWidth: 8 }, smallImageStem: SMALL_STEM };
const MICRO_B: TrunkSpec = { id: "microb", label: "RegNetY-micro-b", arch: "regnet_y_200mf", design: { w0: 8, wa: 8, wm: 2, depth: 4, groupWidth: 8 }, smallImageStem: SMALL_STEM };

const UNCURATED_SOURCES = "builtin:imagenette/train+builtin:cifar10/test+builtin:tiny_coco/train";
function pools(): PoolSpec[] {
  return [
    {
      id: "uncurated", label: "uncurated mix", source: UNCURATED_SOURCES,
      description: "a seeded sample of Imagenette train (9,469 object photos, 224 px) + CIFAR-10 test (10,000 photos of 10 other classes, 32 px) + tiny COCO train (50 scenes, about 640x480), labels dropped: about half the pool is off the evaluation's domain",
    },
    { id: "curated", label: "Imagenette (curated)", source: "builtin:imagenette/train", description: "a seeded sample of Imagenette train alone (the evaluation's domain and classes), labels dropped" },
  ];
}

/** Pretraining overrides shared by the CPU budgets: SwAV/SimCLR presets on 32 px crops, no kNN monitor. */
function cpuPretrain(swavIters: number, simclrIters: number, batch: number, queue: number, freeze: number, warmup: number): { swav: string[]; simclr: string[] } {
  const common = ["knn.enabled=false", "run.logEvery=5", `data.batchSize=${batch}`];
  return {
    swav: [...common, `schedule.iterations=${swavIters}`, "data.crops=2x32@0.2-1", `swav.queueLength=${queue}`, `swav.freezePrototypesIters=${freeze}`, "swav.epsilon=0.02", `optim.warmupIters=${warmup}`],
    simclr: [...common, `schedule.iterations=${simclrIters}`, "data.crops=2x32@0.2-1", `optim.warmupIters=${warmup}`],
  };
}

const BUDGETS: Record<BudgetName, () => ReproduceBudget> = {
  test: () => ({
    name: "test",
    summary: "micro budget for the tests: 2 iterations per run, 16 px, tiny eval sets (the numbers mean nothing)",
    imageSize: 16,
    poolImages: 64,
    pools: pools(),
    methods: ["swav", "simclr"],
    trunks: [MICRO_A, MICRO_B],
    pretrain: {
      swav: ["knn.enabled=false", "data.batchSize=8", "schedule.iterations=2", "data.crops=2x16@0.2-1", "swav.queueLength=0", "swav.freezePrototypesIters=1", "optim.warmupIters=0", "swav.headDims=[64,16]", "swav.prototypes=20", "run.checkpointEvery=0"],
      simclr: ["knn.enabled=false", "data.batchSize=8", "schedule.iterations=2", "data.crops=2x16@0.2-1", "optim.warmupIters=0", "simclr.headDims=[64,16]", "run.checkpointEvery=0"],
    },
    eval: {
      trainSource: "builtin:imagenette/train", testSource: "builtin:imagenette/val", trainSamples: 60, testSamples: 30,
      knn: { k: 5, temperature: 0.07 }, linear: { epochs: 3, batchSize: 32, lr: 0.3 },
      lowshot: [{ pct: 1, iterations: 2, batchSize: 8, lr: 0.05, headLr: 0.05 }, { pct: 10, iterations: 2, batchSize: 8, lr: 0.05, headLr: 0.05 }],
      cropScale: 0.25, weightDecay: 1e-4,
    },
    seed: 0, cpu: true, expected: "about a minute",
  }),
  tiny: () => ({
    name: "tiny",
    summary: "2 trunks x 2 methods x 2 pools of 3,000 images, 32 px; SwAV 60 / SimCLR 40 iterations of 64; eval on 2,000 / 500 Imagenette images",
    imageSize: 32,
    poolImages: 3000,
    pools: pools(),
    methods: ["swav", "simclr"],
    trunks: [RY_NARROW, RY200],
    pretrain: cpuPretrain(60, 40, 64, 384, 10, 5),
    eval: {
      trainSource: "builtin:imagenette/train", testSource: "builtin:imagenette/val", trainSamples: 2000, testSamples: 500,
      knn: { k: 20, temperature: 0.07 }, linear: { epochs: 50, batchSize: 256, lr: 0.3 },
      lowshot: [{ pct: 1, iterations: 20, batchSize: 32, lr: 0.1, headLr: 0.1 }, { pct: 10, iterations: 40, batchSize: 64, lr: 0.1, headLr: 0.1 }],
      cropScale: 0.25, weightDecay: 1e-4,
    },
    seed: 0, cpu: true, expected: "10-15 minutes on 2 cores",
  }),
  small: () => ({
    name: "small",
    summary: "3 trunks x 2 methods x 2 pools of 9,469 images, 32 px; SwAV 1500 / SimCLR 1000 iterations of 64; full Imagenette eval",
    imageSize: 32,
    poolImages: 9469,
    pools: pools(),
    methods: ["swav", "simclr"],
    trunks: [RY_NARROW, RY200, RY400],
    pretrain: { ...cpuPretrain(1500, 1000, 64, 640, 100, 50) },
    eval: {
      trainSource: "builtin:imagenette/train", testSource: "builtin:imagenette/val", trainSamples: 0, testSamples: 0,
      knn: { k: 20, temperature: 0.07 }, linear: { epochs: 100, batchSize: 256, lr: 0.3 },
      lowshot: [{ pct: 1, iterations: 150, batchSize: 32, lr: 0.05, headLr: 0.05 }, { pct: 10, iterations: 600, batchSize: 64, lr: 0.05, headLr: 0.05 }],
      cropScale: 0.2, weightDecay: 1e-4,
    },
    seed: 0, cpu: true, expected: "5-7 hours on 2 cores (estimated from the tiny run's step times)",
  }),
  full: () => ({
    name: "full",
    summary: "the paper's scale: RegNetY-8GF..256GF with SEER's recipe (seer-regnety-* presets), SwAV on 1B uncurated images vs ImageNet",
    imageSize: 224,
    poolImages: 0,
    pools: [
      { id: "uncurated", label: "IG-1B (uncurated)", source: "/data/ig-1b/shard-{000000..099999}.tar", description: "1B random public Instagram images, no labels, hashtags or metadata (SEER §3.3); give yours as tar shards" },
      { id: "curated", label: "ImageNet-1k", source: "/data/imagenet/train", description: "ImageNet-1k train, labels dropped (the curated baseline of the paper's comparisons)" },
    ],
    methods: ["swav"], // the paper pretrains with SwAV only; its SimCLR figures are SimCLRv2's published ones
    trunks: ["8gf", "16gf", "32gf", "64gf", "128gf", "256gf"].map((s) => ({
      id: `ry${s}`, label: `RegNetY-${s.toUpperCase()}`, arch: s === "64gf" || s === "128gf" || s === "256gf" ? `seer_regnet_y_${s}` : `regnet_y_${s}`, design: {}, smallImageStem: false,
    })),
    pretrain: { swav: [], simclr: [] },
    eval: {
      trainSource: "/data/imagenet/train", testSource: "/data/imagenet/val", trainSamples: 0, testSamples: 0,
      knn: { k: 20, temperature: 0.07 }, linear: { epochs: 28, batchSize: 256, lr: 0.01 },
      // SwAV eval_semisup.py: 20 epochs at batch 256 (1%: 12.8k images, 10%: 128k), lr 0.02 / 0.01, head 5 / 0.2.
      lowshot: [{ pct: 1, iterations: 1000, batchSize: 256, lr: 0.02, headLr: 5 }, { pct: 10, iterations: 10_000, batchSize: 256, lr: 0.01, headLr: 0.2 }],
      cropScale: 0.08, weightDecay: 0,
    },
    seed: 0, cpu: false, expected: "about 8 days on 512 V100 GPUs per RegNetY-256GF pretraining (SEER)",
  }),
};

/** A fresh copy of a budget; unknown names are an error listing the known ones. */
export function reproduceBudget(name: string): ReproduceBudget {
  const make = BUDGETS[name as BudgetName];
  if (!make) throw new Error(`unknown budget '${name}' (known: ${BUDGET_NAMES.join(", ")})`);
  return make();
}
