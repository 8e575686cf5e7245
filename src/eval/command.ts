// `seer eval knn|linear|finetune|lowshot`: evaluate a backbone on a labelled train/test pair.
//
//   seer eval knn      --checkpoint CKPT --train SRC --test SRC [--k 20 --temperature 0.07]
//   seer eval linear   --checkpoint CKPT --train SRC --test SRC [--epochs 100 --lr 0.3 --bn]
//   seer eval finetune --checkpoint CKPT --train SRC --test SRC [--size 224 --epochs 20 --lr 0.05 --scratch]
//   seer eval lowshot  --checkpoint CKPT --train SRC --test SRC --pct 1|10 [--mode finetune|linear|knn]
//
// kNN and the linear probe work on frozen features, extracted once per checkpoint and transform and cached
// (features.ts); fine-tuning trains the trunk with a new head end to end (finetune.ts) and decodes the test images
// once. The low-shot subsets are drawn once per source, pct and seed and stored as index lists (lowshot.ts).
// `--scratch` evaluates the checkpoint's architecture at its random init instead of its weights: the scratch twin
// of a pretrained number, same schedule. The result is a small table (method, top-1, top-5, n train, n test), or
// JSON with --json. Protocols: knn.ts (InstDisc / DINO kNN), linear.ts (SwAV eval_linear.py on cached features),
// finetune.ts (SwAV eval_semisup.py / VISSL fine-tuning, small scale).
import * as os from "os";
import { formatFlags, parseArgs, UsageError, type FlagSpec, type FlagValues } from "../cli/args";
import { resolveSource } from "../data/scan";
import { isIndexed, type ImageSource, type IndexedImageSource } from "../data/sources";
import { checkDevice, setNumThreads } from "../tensor";
import { type LoadedBackbone, loadBackbone } from "./backbone";
import { cachedFeatures, decodeLabelledImages, defaultEvalTransform, describeTransform, type EvalTransform, type FeatureSet, type LabelledImages, numClassesOf } from "./features";
import { finetune, recordSubset } from "./finetune";
import { type ClassificationResult, knnClassify } from "./knn";
import { linearProbe } from "./linear";
import { lowShotSubset } from "./lowshot";

type Sub = "knn" | "linear" | "finetune" | "lowshot";
type Mode = "knn" | "linear" | "finetune";

const defaultThreads = Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 16));

const COMMON: Record<string, FlagSpec> = {
  checkpoint: { type: "string", help: "random:<arch>, a .safetensors state dict, a checkpoint folder or a run folder (required)" },
  arch: { type: "string", help: "model name (seer models); overrides what the checkpoint records" },
  "small-stem": { type: "boolean", help: "CIFAR stem (3x3 stride 1) instead of the ImageNet one" },
  scratch: { type: "boolean", help: "the checkpoint's architecture at its random init (seeded by --seed) instead of its weights: the scratch twin" },
  train: { type: "string", help: "labelled train source: builtin:NAME/SPLIT, a folder of class folders, a list (required)" },
  test: { type: "string", help: "labelled test source, as --train (required)" },
  resize: { type: "number", help: "test images: resize the short side to this before cropping; 0: no resize (default 256; CIFAR: 0; finetune: 8/7 of --size)" },
  crop: { type: "number", help: "test images: center crop size; 0: images as decoded (default 224; CIFAR: 0; finetune: --size)" },
  "extract-batch": { type: "number", help: "images per forward pass when extracting features", default: 64 },
  device: { type: "string", help: "where the backbone runs to extract features (fine-tuning: cpu only)", default: "cpu" },
  "cache-dir": { type: "string", help: "feature cache folder (default .cache/features)" },
  recompute: { type: "boolean", help: "extract features again even when cached" },
  seed: { type: "number", help: "seed of the random init, the probe or fine-tuning, and the low-shot subset", default: 0 },
  threads: { type: "number", help: "intra-op threads", default: defaultThreads },
  json: { type: "boolean", help: "print the result as JSON" },
  help: { type: "boolean", help: "show this help" },
};

