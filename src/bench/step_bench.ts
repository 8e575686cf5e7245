// `seer bench step`: images/s of a full SSL training step (forward, loss, backward, optimizer), seerkit against
// PyTorch eager side by side in one run.
//
// The step is /work/shared/anchors/pytorch_cpu_step.py's, so the two numbers compare like for like: random crops
// (2xBIG + NSMALLxSMALL, each resolution one trunk pass) -> trunk without classifier -> head Linear(d, 2048) + BN1d +
// ReLU + Linear(2048, 128) -> L2 normalize -> 3000 bias-free prototypes (rows re-normalized every step) -> SwAV
// swapped prediction (Sinkhorn 3 iterations, ε 0.05, τ 0.1, codes from the two large crops) -> backward ->
// SGD(lr 0.1, momentum 0.9, weight decay 1e-6). `--method simclr` times the same trunk and head with NT-Xent
// (τ 0.1) over two views instead; the anchor has no SimCLR step, so only seerkit's number is printed then.
// What differs: the anchor sums the swapped-prediction terms where SwAV (and seerkit) average them; the cost is
// the same.
//
// Rounds alternate the engines (seerkit's timed steps, then one run of the anchor script, ...) and each engine's
// figure is its best round, which damps a machine shared with other processes. Both run with OpenMP's passive
// wait policy unless OMP_WAIT_POLICY is set (with the spinning default, a shared machine makes step times swing
// several-fold). The anchor is found at <repo>/../shared/anchors/pytorch_cpu_step.py, or given with --anchor.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { formatFlags, parseArgs, UsageError, type FlagSpec } from "../cli/args";
import { parseCropSpec, type CropGroup } from "../data/multicrop";
import { PACKAGE_ROOT } from "../util/paths";

export interface StepBenchOptions {
  /** Trunk name (createModel); the anchor needs a torchvision name. */
  arch: string;
  method: "swav" | "simclr";
  /** Images per step. */
  batch: number;
  /** Crop spec, e.g. "2x64+4x32" (SimCLR: "2xS"). */
  crops: string;
  threads: number;
  /** Where seerkit runs ("cpu", "cuda:0"); the anchor is CPU only. */
  device: string;
  /** Timed steps per round (after 2 untimed ones, as the anchor). */
  steps: number;
  /** Rounds, alternating engines; the best round counts. */
  rounds: number;
  /** The anchor script, or undefined to skip it. */
  anchor?: string;
  python: string;
}

export interface EngineTiming {
  engine: string;
  step_ms: number;
  images_per_s: number;
  /** step_ms of every round. */
  rounds_ms: number[];
}

export interface StepBenchResult {
  arch: string;
  method: "swav" | "simclr";
  batch: number;
  crops: string;
  threads: number;
  device: string;
  steps: number;
  rounds: number;
  seerkit: EngineTiming;
  pytorch?: EngineTiming;
  /** seerkit images/s ÷ PyTorch images/s (above 1: seerkit is faster). */
  ratio?: number;
  /** Why there is no PyTorch number, when there is none. */
  note?: string;
  /** 1-minute load average before the run. */
  loadAverage: number;
}

/** The anchor's crop arguments (BIG, SMALL, NSMALL), or why these crops do not fit it. */
function anchorCrops(crops: readonly CropGroup[]): { big: number; small: number; nsmall: number } | string {
  if (crops[0]!.count !== 2 || crops.length > 2) return "the anchor script takes 2 large crops and at most one group of small crops";
  return { big: crops[0]!.size, small: crops[1]?.size ?? crops[0]!.size, nsmall: crops[1]?.count ?? 0 };
}

/** The default anchor location: <repo>/../shared/anchors/pytorch_cpu_step.py. */
export function defaultAnchorPath(): string {
  return path.resolve(PACKAGE_ROOT, "..", "shared", "anchors", "pytorch_cpu_step.py");
}

