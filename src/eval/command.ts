// `seer eval knn|linear|lowshot`: evaluate a backbone's frozen features on a labelled train/test pair.
//
//   seer eval knn     --checkpoint CKPT --train SRC --test SRC [--k 20 --temperature 0.07]
//   seer eval linear  --checkpoint CKPT --train SRC --test SRC [--epochs 100 --lr 0.3 --bn]
//   seer eval lowshot --checkpoint CKPT --train SRC --test SRC --pct 1|10 [--method linear|knn]
//
// Features of each source are extracted once per checkpoint and transform and cached (features.ts); the low-shot
// subsets are drawn once per source, pct and seed and stored as index lists (lowshot.ts). The result is a small
// table (method, top-1, top-5, n train, n test), or JSON with --json. Protocols: knn.ts (InstDisc / DINO kNN),
// linear.ts (SwAV eval_linear.py on cached features).
import * as os from "os";
import { formatFlags, parseArgs, UsageError, type FlagSpec, type FlagValues } from "../cli/args";
import { resolveSource } from "../data/scan";
import { isIndexed, type ImageSource } from "../data/sources";
import { checkDevice, setNumThreads } from "../tensor";
import { loadBackbone } from "./backbone";
import { cachedFeatures, defaultEvalTransform, describeTransform, type EvalTransform, type FeatureSet, numClassesOf } from "./features";
import { type ClassificationResult, knnClassify } from "./knn";
import { linearProbe } from "./linear";
import { lowShotSubset } from "./lowshot";

type Sub = "knn" | "linear" | "lowshot";

const defaultThreads = Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 16));

const COMMON: Record<string, FlagSpec> = {
  checkpoint: { type: "string", help: "random:<arch>, a .safetensors state dict, a checkpoint folder or a run folder (required)" },
  arch: { type: "string", help: "model name (seer models); overrides what the checkpoint records" },
  "small-stem": { type: "boolean", help: "CIFAR stem (3x3 stride 1) instead of the ImageNet one" },
  train: { type: "string", help: "labelled train source: builtin:NAME/SPLIT, a folder of class folders, a list (required)" },
  test: { type: "string", help: "labelled test source, as --train (required)" },
  resize: { type: "number", help: "resize the short side to this before cropping; 0: no resize (default 256; CIFAR: 0)" },
  crop: { type: "number", help: "center crop size; 0: images as decoded (default 224; CIFAR: 0)" },
  "extract-batch": { type: "number", help: "images per forward pass when extracting features", default: 64 },
  device: { type: "string", help: "where the backbone runs to extract features", default: "cpu" },
  "cache-dir": { type: "string", help: "feature cache folder (default .cache/features)" },
  recompute: { type: "boolean", help: "extract features again even when cached" },
  seed: { type: "number", help: "seed of the random init, the probe and the low-shot subset", default: 0 },
  threads: { type: "number", help: "intra-op threads", default: defaultThreads },
  json: { type: "boolean", help: "print the result as JSON" },
  help: { type: "boolean", help: "show this help" },
};

const KNN: Record<string, FlagSpec> = {
  k: { type: "number", help: "neighbours", default: 20 },
  temperature: { type: "number", help: "T of the exp(similarity / T) vote weights", default: 0.07 },
  vote: { type: "string", help: "weighted (exp(s/T)) or majority", default: "weighted" },
};

const LINEAR: Record<string, FlagSpec> = {
  epochs: { type: "number", help: "linear probe epochs", default: 100 },
  lr: { type: "number", help: "peak learning rate (SGD, momentum 0.9, cosine to 0 over the epochs)", default: 0.3 },
  wd: { type: "number", help: "weight decay", default: 1e-6 },
  batch: { type: "number", help: "probe batch size", default: 256 },
  bn: { type: "boolean", help: "BatchNorm1d without affine on the features (--bn=false: plain linear layer)", default: true },
};

const LOWSHOT: Record<string, FlagSpec> = {
  pct: { type: "number", help: "percent of each class of --train: 1 or 10 (required)" },
  method: { type: "string", help: "linear or knn on the subset", default: "linear" },
  "subset-dir": { type: "string", help: "folder of the subset index files (default .cache/lowshot)" },
};

const SPECS: Record<Sub, Record<string, FlagSpec>> = {
  knn: { ...COMMON, ...KNN },
  linear: { ...COMMON, ...LINEAR },
  lowshot: { ...COMMON, ...LOWSHOT, ...KNN, ...LINEAR },
};

const SUMMARY: Record<Sub, string> = {
  knn: "weighted k-NN on L2-normalized frozen features (cosine, exp(s/T) votes; InstDisc / DINO)",
  linear: "linear probe on frozen cached features (SwAV eval_linear: SGD, cosine, 100 epochs)",
  lowshot:
    "linear probe (or kNN) trained on a fixed, stratified, seeded pct% of each class of --train; the subset is drawn " +
    "once and stored as an index list. Full fine-tuning on the subset is not implemented yet (a later release).",
};