const KNN: Record<string, FlagSpec> = {
  k: { type: "number", help: "neighbours", default: 20 },
  temperature: { type: "number", help: "T of the exp(similarity / T) vote weights", default: 0.07 },
  vote: { type: "string", help: "weighted (exp(s/T)) or majority", default: "weighted" },
};

/** Defaults of the flags the linear probe and fine-tuning share, per mode (lowshot takes either). */
const TRAINING_DEFAULTS: Record<"linear" | "finetune", { epochs: number; lr: number; wd: number; batch: number }> = {
  linear: { epochs: 100, lr: 0.3, wd: 1e-6, batch: 256 },
  finetune: { epochs: 20, lr: 0.05, wd: 1e-4, batch: 64 },
};

const TRAINING: Record<string, FlagSpec> = {
  epochs: { type: "number", help: "passes over the train set (linear: 100; finetune: 20)" },
  lr: { type: "number", help: "peak learning rate, SGD momentum 0.9, cosine to 0 (linear: 0.3; finetune: 0.05 for the trunk)" },
  wd: { type: "number", help: "weight decay (linear: 1e-6; finetune: 1e-4)" },
  batch: { type: "number", help: "batch size (linear: 256; finetune: 64, at most the train set's size)" },
};

const LINEAR: Record<string, FlagSpec> = {
  bn: { type: "boolean", help: "BatchNorm1d without affine on the features (--bn=false: plain linear layer)", default: true },
};

const FINETUNE: Record<string, FlagSpec> = {
  size: { type: "number", help: "side of the training crops and of the test crops (default: --crop, else 224; CIFAR: 32)" },
  iterations: { type: "number", help: "optimizer steps; when given it replaces --epochs" },
  "head-lr": { type: "number", help: "peak learning rate of the new linear head (default: --lr)" },
  "crop-scale": { type: "number", help: "smallest RandomResizedCrop area fraction (range [s, 1])", default: 0.08 },
  "head-bn": { type: "boolean", help: "BatchNorm1d without affine before the new head (--head-bn=false: plain linear head)", default: true },
  workers: { type: "number", help: "decode worker threads (0: sharp's pool in process)", default: 0 },
};

const LOWSHOT: Record<string, FlagSpec> = {
  pct: { type: "number", help: "percent of each class of --train: 1 or 10 (required)" },
  mode: { type: "string", help: "finetune, linear or knn on the subset", default: "finetune" },
  "subset-dir": { type: "string", help: "folder of the subset index files (default .cache/lowshot)" },
};

const SPECS: Record<Sub, Record<string, FlagSpec>> = {
  knn: { ...COMMON, ...KNN },
  linear: { ...COMMON, ...TRAINING, ...LINEAR },
  finetune: { ...COMMON, ...TRAINING, ...FINETUNE },
  lowshot: { ...COMMON, ...LOWSHOT, ...TRAINING, ...FINETUNE, ...LINEAR, ...KNN },
};

const SUMMARY: Record<Sub, string> = {
  knn: "weighted k-NN on L2-normalized frozen features (cosine, exp(s/T) votes; InstDisc / DINO)",
  linear: "linear probe on frozen cached features (SwAV eval_linear: SGD, cosine, 100 epochs)",
  finetune:
    "full fine-tuning: trunk + new linear head end to end (SGD Nesterov, cosine, random-resized crop + flip, BN in " +
    "train mode); top-1 and top-5 on --test. --scratch: the same from random init",
  lowshot:
    "fine-tuning (default; or --mode linear / knn) on a fixed, stratified, seeded pct% of each class of --train; " +
    "the subset is drawn once and stored as an index list",
};

function usage(): string {
  const lines = ["usage: seer eval <knn|linear|finetune|lowshot> --checkpoint CKPT --train SRC --test SRC [options]", "", "subcommands:"];
  for (const [name, summary] of Object.entries(SUMMARY)) lines.push(`  ${name.padEnd(8)} ${summary}`);
  lines.push("", "seer eval <subcommand> --help lists its options.");
  return lines.join("\n");
}

