// The SEER study at small scale: the plan (which pretraining runs and which evaluations a budget asks for) and its
// execution, stage by stage, each stage's outcome cached in the output folder.
//
// Models: for every trunk × pool × method a pretraining run (train/trainer.ts pretrain(), presets swav-cifar-tiny /
// simclr-cifar-tiny with the budget's overrides, or SEER's seer-regnety-* for the full budget), plus one scratch twin
// per trunk: the same architecture at its random init. The twin is built with the same seed and the same
// createModel call as the run's trunk (manualSeed(run.seed) → createModel), so it is exactly the weights the
// pretraining started from.
//
// Stages, in order, per model: pretrain (pretrained models) → frozen (kNN and linear probe on the same features of
// the evaluation's train sample, tested on its test sample) → lowshot-<pct> (full fine-tuning on the stratified
// pct% subset of the evaluation's train source, tested on the same test sample). The evaluation images are
// decoded once per invocation (eval/features.ts decodeLabelledImages) and shared by every stage.
//
// Caching: each finished stage writes `results/<stage>.json` (atomically) holding its result and a key: the
// settings it depends on and the identity of the weights it evaluated (sha256 of backbone.safetensors). A rerun
// skips a stage whose file exists with the same key, and redoes it otherwise; a pretraining stage counts as done
// when its config has no run-changing difference (the trainer's own rule) and its weights exist. An unfinished
// pretraining run resumes from its own checkpoints (pretrain() does that); Ctrl-C during one saves a checkpoint and
// stops the study (status "interrupted"), Ctrl-C elsewhere loses only the stage in progress. `plan.json` records the budget: a folder
// holding another budget's study is refused rather than mixed.
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { resolveSource } from "../data/scan";
import { isIndexed, type IndexedImageSource } from "../data/sources";
import { Rng } from "../data/rng";
import { loadBackbone, type LoadedBackbone } from "../eval/backbone";
import { IMAGENET_EVAL_TRANSFORM, decodeLabelledImages, imageFeatures, numClassesOf, type EvalTransform, type LabelledImages } from "../eval/features";
import { finetune, recordSubset } from "../eval/finetune";
import { knnClassify } from "../eval/knn";
import { linearProbe } from "../eval/linear";
import { lowShotSubset } from "../eval/lowshot";
import { modelStateShapes } from "../models/registry";
import { setNumThreads } from "../tensor";
import { resolvePretrainConfig } from "../train/pretrain";
import { runChangingDifferences, type PretrainConfig } from "../train/presets";
import type { PretrainResult } from "../train/trainer";
import type { PoolSpec, ReproduceBudget, TrunkSpec } from "./budgets";

// ---------------------------------------------------------------------------------------------------------------
// The plan

export type Method = "swav" | "simclr";

/** A model of the study: a pretraining run's trunk, or a trunk's scratch twin. */
export interface StudyModel {
  /** e.g. "swav-uncurated-ry200mf", "scratch-ry200mf". */
  id: string;
  kind: "pretrained" | "scratch";
  trunk: TrunkSpec;
  method?: Method;
  pool?: PoolSpec;
}

export type StageKind = "pretrain" | "frozen" | "lowshot";

export interface Stage {
  /** File name of its result: "pretrain.swav-uncurated-ry200mf", "lowshot10.scratch-ry200mf". */
  id: string;
  kind: StageKind;
  model: StudyModel;
  /** Low-shot percent. */
  pct?: number;
}

export interface StudyPlan {
  models: StudyModel[];
  stages: Stage[];
}

/** The models and stages of a budget, in the order they run: scratch twins first (the baselines), then each run. */
export function planStudy(b: ReproduceBudget): StudyPlan {
  const models: StudyModel[] = [];
  for (const trunk of b.trunks) models.push({ id: `scratch-${trunk.id}`, kind: "scratch", trunk });
  for (const trunk of b.trunks) {
    for (const pool of b.pools) for (const method of b.methods) models.push({ id: `${method}-${pool.id}-${trunk.id}`, kind: "pretrained", trunk, method, pool });
  }
  const stages: Stage[] = [];
  for (const model of models) {
    if (model.kind === "pretrained") stages.push({ id: `pretrain.${model.id}`, kind: "pretrain", model });
    stages.push({ id: `frozen.${model.id}`, kind: "frozen", model });
    for (const l of b.eval.lowshot) stages.push({ id: `lowshot${l.pct}.${model.id}`, kind: "lowshot", model, pct: l.pct });
  }
  return { models, stages };
}