/** seerkit's step: builds the model once and returns a function that times `steps` steps (ms per step). */
async function seerkitStepper(o: StepBenchOptions, crops: readonly CropGroup[]): Promise<{ time: () => number; engine: string; dispose: () => void }> {
  const T = await import("../tensor");
  const { createModel } = await import("../models/registry");
  const { ProjectionHead, SimCLR, SwAV, SwAVPrototypes } = await import("../ssl");
  const { SGD } = await import("../optim");
  T.setNumThreads(o.threads);
  T.manualSeed(0);
  const device = T.checkDevice(o.device);
  const backbone = createModel(o.arch, { numClasses: 0 });
  const head = new ProjectionHead([backbone.numFeatures, 2048, 128], { batchNorm: true });
  let forward: (inputs: import("../tensor").Tensor[]) => import("../tensor").Tensor;
  let model: import("../nn/module").Module;
  let prototypes: InstanceType<typeof SwAVPrototypes> | undefined;
  if (o.method === "swav") {
    prototypes = new SwAVPrototypes(128, 3000, { frozenUntilStep: 0 });
    const swav = new SwAV(backbone, { numCrops: crops.map((g) => g.count), head, prototypes, loss: { sinkhornIterations: 3, epsilon: 0.05, temperature: 0.1 } });
    model = swav;
    forward = (inputs) => swav.forward(inputs).loss;
  } else {
    const simclr = new SimCLR(backbone, { head, loss: { temperature: 0.1 } });
    model = simclr;
    forward = (inputs) => simclr.forward(inputs[0]!);
  }
  model.to(device);
  model.train();
  const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-6 });
  const inputs = crops.map((g) => T.keep(T.randn([g.count * o.batch, 3, g.size, g.size], { device }))); // crop-major groups
  const swavPrototypes = prototypes;
  const step = (): number =>
    T.tidy(() => {
      swavPrototypes?.normalize(); // the anchor re-normalizes before each forward
      const loss = forward(inputs);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss.item(); // a sync point, as the anchor's loss.item()
    });
  step();
  step(); // untimed, as the anchor
  return {
    engine: `seerkit (libtorch ${T.torchVersion()}, ${device})`,
    time: () => {
      const t = process.hrtime.bigint();
      for (let i = 0; i < o.steps; i++) step();
      return Number(process.hrtime.bigint() - t) / 1e6 / o.steps;
    },
    dispose: () => {
      for (const t of inputs) t.dispose();
      opt.dispose();
      model.dispose();
    },
  };
}