/** One evaluation's outcome, what --json prints. */
export interface EvalReport {
  method: string;
  checkpoint: string;
  arch: string;
  transform: string;
  train: SourceReport;
  test: SourceReport;
  params: Record<string, number | string | boolean>;
  top1: number;
  top5: number;
  nTrain: number;
  nTest: number;
  lowshot?: { pct: number; seed: number; file: string; created: boolean; classCounts: number[]; missing: number };
  seconds: number;
}

interface SourceReport {
  source: string;
  images: number;
  skipped: number;
  featuresFile?: string;
  fromCache: boolean;
}

const sourceReport = (s: FeatureSet): SourceReport => ({ source: s.source, images: s.length, skipped: s.totalSkipped, featuresFile: s.file, fromCache: s.fromCache });

function requireString(flags: FlagValues, name: string): string {
  const v = flags[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`--${name} is required`);
  return v;
}

function positiveInt(flags: FlagValues, name: string): number {
  const v = flags[name] as number;
  if (!Number.isInteger(v) || v < 1) throw new UsageError(`Expected a positive integer for --${name} but received ${v}`);
  return v;
}

/** The test (and feature) transform: the mode's default, then --resize / --crop. */
function transformFrom(flags: FlagValues, trainSpec: string, finetuneSize?: number): EvalTransform {
  const t = defaultEvalTransform(trainSpec);
  if (finetuneSize !== undefined && t.centerCrop > 0) {
    // Fine-tuning at --size: the test side of the same ratio as Resize(256) → CenterCrop(224).
    t.resizeShortSide = Math.round((finetuneSize * 256) / 224);
    t.centerCrop = finetuneSize;
  }
  for (const [flag, key] of [["resize", "resizeShortSide"], ["crop", "centerCrop"]] as const) {
    const v = flags[flag];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new UsageError(`Expected a non-negative integer for --${flag} but received ${String(v)}`);
    t[key] = v;
  }
  return t;
}

/** A small aligned table: method, top-1, top-5, n train, n test. */
export function formatEvalTable(r: EvalReport): string {
  const head = ["method", "top-1", "top-5", "n train", "n test"];
  const row = [r.method, r.top1.toFixed(2), r.top5.toFixed(2), String(r.nTrain), String(r.nTest)];
  const w = head.map((h, i) => Math.max(h.length, row[i]!.length));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ");
  const skipped = r.train.skipped + r.test.skipped;
  const cached = (s: SourceReport): string => (s.fromCache ? ", cached features" : "");
  const notes = [
    `checkpoint  ${r.checkpoint}`,
    `train       ${r.train.source} (${r.train.images} images${cached(r.train)})`,
    `test        ${r.test.source} (${r.test.images} images${cached(r.test)})`,
    `transform   ${r.transform}${skipped > 0 ? `; ${skipped} bad images skipped` : ""}`,
  ];
  if (r.lowshot) notes.push(`subset      ${r.lowshot.pct}% per class, seed ${r.lowshot.seed}: ${r.lowshot.file}${r.lowshot.created ? " (new)" : ""}`);
  return [...notes, "", line(head), line(row)].join("\n");
}

/** A --flag value for the probe or fine-tuning, or the mode's default. */
function trainingValue(flags: FlagValues, name: "epochs" | "lr" | "wd" | "batch", mode: "linear" | "finetune"): number {
  const v = flags[name];
  return typeof v === "number" ? v : TRAINING_DEFAULTS[mode][name];
}

function positiveNumber(name: string, value: number): number {
  if (!(value > 0)) throw new UsageError(`Expected a positive number for --${name} but received ${value}`);
  return value;
}

/** The backbone a run evaluates: the checkpoint's, or with --scratch its architecture at the random init. */
function openBackbone(flags: FlagValues, seed: number): LoadedBackbone {
  const spec = { checkpoint: requireString(flags, "checkpoint"), arch: flags.arch as string | undefined, smallImageStem: (flags["small-stem"] as boolean | undefined) || undefined, seed };
  const loaded = loadBackbone(spec);
  if (!flags.scratch || spec.checkpoint.startsWith("random")) return loaded;
  loaded.backbone.dispose();
  return loadBackbone({ checkpoint: `random:${loaded.arch}`, smallImageStem: loaded.smallImageStem, modelOptions: loaded.modelOptions, seed });
}