/** The pretraining config of a run: the method's tiny preset (SEER's recipe for `full`) with the budget's settings. */
export function pretrainConfigOf(b: ReproduceBudget, model: StudyModel, threads: number): PretrainConfig {
  if (model.kind !== "pretrained") throw new Error(`${model.id} is not a pretraining run`);
  const t = model.trunk;
  const design = Object.entries(t.design).map(([k, v]) => `model.${k}=${String(v)}`);
  const data = [`data.source=${model.pool!.source}`, `data.limit=${b.poolImages}`];
  const run = [`run.seed=${b.seed}`, `run.threads=${threads}`];
  if (b.name === "full") {
    const preset = `seer-regnety-${t.id.replace(/^ry/, "")}`;
    return resolvePretrainConfig(preset, [...data, ...run]).config;
  }
  const preset = model.method === "swav" ? "swav-cifar-tiny" : "simclr-cifar-tiny";
  const overrides = [...b.pretrain[model.method!], `model.arch=${t.arch}`, `model.smallImageStem=${t.smallImageStem}`, ...design, ...data, ...run];
  return resolvePretrainConfig(preset, overrides).config;
}

/** Trunk parameters, counted from the state-dict shapes without building the model (RegNetY-256GF is 1.3B). */
export function trunkParams(t: TrunkSpec): number {
  return modelStateShapes(t.arch, { ...t.design, numClasses: 0, smallImageStem: t.smallImageStem })
    .filter(([k]) => !/running_|num_batches_tracked/.test(k))
    .reduce((n, [, shape]) => n + shape.reduce((a, b) => a * b, 1), 0);
}

/** The eval transform of a budget: Resize(S · 256/224) → CenterCrop(S), ImageNet mean/std (the 224/256 ratio). */
export function evalTransformOf(b: ReproduceBudget): EvalTransform {
  return { ...IMAGENET_EVAL_TRANSFORM, resizeShortSide: Math.round((b.imageSize * 256) / 224), centerCrop: b.imageSize };
}

// ---------------------------------------------------------------------------------------------------------------
// Results

export interface PretrainOutcome {
  iterations: number;
  wallSeconds: number;
  imagesPerS: number;
  lastLoss?: number;
  backboneFile: string;
}

export interface FrozenOutcome {
  knnTop1: number;
  knnTop5: number;
  linearTop1: number;
  linearTop5: number;
  nTrain: number;
  nTest: number;
}

export interface LowShotOutcome {
  pct: number;
  top1: number;
  top5: number;
  nTrain: number;
  nTest: number;
  iterations: number;
  epochs: number;
  firstTrainLoss: number;
  finalTrainLoss: number;
}

/** What the report is rendered from; missing entries are stages not run (yet). */
export interface StudyResults {
  budget: ReproduceBudget;
  plan: StudyPlan;
  trunkParams: Record<string, number>;
  pretrain: Record<string, PretrainOutcome>;
  frozen: Record<string, FrozenOutcome>;
  /** model id → pct → outcome. */
  lowshot: Record<string, Record<number, LowShotOutcome>>;
  /** Seconds each stage took when it ran (cached ones: as recorded). */
  stageSeconds: Record<string, number>;
  /** This invocation's wall time, and whether every stage has its result. */
  wallSeconds: number;
  complete: boolean;
  /** Why the study stopped early: a StudyInterrupted (Ctrl-C during pretraining) or a stage's failure. */
  stoppedBy?: Error;
  /** The evaluation data, as described in the report. */
  evalData?: { train: string; test: string; nTrain: number; nTest: number; lowshotTrain: Record<number, number>; transform: string };
}

const STAGE_FORMAT = "seerkit-reproduce-stage-v1";
/** Part of every evaluation stage's key: bump it when an evaluation protocol changes, so cached results are redone. */
const EVAL_PROTOCOL = 2; // 2: BN before the fine-tuning head

interface StageRecord<R> {
  format: typeof STAGE_FORMAT;
  stage: string;
  key: string;
  seconds: number;
  finishedAt: string;
  result: R;
}

function writeJsonAtomic(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n");
  fs.renameSync(tmp, file);
}