function usage(): string {
  const lines = ["usage: seer eval <knn|linear|lowshot> --checkpoint CKPT --train SRC --test SRC [options]", "", "subcommands:"];
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

function transformFrom(flags: FlagValues, trainSpec: string): EvalTransform {
  const t = defaultEvalTransform(trainSpec);
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
  const notes = [
    `checkpoint  ${r.checkpoint}`,
    `train       ${r.train.source} (${r.train.images} images${r.train.fromCache ? ", cached features" : ""})`,
    `test        ${r.test.source} (${r.test.images} images${r.test.fromCache ? ", cached features" : ""})`,
    `transform   ${r.transform}${skipped > 0 ? `; ${skipped} bad images skipped` : ""}`,
  ];
  if (r.lowshot) notes.push(`subset      ${r.lowshot.pct}% per class, seed ${r.lowshot.seed}: ${r.lowshot.file}${r.lowshot.created ? " (new)" : ""}`);
  return [...notes, "", line(head), line(row)].join("\n");
}

/** Runs one evaluation from parsed flags. */
async function runEval(sub: Sub, flags: FlagValues): Promise<EvalReport> {
  const started = Date.now();
  const checkpoint = requireString(flags, "checkpoint");
  const trainSpec = requireString(flags, "train");
  const testSpec = requireString(flags, "test");
  const transform = transformFrom(flags, trainSpec);
  const seed = flags.seed as number;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`Expected a non-negative integer for --seed but received ${seed}`);
  setNumThreads(positiveInt(flags, "threads"));
  const device = checkDevice(flags.device as string);
  const method = sub === "lowshot" ? (flags.method as string) : sub;
  if (method !== "knn" && method !== "linear") throw new UsageError(`Expected linear or knn for --method but received '${method}'`);
  const vote = (flags.vote as string | undefined) ?? "weighted";
  if (method === "knn" && vote !== "weighted" && vote !== "majority") throw new UsageError(`Expected weighted or majority for --vote but received '${vote}'`);
  const pct = sub === "lowshot" ? (flags.pct as number | undefined) : undefined;
  if (sub === "lowshot" && (pct === undefined || !(pct > 0 && pct <= 100))) throw new UsageError(`--pct is required: the percent of each class to train on (1 or 10)`);

  const [trainSource, testSource]: ImageSource[] = await Promise.all([resolveSource(trainSpec, { labels: true }), resolveSource(testSpec, { labels: true })]);
  const loaded = loadBackbone({ checkpoint, arch: flags.arch as string | undefined, smallImageStem: (flags["small-stem"] as boolean | undefined) || undefined, seed });
  let train: FeatureSet | undefined;
  let test: FeatureSet | undefined;
  let subset: FeatureSet | undefined;
  try {
    const extract = { modelId: loaded.identity, transform, batchSize: positiveInt(flags, "extract-batch"), device, cacheDir: flags["cache-dir"] as string | undefined, recompute: Boolean(flags.recompute) };
    train = await cachedFeatures(loaded.backbone, trainSource, { ...extract, progress: "train features" });
    test = await cachedFeatures(loaded.backbone, testSource, { ...extract, progress: "test features" });
    loaded.backbone.dispose(); // the probes only need the features
    if (train.classes && test.classes && train.classes.join("\n") !== test.classes.join("\n")) {
      throw new Error(`--train and --test have different classes (${train.classes.length}: ${train.classes.slice(0, 5).join(", ")}... vs ${test.classes.length}: ${test.classes.slice(0, 5).join(", ")}...), so their labels do not match`);
    }

    let lowshot: EvalReport["lowshot"];
    let fit = train;
    if (pct !== undefined) {
      if (!isIndexed(trainSource)) throw new UsageError(`--train ${trainSpec}: low-shot subsets need a source with random access (a folder, a list or builtin:...)`);
      const s = lowShotSubset(trainSource, { pct, seed, dir: flags["subset-dir"] as string | undefined });
      subset = train.selectRecords(s.subset.indices);
      fit = subset;
      lowshot = { pct, seed, file: s.file, created: s.created, classCounts: s.subset.classCounts, missing: s.subset.indices.length - subset.length };
    }

    const numClasses = numClassesOf(train, test);
    let result: ClassificationResult;
    let params: EvalReport["params"];
    let label: string;
    if (method === "knn") {
      const k = positiveInt(flags, "k");
      const temperature = flags.temperature as number;
      result = knnClassify(fit.features, fit.labels, test.features, test.labels, { k, temperature, vote: vote as "weighted" | "majority", numClasses });
      params = { k, temperature, vote };
      label = vote === "weighted" ? `knn k=${k} T=${temperature}` : `knn k=${k} majority`;
    } else {
      const epochs = positiveInt(flags, "epochs");
      const batchSize = positiveInt(flags, "batch");
      const lr = flags.lr as number;
      const weightDecay = flags.wd as number;
      const batchNorm = Boolean(flags.bn);
      const r = linearProbe(fit.features, fit.labels, test.features, test.labels, { epochs, batchSize, lr, weightDecay, batchNorm, seed, numClasses, progress: "linear probe" });
      result = r;
      params = { epochs, batchSize, lr, weightDecay, batchNorm, seed, finalTrainLoss: r.finalTrainLoss };
      label = `linear${batchNorm ? " (bn)" : ""} ${epochs} ep`;
    }
    if (pct !== undefined) label = `lowshot ${pct}% ${label}`;
    return {
      method: label,
      checkpoint: loaded.description,
      arch: loaded.arch,
      transform: describeTransform(transform),
      train: sourceReport(train),
      test: sourceReport(test),
      params,
      top1: result.top1,
      top5: result.top5,
      nTrain: fit.length,
      nTest: test.length,
      ...(lowshot ? { lowshot } : {}),
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    loaded.backbone.dispose();
    train?.dispose();
    test?.dispose();
    subset?.dispose();
  }
}

/**
 * `seer eval <knn|linear|lowshot> ...` with argv after "eval". Prints the result (table or JSON) and returns the
 * exit code: 0 done, 1 failed, 2 bad arguments.
 */
export async function evalCommand(argv: string[]): Promise<number> {
  const sub = argv[0];
  if (sub === undefined || sub === "--help" || sub === "help") {
    console.log(usage());
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "knn" && sub !== "linear" && sub !== "lowshot") {
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