/** Runs one evaluation from parsed flags. */
async function runEval(sub: Sub, flags: FlagValues): Promise<EvalReport> {
  const started = Date.now();
  requireString(flags, "checkpoint"); // before any work: the first thing a user must give
  const trainSpec = requireString(flags, "train");
  const testSpec = requireString(flags, "test");
  const seed = flags.seed as number;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`Expected a non-negative integer for --seed but received ${seed}`);
  setNumThreads(positiveInt(flags, "threads"));
  const device = checkDevice(flags.device as string);
  const mode = (sub === "lowshot" ? (flags.mode as string) : sub) as Mode;
  if (mode !== "knn" && mode !== "linear" && mode !== "finetune") throw new UsageError(`Expected finetune, linear or knn for --mode but received '${String(mode)}'`);
  if (mode === "finetune" && device !== "cpu") throw new UsageError(`fine-tuning runs on the CPU only for now; got --device ${device}`);
  const vote = (flags.vote as string | undefined) ?? "weighted";
  if (mode === "knn" && vote !== "weighted" && vote !== "majority") throw new UsageError(`Expected weighted or majority for --vote but received '${vote}'`);
  const pct = sub === "lowshot" ? (flags.pct as number | undefined) : undefined;
  if (sub === "lowshot" && (pct === undefined || !(pct > 0 && pct <= 100))) throw new UsageError(`--pct is required: the percent of each class to train on (1 or 10)`);
  const cifar = /^builtin:cifar10\//.test(trainSpec);
  let size: number | undefined;
  if (mode === "finetune") {
    const given = flags.size ?? flags.crop;
    size = typeof given === "number" && given > 0 ? given : cifar ? 32 : 224;
    if (!Number.isInteger(size)) throw new UsageError(`Expected a positive integer for --size but received ${size}`);
  }
  const transform = transformFrom(flags, trainSpec, size);

  const [trainSource, testSource]: ImageSource[] = await Promise.all([resolveSource(trainSpec, { labels: true }), resolveSource(testSpec, { labels: true })]);
  if (classesDiffer(trainSource, testSource)) {
    throw new Error(`--train and --test have different classes (${describeClasses(trainSource)} vs ${describeClasses(testSource)}), so their labels do not match`);
  }
  let lowshot: EvalReport["lowshot"];
  let subsetIndices: number[] | undefined;
  if (pct !== undefined) {
    if (!isIndexed(trainSource)) throw new UsageError(`--train ${trainSpec}: low-shot subsets need a source with random access (a folder, a list or builtin:...)`);
    const s = lowShotSubset(trainSource, { pct, seed, dir: flags["subset-dir"] as string | undefined });
    subsetIndices = s.subset.indices;
    lowshot = { pct, seed, file: s.file, created: s.created, classCounts: s.subset.classCounts, missing: 0 };
  }
  const loaded = openBackbone(flags, seed);
  const scratch = flags.scratch ? " (scratch)" : "";
  try {
    const base = { checkpoint: loaded.description, arch: loaded.arch, transform: describeTransform(transform), ...(lowshot ? { lowshot } : {}) };
    const prefix = pct !== undefined ? `lowshot ${pct}% ` : "";
    if (mode === "finetune") {
      const r = await runFinetune(flags, loaded, trainSource, testSource, transform, size!, seed, subsetIndices);
      return { ...base, ...r, method: `${prefix}${r.method}${scratch}`, seconds: (Date.now() - started) / 1000 };
    }
    const r = await runOnFeatures(flags, mode, loaded, trainSource, testSource, transform, device, seed, subsetIndices, lowshot);
    return { ...base, ...r, method: `${prefix}${r.method}${scratch}`, seconds: (Date.now() - started) / 1000 };
  } finally {
    loaded.backbone.dispose();
  }
}