/**
 * A pretraining stage's record when it is for this config, by the trainer's own rule (presets.ts
 * runChangingDifferences: threads, checkpointing and reporting keys may differ), and its weights exist.
 */
function readPretrainRecord(file: string, config: PretrainConfig): StageRecord<PretrainOutcome> | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    const r = JSON.parse(fs.readFileSync(file, "utf8")) as StageRecord<PretrainOutcome>;
    if (r.format !== STAGE_FORMAT || !fs.existsSync(r.result.backboneFile)) return undefined;
    return runChangingDifferences(JSON.parse(r.key) as object, config).length === 0 ? r : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The record of a run folder whose pretraining finished with this config (summary.json "completed" at its last
 * step, config.json without run-changing differences, backbone.safetensors present), for a results file that was
 * lost: the run is not opened again (resuming a finished run would rewrite its summary and weights).
 */
function completedRun(runDir: string, config: PretrainConfig, stage: string): StageRecord<PretrainOutcome> | undefined {
  try {
    const summary = JSON.parse(fs.readFileSync(path.join(runDir, "summary.json"), "utf8")) as Partial<PretrainResult>;
    const saved = JSON.parse(fs.readFileSync(path.join(runDir, "config.json"), "utf8")) as object;
    const done = summary.status === "completed" && summary.step === summary.totalSteps && summary.step === config.schedule.iterations;
    if (!done || !summary.backboneFile || !fs.existsSync(summary.backboneFile) || runChangingDifferences(saved, config).length > 0) return undefined;
    const result: PretrainOutcome = { iterations: summary.step!, wallSeconds: summary.wallSeconds ?? 0, imagesPerS: summary.imagesPerS ?? 0, ...(summary.lastLoss !== undefined ? { lastLoss: summary.lastLoss } : {}), backboneFile: summary.backboneFile };
    return { format: STAGE_FORMAT, stage, key: JSON.stringify(config), seconds: result.wallSeconds, finishedAt: new Date(fs.statSync(summary.backboneFile).mtimeMs).toISOString(), result };
  } catch {
    return undefined;
  }
}

/** A stage's cached record when its file exists and its key matches; undefined otherwise (a damaged file too). */
function readRecord<R>(file: string, key: string): StageRecord<R> | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    const r = JSON.parse(fs.readFileSync(file, "utf8")) as StageRecord<R>;
    return r.format === STAGE_FORMAT && r.key === key ? r : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The evaluation data, decoded once per invocation

class EvalData implements Disposable {
  private train?: LabelledImages;
  private test?: LabelledImages;
  private source?: IndexedImageSource;
  private readonly subsets = new Map<number, IndexedImageSource>();

  constructor(private readonly b: ReproduceBudget, private readonly outDir: string, private readonly progress: boolean) {}

  readonly transform = (): EvalTransform => evalTransformOf(this.b);

  /** The evaluation's full train source (labels from folders). */
  async trainSource(): Promise<IndexedImageSource> {
    if (!this.source) {
      const s = await resolveSource(this.b.eval.trainSource, { labels: true });
      if (!isIndexed(s)) throw new Error(`${this.b.eval.trainSource}: the evaluation's train source needs random access (a folder, a list or builtin:...)`);
      this.source = s;
    }
    return this.source;
  }

  /** A seeded sample of n records of an indexed source (all of them when n is 0 or too large), in record order. */
  private sample(s: IndexedImageSource, n: number, what: string): IndexedImageSource {
    if (n <= 0 || n >= s.length) return s;
    const picked = Array.from(Rng.forKey(this.b.seed, "reproduce", what).permutation(s.length).subarray(0, n)).sort((a, c) => a - c);
    return recordSubset(s, picked, `${s.description} (seeded sample of ${n})`);
  }

  async trainImages(): Promise<LabelledImages> {
    this.train ??= await decodeLabelledImages(this.sample(await this.trainSource(), this.b.eval.trainSamples, "train"), { transform: this.transform(), progress: this.progress ? "eval train images" : false });
    return this.train;
  }