/** One run of the anchor script: its step_ms and its engine line. */
function runAnchor(o: StepBenchOptions, a: { big: number; small: number; nsmall: number }): { ms: number; engine: string } {
  const args = [o.anchor!, o.arch, String(o.batch), String(a.big), String(a.small), String(a.nsmall), String(o.steps), String(o.threads)];
  const out = execFileSync(o.python, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const line = out.trim().split("\n").pop() ?? "";
  const m = /step_ms=([0-9.]+)/.exec(line);
  if (!m) throw new Error(`the anchor printed no step_ms: ${line}`);
  const engine = /^(pytorch-eager \S+)/.exec(line)?.[1] ?? "pytorch-eager";
  return { ms: Number(m[1]), engine };
}

/** Times seerkit's step and the anchor's, alternating rounds. */
export async function runStepBench(o: StepBenchOptions): Promise<StepBenchResult> {
  for (const [k, v] of [["batch", o.batch], ["threads", o.threads], ["steps", o.steps], ["rounds", o.rounds]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${k}: expected a positive integer but got ${v}`);
  }
  let crops: CropGroup[];
  try {
    crops = parseCropSpec(o.crops);
  } catch (e) {
    throw new UsageError(`--crops: ${(e as Error).message}`);
  }
  if (o.method === "simclr" && (crops.length !== 1 || crops[0]!.count !== 2)) throw new UsageError(`--crops: SimCLR takes two views of one size (e.g. 2x64), got ${o.crops}`);
  if (o.method === "swav" && crops[0]!.count < 2) throw new UsageError(`--crops: SwAV needs 2 large crops first, got ${o.crops}`);

  let note: string | undefined;
  const fit = anchorCrops(crops);
  if (o.method !== "swav") note = "the anchor times SwAV only";
  else if (typeof fit === "string") note = fit;
  else if (!o.device.startsWith("cpu")) note = "the anchor runs on the CPU only";
  else if (o.anchor === undefined || !fs.existsSync(o.anchor)) note = `no anchor script at ${o.anchor ?? defaultAnchorPath()} (give it with --anchor PATH)`;
  const withAnchor = note === undefined;

  const loadAverage = os.loadavg()[0]!;
  const ours = await seerkitStepper(o, crops);
  const oursMs: number[] = [];
  const anchorMs: number[] = [];
  let anchorEngine = "pytorch-eager";
  try {
    for (let r = 0; r < o.rounds; r++) {
      oursMs.push(ours.time());
      if (withAnchor) {
        const a = runAnchor(o, fit as { big: number; small: number; nsmall: number });
        anchorMs.push(a.ms);
        anchorEngine = a.engine;
      }
    }
  } finally {
    ours.dispose();
  }
  const timing = (engine: string, ms: number[]): EngineTiming => {
    const best = Math.min(...ms);
    return { engine, step_ms: best, images_per_s: (o.batch * 1000) / best, rounds_ms: ms };
  };
  const result: StepBenchResult = {
    arch: o.arch, method: o.method, batch: o.batch, crops: o.crops, threads: o.threads, device: o.device,
    steps: o.steps, rounds: o.rounds, seerkit: timing(ours.engine, oursMs), loadAverage,
  };
  if (withAnchor) {
    result.pytorch = timing(`${anchorEngine} (torchvision ${o.arch}, ${o.anchor})`, anchorMs);
    result.ratio = result.seerkit.images_per_s / result.pytorch.images_per_s;
  } else result.note = note;
  return result;
}

export function formatStepBench(r: StepBenchResult): string {
  const what = r.method === "swav"
    ? "SwAV step (head d-2048-BN-128, 3000 prototypes, Sinkhorn 3, SGD momentum 0.9)"
    : "SimCLR step (head d-2048-BN-128, NT-Xent τ 0.1, SGD momentum 0.9)";
  const row = (label: string, e: EngineTiming): string =>
    `  ${label.padEnd(14)} ${e.step_ms.toFixed(1).padStart(9)} ms/step ${e.images_per_s.toFixed(1).padStart(8)} images/s  rounds [${e.rounds_ms.map((m) => m.toFixed(0)).join(", ")}] ms  ${e.engine}`;
  const lines = [
    `${what}: ${r.arch}, batch ${r.batch}, crops ${r.crops}, ${r.threads} threads, ${r.device}; best of ${r.rounds} rounds of ${r.steps} steps (load average ${r.loadAverage.toFixed(2)})`,
    row("seerkit", r.seerkit),
  ];
  if (r.pytorch) {
    lines.push(row("pytorch eager", r.pytorch));
    lines.push(`  ratio (seerkit / pytorch images/s): ${r.ratio!.toFixed(3)}`);
  } else lines.push(`  (no PyTorch number: ${r.note})`);
  return lines.join("\n");
}

export const STEP_BENCH_FLAGS: Record<string, FlagSpec> = {
  arch: { type: "string", help: "trunk (a torchvision name for the anchor)", default: "regnet_y_400mf" },
  method: { type: "string", help: "swav or simclr", default: "swav" },
  batch: { type: "number", help: "images per step", default: 64 },
  crops: { type: "string", help: "crops per image, e.g. 2x64+4x32 (SimCLR: 2x64)", default: "2x64+4x32" },
  threads: { type: "number", help: "intra-op threads, both engines", default: 2 },
  device: { type: "string", help: "where seerkit runs (cpu, cuda:0); the anchor is CPU only", default: "cpu" },
  steps: { type: "number", help: "timed steps per round (after 2 untimed)", default: 5 },
  rounds: { type: "number", help: "rounds alternating the engines (best of)", default: 2 },
  anchor: { type: "string", help: "the PyTorch anchor script (default <repo>/../shared/anchors/pytorch_cpu_step.py)" },
  python: { type: "string", help: "python with torch and torchvision for the anchor", default: "/usr/bin/python3" },
  json: { type: "boolean", help: "print JSON" },
  help: { type: "boolean", help: "show this help" },
};

/** `seer bench step ...`; returns the exit status. */
export async function stepBenchCommand(argv: string[]): Promise<number> {
  try {
    const { flags, positionals } = parseArgs(argv, STEP_BENCH_FLAGS);
    if (flags.help) {
      console.log(`usage: seer bench step [options]\n\nimages/s of a full SwAV/SimCLR training step, against PyTorch eager (the anchor script) in the same run\n\noptions:\n${formatFlags(STEP_BENCH_FLAGS)}`);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const method = flags.method as string;
    if (method !== "swav" && method !== "simclr") throw new UsageError(`--method: expected swav or simclr but got '${method}'`);
    process.env.OMP_WAIT_POLICY ??= "PASSIVE"; // before libtorch loads (see the header)
    const r = await runStepBench({
      arch: flags.arch as string, method, batch: flags.batch as number, crops: flags.crops as string, threads: flags.threads as number,
      device: flags.device as string, steps: flags.steps as number, rounds: flags.rounds as number,
      anchor: (flags.anchor as string | undefined) ?? defaultAnchorPath(), python: flags.python as string,
    });
    console.log(flags.json ? JSON.stringify(r, null, 2) : formatStepBench(r));
    return 0;
  } catch (e) {
    console.error(`seer bench step: ${(e as Error).message}`);
    return e instanceof UsageError ? 2 : 1;
  }
}