function classesDiffer(a: ImageSource, b: ImageSource): boolean {
  return a.classes !== undefined && b.classes !== undefined && a.classes.join("\n") !== b.classes.join("\n");
}

function describeClasses(s: ImageSource): string {
  const c = s.classes ?? [];
  return `${c.length}: ${c.slice(0, 5).join(", ")}${c.length > 5 ? "..." : ""}`;
}

type ModeResult = Pick<EvalReport, "method" | "train" | "test" | "params" | "top1" | "top5" | "nTrain" | "nTest">;

/** kNN or the linear probe on cached frozen features (of the low-shot subset's rows, when there is one). */
async function runOnFeatures(
  flags: FlagValues, mode: "knn" | "linear", loaded: LoadedBackbone, trainSource: ImageSource, testSource: ImageSource,
  transform: EvalTransform, device: ReturnType<typeof checkDevice>, seed: number, subsetIndices: number[] | undefined, lowshot: EvalReport["lowshot"],
): Promise<ModeResult> {
  let train: FeatureSet | undefined;
  let test: FeatureSet | undefined;
  let subset: FeatureSet | undefined;
  try {
    const extract = { modelId: loaded.identity, transform, batchSize: positiveInt(flags, "extract-batch"), device, cacheDir: flags["cache-dir"] as string | undefined, recompute: Boolean(flags.recompute) };
    train = await cachedFeatures(loaded.backbone, trainSource, { ...extract, progress: "train features" });
    test = await cachedFeatures(loaded.backbone, testSource, { ...extract, progress: "test features" });
    let fit = train;
    if (subsetIndices !== undefined) {
      subset = train.selectRecords(subsetIndices);
      fit = subset;
      lowshot!.missing = subsetIndices.length - subset.length;
    }
    const numClasses = numClassesOf(train, test);
    let result: ClassificationResult;
    let params: EvalReport["params"];
    let method: string;
    if (mode === "knn") {
      const k = positiveInt(flags, "k");
      const temperature = flags.temperature as number;
      const vote = (flags.vote as "weighted" | "majority" | undefined) ?? "weighted";
      result = knnClassify(fit.features, fit.labels, test.features, test.labels, { k, temperature, vote, numClasses });
      params = { k, temperature, vote };
      method = vote === "weighted" ? `knn k=${k} T=${temperature}` : `knn k=${k} majority`;
    } else {
      const epochs = trainingValue(flags, "epochs", "linear");
      const batchSize = trainingValue(flags, "batch", "linear");
      for (const [name, v] of [["epochs", epochs], ["batch", batchSize]] as const) {
        if (!Number.isInteger(v) || v < 1) throw new UsageError(`Expected a positive integer for --${name} but received ${v}`);
      }
      const lr = positiveNumber("lr", trainingValue(flags, "lr", "linear"));
      const weightDecay = trainingValue(flags, "wd", "linear");
      const batchNorm = Boolean(flags.bn);
      const r = linearProbe(fit.features, fit.labels, test.features, test.labels, { epochs, batchSize, lr, weightDecay, batchNorm, seed, numClasses, progress: "linear probe" });
      result = r;
      params = { epochs, batchSize, lr, weightDecay, batchNorm, seed, finalTrainLoss: r.finalTrainLoss };
      method = `linear${batchNorm ? " (bn)" : ""} ${epochs} ep`;
    }
    return { method, train: sourceReport(train), test: sourceReport(test), params, top1: result.top1, top5: result.top5, nTrain: fit.length, nTest: test.length };
  } finally {
    train?.dispose();
    test?.dispose();
    subset?.dispose();
  }
}