  async testImages(): Promise<LabelledImages> {
    if (!this.test) {
      const s = await resolveSource(this.b.eval.testSource, { labels: true });
      if (!isIndexed(s)) throw new Error(`${this.b.eval.testSource}: the evaluation's test source needs random access`);
      const train = await this.trainSource();
      if (train.classes && s.classes && train.classes.join("\n") !== s.classes.join("\n")) {
        throw new Error(`${this.b.eval.trainSource} and ${this.b.eval.testSource} have different classes, so their labels do not match`);
      }
      this.test = await decodeLabelledImages(this.sample(s, this.b.eval.testSamples, "test"), { transform: this.transform(), progress: this.progress ? "eval test images" : false });
    }
    return this.test;
  }

  /** The stratified pct% subset of the train source (lowshot.ts; its index file lives in outDir/lowshot). */
  async lowshotTrain(pct: number): Promise<IndexedImageSource> {
    let s = this.subsets.get(pct);
    if (!s) {
      const source = await this.trainSource();
      const { subset } = lowShotSubset(source, { pct, seed: this.b.seed, dir: path.join(this.outDir, "lowshot") });
      s = recordSubset(source, subset.indices, `${source.description} (${pct}% per class: ${subset.indices.length})`);
      this.subsets.set(pct, s);
    }
    return s;
  }

  describe(): StudyResults["evalData"] {
    if (!this.train || !this.test) return undefined;
    const lowshotTrain: Record<number, number> = {};
    for (const [pct, s] of this.subsets) lowshotTrain[pct] = s.length;
    const t = this.transform();
    return { train: this.train.source, test: this.test.source, nTrain: this.train.length, nTest: this.test.length, lowshotTrain, transform: `resize ${t.resizeShortSide}, center crop ${t.centerCrop}` };
  }

