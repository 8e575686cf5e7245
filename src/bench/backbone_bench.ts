// Backbone training-step benchmark: seerkit's RegNet/ResNet against torchvision's in PyTorch eager, one after the
// other in one run, on the same libtorch build, thread count, batch and resolution.
//
// A step is what a supervised training loop does: forward, cross-entropy on random labels (1000 classes), backward,
// SGD with momentum 0.9 (lr 0.01, weight decay 5e-5, pycls's recipe), `loss.item()` (a sync point). Both sides time
// `steps` steps after `warmup` untimed ones, each on its own, and report the median step time (robust to other
// processes on the machine stealing a step now and then) and the mean. PyTorch's side is bench/torchvision_step.py, run with
// Debian's python3-torch and python3-torchvision (torchvision 0.14 builds the reference model).
import { execFileSync } from "child_process";
import * as os from "os";
import * as path from "path";
import { getModelEntry } from "../models/registry_table";
import { createModel } from "../models/registry";
import { crossEntropy } from "../nn/functional";
import { SGD } from "../optim";
import { getNumThreads, manualSeed, randint, randn, setNumThreads, tidy, torchVersion } from "../tensor";
import { PACKAGE_ROOT } from "../util/paths";

export interface BackboneBenchOptions {
  /** A model torchvision ships (any name or alias createModel accepts), e.g. "regnet_y_400mf", "resnet18". */
  arch: string;
  /** Images per step. */
  batch: number;
  /** Input height and width. */
  size: number;
  /** Timed steps (after `warmup` untimed ones). */
  steps: number;
  /** Untimed steps first. Default 3. */
  warmup?: number;
  /** Intra-op threads, the same on both sides. */
  threads: number;
  /** Interpreter with torch and torchvision (Debian's /usr/bin/python3). */
  python: string;
}

export interface BackboneEngineResult {
  engine: string;
  threads: number;
  /** Median step time (upper median for an even count). */
  step_ms: number;
  mean_step_ms: number;
  /** batch / median step time. */
  images_per_s: number;
}

export interface BackboneBenchResult {
  /** The canonical (torchvision) model name. */
  arch: string;
  batch: number;
  size: number;
  steps: number;
  warmup: number;
  seerkit: BackboneEngineResult;
  torchvision: BackboneEngineResult;
  /** seerkit images/s ÷ torchvision images/s: above 1 means seerkit is faster. */
  throughputRatio: number;
  /** The 1-minute load average before the run: other processes on the machine make both numbers noisy. */
  loadAverage: number;
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`Expected a positive integer for ${name} but received ${v}`);
}

function benchSeerkit(arch: string, o: BackboneBenchOptions, warmup: number): BackboneEngineResult {
  setNumThreads(o.threads);
  manualSeed(0);
  using model = createModel(arch, { numClasses: 1000 });
  model.train();
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-5 });
  using images = randn([o.batch, 3, o.size, o.size]); // (B, 3, H, W)
  using labels = randint(0, 1000, [o.batch]); // (B)
  const step = (): number =>
    tidy(() => {
      const loss = crossEntropy(model.forward(images), labels); // ()
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss.item(); // a sync point, as PyTorch's loss.item()
    });
  try {
    for (let i = 0; i < warmup; i++) step();
    const times: number[] = [];
    for (let i = 0; i < o.steps; i++) {
      const t = process.hrtime.bigint();
      step();
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    const stepMs = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!; // as bench/torchvision_step.py
    const meanMs = times.reduce((a, b) => a + b, 0) / times.length;
    return { engine: `seerkit (libtorch ${torchVersion()})`, threads: getNumThreads(), step_ms: stepMs, mean_step_ms: meanMs, images_per_s: (o.batch / stepMs) * 1e3 };
  } finally {
    opt.dispose();
  }
}

function benchTorchvision(arch: string, o: BackboneBenchOptions, warmup: number): BackboneEngineResult {
  const script = path.join(PACKAGE_ROOT, "bench", "torchvision_step.py");
  const args = [script, arch, String(o.batch), String(o.size), String(o.steps), String(warmup), String(o.threads)];
  const out = execFileSync(o.python, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  return JSON.parse(out.trim().split("\n").pop()!) as BackboneEngineResult;
}

/** Times seerkit's model, then torchvision's, in this process and one Python process. */
export function runBackboneBench(o: BackboneBenchOptions): BackboneBenchResult {
  const entry = getModelEntry(o.arch);
  if (!entry.inTorchvision) throw new RangeError(`${entry.name} is not in torchvision 0.14; benchmark one of the models torchvision ships`);
  for (const [name, v] of [["batch", o.batch], ["size", o.size], ["steps", o.steps], ["threads", o.threads]] as const) checkPositiveInt(name, v);
  const warmup = o.warmup ?? 3;
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`Expected a non-negative integer for warmup but received ${warmup}`);
  const loadAverage = os.loadavg()[0]!;
  const seerkit = benchSeerkit(entry.name, o, warmup);
  const torchvision = benchTorchvision(entry.name, o, warmup);
  return {
    arch: entry.name, batch: o.batch, size: o.size, steps: o.steps, warmup,
    seerkit, torchvision, throughputRatio: seerkit.images_per_s / torchvision.images_per_s, loadAverage,
  };
}

export function formatBackboneBench(r: BackboneBenchResult): string {
  const row = (label: string, e: BackboneEngineResult): string =>
    `  ${label.padEnd(12)} ${e.step_ms.toFixed(1).padStart(8)} ms/step (median; mean ${e.mean_step_ms.toFixed(1)})  ` +
    `${e.images_per_s.toFixed(1).padStart(8)} images/s  (${e.engine})`;
  return [
    `${r.arch} training step: batch ${r.batch}, 3x${r.size}x${r.size}, SGD momentum 0.9, cross-entropy; ` +
      `${r.seerkit.threads} threads, ${r.steps} steps after ${r.warmup} warm-up (load average ${r.loadAverage.toFixed(2)})`,
    row("seerkit", r.seerkit),
    row("torchvision", r.torchvision),
    `  ratio (seerkit/torchvision images/s): ${r.throughputRatio.toFixed(3)}`,
  ].join("\n");
}