/** Full fine-tuning of the backbone on the train source (or its low-shot subset), tested on the decoded test set. */
async function runFinetune(
  flags: FlagValues, loaded: LoadedBackbone, trainSource: ImageSource, testSource: ImageSource, transform: EvalTransform,
  size: number, seed: number, subsetIndices: number[] | undefined,
): Promise<ModeResult> {
  if (!isIndexed(trainSource)) throw new UsageError(`--train ${trainSource.description}: fine-tuning needs a source with random access (a folder, a list or builtin:...)`);
  const train: IndexedImageSource = subsetIndices ? recordSubset(trainSource, subsetIndices, `${trainSource.description} (low-shot subset of ${subsetIndices.length})`) : trainSource;
  const batchSize = trainingValue(flags, "batch", "finetune");
  const iterations = flags.iterations as number | undefined;
  const epochs = trainingValue(flags, "epochs", "finetune");
  for (const [name, v] of [["batch", batchSize], ["epochs", epochs], ...(iterations !== undefined ? [["iterations", iterations] as const] : [])] as const) {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`Expected a positive integer for --${name} but received ${v}`);
  }
  const lr = positiveNumber("lr", trainingValue(flags, "lr", "finetune"));
  const headLr = positiveNumber("head-lr", (flags["head-lr"] as number | undefined) ?? lr);
  const weightDecay = trainingValue(flags, "wd", "finetune");
  const cropMin = flags["crop-scale"] as number;
  if (!(cropMin > 0 && cropMin <= 1)) throw new UsageError(`Expected a number in (0, 1] for --crop-scale but received ${cropMin}`);
  const workers = flags.workers as number;
  if (!Number.isInteger(workers) || workers < 0) throw new UsageError(`Expected a non-negative integer for --workers but received ${workers}`);
  if (train.length < batchSize) throw new UsageError(`--batch ${batchSize} is more than the ${train.length} train images; lower --batch`);

  let test: LabelledImages | undefined;
  try {
    test = await decodeLabelledImages(testSource, { transform, batchSize: positiveInt(flags, "extract-batch"), progress: "test images" });
    const r = await finetune(loaded.backbone, train, test, {
      imageSize: size, batchSize, lr, headLr, weightDecay, seed, workers, cropScale: [cropMin, 1], headBatchNorm: Boolean(flags["head-bn"]),
      ...(iterations !== undefined ? { iterations } : { epochs }), progress: "fine-tune",
    });
    const skipped = (s: Readonly<Record<string, number>>): number => Object.values(s).reduce((a, b) => a + b, 0);
    return {
      method: `finetune ${r.iterations} it (${r.epochs.toFixed(1)} ep)`,
      train: { source: train.description, images: train.length, skipped: 0, fromCache: false },
      test: { source: test.source, images: test.length, skipped: skipped(test.skipped), fromCache: false },
      params: { size, iterations: r.iterations, epochs: r.epochs, batchSize, lr, headLr, weightDecay, cropScale: cropMin, headBatchNorm: Boolean(flags["head-bn"]), seed, firstTrainLoss: r.firstTrainLoss, finalTrainLoss: r.finalTrainLoss },
      top1: r.top1, top5: r.top5, nTrain: r.nTrain, nTest: r.n,
    };
  } finally {
    test?.dispose();
  }
}

/**
 * `seer eval <knn|linear|finetune|lowshot> ...` with argv after "eval". Prints the result (table or JSON) and returns the
 * exit code: 0 done, 1 failed, 2 bad arguments.
 */
export async function evalCommand(argv: string[]): Promise<number> {
  const sub = argv[0];
  if (sub === undefined || sub === "--help" || sub === "help") {
    console.log(usage());
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "knn" && sub !== "linear" && sub !== "finetune" && sub !== "lowshot") {
    console.error(`seer eval: unknown subcommand '${sub}'\n\n${usage()}`);
    return 2;
  }
  const spec = SPECS[sub];
  try {
    const { flags, positionals } = parseArgs(argv.slice(1), spec);
    if (flags.help) {
      console.log(`usage: seer eval ${sub} [options]\n\n${SUMMARY[sub]}\n\noptions:\n${formatFlags(spec)}`);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const report = await runEval(sub, flags);
    console.log(flags.json ? JSON.stringify(report, null, 2) : formatEvalTable(report));
    return 0;
  } catch (e) {
    const err = e as Error;
    console.error(`seer eval ${sub}: ${err.message}`);
    if (!(e instanceof UsageError) && process.env.SEERKIT_DEBUG) console.error(err.stack);
    return e instanceof UsageError ? 2 : 1;
  }
}