  dispose(): void {
    this.train?.dispose();
    this.test?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Running

export interface StudyOptions {
  budget: ReproduceBudget;
  outDir: string;
  /** Intra-op threads (0: the machine's cores). */
  threads: number;
  /** Progress bars on stderr. Default true. */
  progress?: boolean;
  /** Report lines. Default console.log. */
  log?: (line: string) => void;
}

/** Thrown when a pretraining run was stopped by SIGINT/SIGTERM (its checkpoint is saved; rerun to continue). */
export class StudyInterrupted extends Error {
  override name = "StudyInterrupted";
}

const fmtS = (s: number): string => (s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${s.toFixed(1)}s`);
const pct = (v: number): string => `${v.toFixed(1)}%`;

const hashes = new Map<string, string>();

/**
 * The identity of a model's weights for the eval keys: sha256 of backbone.safetensors (its content, so a rewrite
 * of the same weights keeps the evaluations; a new run redoes them), or the random init's recipe.
 */
function weightsIdentity(b: ReproduceBudget, m: StudyModel, outDir: string): string {
  if (m.kind === "scratch") return `random:${m.trunk.arch} ${JSON.stringify(m.trunk.design)} stem ${m.trunk.smallImageStem} seed ${b.seed}`;
  const file = path.join(outDir, "pretrain", m.id, "backbone.safetensors");
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) return `${m.id} missing`;
  const memo = `${file} ${st.size} ${st.mtimeMs}`;
  let h = hashes.get(memo);
  if (!h) {
    h = createHash("sha256").update(fs.readFileSync(file)).digest("hex");
    hashes.set(memo, h);
  }
  return `${m.id} sha256 ${h}`;
}

function openModel(b: ReproduceBudget, m: StudyModel, outDir: string): LoadedBackbone {
  if (m.kind === "scratch") return loadBackbone({ checkpoint: `random:${m.trunk.arch}`, smallImageStem: m.trunk.smallImageStem, modelOptions: m.trunk.design, seed: b.seed });
  return loadBackbone({ checkpoint: path.join(outDir, "pretrain", m.id) });
}

/**
 * Runs (or resumes) the study of `o.budget` in `o.outDir` and returns its results; the caller renders the report.
 * A stage that fails, or a pretraining run stopped by a signal (StudyInterrupted), ends the study early: the
 * results then hold what finished and `stoppedBy`. A folder holding another study is an error thrown up front.
 */
export async function runStudy(o: StudyOptions): Promise<StudyResults> {
  const started = performance.now();
  const b = o.budget;
  const log = o.log ?? ((l: string) => console.log(l));
  const progress = o.progress ?? true;
  const outDir = path.resolve(o.outDir);
  checkPlanFile(outDir, b);
  const plan = planStudy(b);
  const results: StudyResults = {
    budget: b, plan, trunkParams: Object.fromEntries(b.trunks.map((t) => [t.id, trunkParams(t)])),
    pretrain: {}, frozen: {}, lowshot: {}, stageSeconds: {}, wallSeconds: 0, complete: false,
  };
  const threads = o.threads;
  const applyThreads = (): void => setNumThreads(threads > 0 ? threads : Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 16)));
  applyThreads();
  const data = new EvalData(b, outDir, progress);
  try {
    for (const [i, stage] of plan.stages.entries()) {
      const head = `[${i + 1}/${plan.stages.length}] ${stage.id}`;
      const file = path.join(outDir, "results", `${stage.id}.json`);
      const m = stage.model;
      if (stage.kind === "pretrain") {
        const config = pretrainConfigOf(b, m, threads);
        const key = JSON.stringify(config);
        const runDir = path.join(outDir, "pretrain", m.id);
        let rec = readPretrainRecord(file, config) ?? completedRun(runDir, config, stage.id);
        if (rec) {
          if (!fs.existsSync(file)) writeJsonAtomic(file, rec);
          log(`${head}: done before (${rec.result.iterations} iterations, final loss ${rec.result.lastLoss?.toFixed(3) ?? "-"})`);
        } else {
          log(`${head}: ${m.method} on the ${m.pool!.id} pool (${b.poolImages} images), ${m.trunk.label}, ${config.schedule.iterations} iterations of ${config.data.batchSize}`);
          const { pretrain } = await import("../train/trainer");
          const t0 = performance.now();
          const r = await pretrain({ config, outDir: runDir, name: m.id, progress, log: (l) => log(`    ${l}`) });
          applyThreads();
          if (r.status !== "completed" || !r.backboneFile) throw new StudyInterrupted(`pretraining ${m.id} was interrupted at step ${r.step} of ${r.totalSteps}; its checkpoint is saved in ${runDir}. Run the same command to continue.`);
          const result: PretrainOutcome = { iterations: r.step, wallSeconds: r.wallSeconds, imagesPerS: r.imagesPerS, ...(r.lastLoss !== undefined ? { lastLoss: r.lastLoss } : {}), backboneFile: r.backboneFile };
          rec = { format: STAGE_FORMAT, stage: stage.id, key, seconds: (performance.now() - t0) / 1000, finishedAt: new Date().toISOString(), result };
          writeJsonAtomic(file, rec);
          log(`${head}: done in ${fmtS(rec.seconds)}, final loss ${r.lastLoss?.toFixed(3) ?? "-"}`);
        }
        results.pretrain[m.id] = rec.result;
        results.stageSeconds[stage.id] = rec.seconds;
        continue;
      }

      if (stage.kind === "frozen") {
        const e = b.eval;
        const key = JSON.stringify({ protocol: EVAL_PROTOCOL, weights: weightsIdentity(b, m, outDir), train: e.trainSource, trainSamples: e.trainSamples, test: e.testSource, testSamples: e.testSamples, transform: evalTransformOf(b), knn: e.knn, linear: e.linear, seed: b.seed });
        let rec = readRecord<FrozenOutcome>(file, key);
        if (rec) log(`${head}: done before (kNN ${pct(rec.result.knnTop1)}, linear ${pct(rec.result.linearTop1)})`);
        else {
          const t0 = performance.now();
          const [train, test] = [await data.trainImages(), await data.testImages()];
          const loaded = openModel(b, m, outDir);
          try {
            using trainF = imageFeatures(loaded.backbone, train);
            using testF = imageFeatures(loaded.backbone, test);
            const numClasses = numClassesOf(trainF, testF);
            const knn = knnClassify(trainF.features, trainF.labels, testF.features, testF.labels, { ...e.knn, numClasses });
            const lin = linearProbe(trainF.features, trainF.labels, testF.features, testF.labels, { ...e.linear, seed: b.seed, numClasses });
            const result: FrozenOutcome = { knnTop1: knn.top1, knnTop5: knn.top5, linearTop1: lin.top1, linearTop5: lin.top5, nTrain: train.length, nTest: test.length };
            rec = { format: STAGE_FORMAT, stage: stage.id, key, seconds: (performance.now() - t0) / 1000, finishedAt: new Date().toISOString(), result };
          } finally {
            loaded.backbone.dispose();
          }
          writeJsonAtomic(file, rec);
          log(`${head}: kNN ${pct(rec.result.knnTop1)}, linear ${pct(rec.result.linearTop1)} (top-1 on ${rec.result.nTest} test images; ${fmtS(rec.seconds)})`);
        }
        results.frozen[m.id] = rec.result;
        results.stageSeconds[stage.id] = rec.seconds;
        continue;
      }

      const spec = b.eval.lowshot.find((l) => l.pct === stage.pct)!;
      const key = JSON.stringify({ protocol: EVAL_PROTOCOL, weights: weightsIdentity(b, m, outDir), train: b.eval.trainSource, test: b.eval.testSource, testSamples: b.eval.testSamples, transform: evalTransformOf(b), spec, cropScale: b.eval.cropScale, weightDecay: b.eval.weightDecay, seed: b.seed });
      let rec = readRecord<LowShotOutcome>(file, key);
      if (rec) log(`${head}: done before (top-1 ${pct(rec.result.top1)})`);
      else {
        const t0 = performance.now();
        const test = await data.testImages();
        const train = await data.lowshotTrain(spec.pct);
        const loaded = openModel(b, m, outDir);
        try {
          const r = await finetune(loaded.backbone, train, test, {
            imageSize: b.imageSize, iterations: spec.iterations, batchSize: Math.min(spec.batchSize, train.length), lr: spec.lr, headLr: spec.headLr,
            weightDecay: b.eval.weightDecay, cropScale: [b.eval.cropScale, 1], seed: b.seed, progress: progress ? `fine-tune ${spec.pct}%` : false,
          });
          const result: LowShotOutcome = { pct: spec.pct, top1: r.top1, top5: r.top5, nTrain: r.nTrain, nTest: r.n, iterations: r.iterations, epochs: r.epochs, firstTrainLoss: r.firstTrainLoss, finalTrainLoss: r.finalTrainLoss };
          rec = { format: STAGE_FORMAT, stage: stage.id, key, seconds: (performance.now() - t0) / 1000, finishedAt: new Date().toISOString(), result };
        } finally {
          loaded.backbone.dispose();
        }
        writeJsonAtomic(file, rec);
        log(`${head}: fine-tuned on ${rec.result.nTrain} images (${rec.result.epochs.toFixed(1)} epochs): top-1 ${pct(rec.result.top1)}, top-5 ${pct(rec.result.top5)} (${fmtS(rec.seconds)})`);
      }
      (results.lowshot[m.id] ??= {})[spec.pct] = rec.result;
      results.stageSeconds[stage.id] = rec.seconds;
    }
    results.complete = true;
  } catch (e) {
    results.stoppedBy = e as Error; // the caller still renders what finished
  } finally {
    // Describe the evaluation data even when a stage failed (a partial report still says what was measured). A
    // rerun whose stages were all cached decodes nothing: it reads the description an earlier invocation saved.
    if (!results.evalData) {
      const file = path.join(outDir, "eval-data.json");
      const saved = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as StudyResults["evalData"]) : undefined;
      if (data.describe()) {
        // The subset sizes, from their index files (cheap: no image is decoded).
        for (const l of b.eval.lowshot) await data.lowshotTrain(l.pct).catch(() => undefined);
      }
      const d = data.describe();
      if (d) {
        results.evalData = { ...d, lowshotTrain: { ...saved?.lowshotTrain, ...d.lowshotTrain } };
        writeJsonAtomic(file, results.evalData);
      } else if (saved) results.evalData = saved;
    }
    data.dispose();
    results.wallSeconds = (performance.now() - started) / 1000;
  }
  return results;
}

/** Writes plan.json, or refuses a folder whose plan.json is another budget's or has other settings. */
function checkPlanFile(outDir: string, b: ReproduceBudget): void {
  const file = path.join(outDir, "plan.json");
  const text = JSON.stringify({ format: "seerkit-reproduce-plan-v1", budget: b }, null, 2) + "\n";
  if (fs.existsSync(file)) {
    const saved = fs.readFileSync(file, "utf8");
    if (saved !== text) {
      let name = "?";
      try {
        name = (JSON.parse(saved) as { budget?: { name?: string } }).budget?.name ?? "?";
      } catch {
        // unreadable: reported below as another study
      }
      throw new Error(`${outDir} holds a reproduce study with other settings (budget '${name}'; see ${file}); use another --out folder, or delete that one to start over`);
    }
    return;
  }
  writeJsonAtomic(file, JSON.parse(text));
}
