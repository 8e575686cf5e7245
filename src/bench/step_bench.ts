// `seer bench step`: images/s of a full SSL training step (forward, loss, backward, optimizer), seerkit against
// PyTorch eager side by side in one run.
//
// On the CPU the step is /work/shared/anchors/pytorch_cpu_step.py's, so the two numbers compare like for like: random crops
// (2xBIG + NSMALLxSMALL, each resolution one trunk pass) -> trunk without classifier -> head Linear(d, 2048) + BN1d +
// ReLU + Linear(2048, 128) -> L2 normalize -> 3000 bias-free prototypes (rows re-normalized every step) -> SwAV
// swapped prediction (Sinkhorn 3 iterations, ε 0.05, τ 0.1, codes from the two large crops) -> backward ->
// SGD(lr 0.1, momentum 0.9, weight decay 1e-6). `--method simclr` times the same trunk and head with NT-Xent
// (τ 0.1) over two views instead; the anchor has no SimCLR step, so only seerkit's number is printed then.
// What differs: the anchor sums the swapped-prediction terms where SwAV (and seerkit) average them; the cost is
// the same.
//
// On CUDA the step is pytorch_gpu_step.py's: head d-8192-BN-ReLU-8192-BN-ReLU-256 (SEER's), 16,384 prototypes,
// SimCLR τ 0.1, bf16 autocast, channels-last weights and crops, cuDNN autotuning and TF32; peak memory is the
// caching allocator's peak over the warm-up and timed steps on both sides. That script takes no arguments and
// times all its models in one go, so it runs once (or its saved output is given with --anchor-log) and the line
// for this arch, method and batch is taken from it. GPU steps are not synchronized one by one (nor are the
// anchor's): the clock stops after a device synchronize at the end.
//
// --cuda-graph (CUDA) also captures seerkit's step as a CUDA graph once its eager rounds are done (after one more
// eager step on the capture stream; tensor/cuda_graph.ts) and times replays of it for as many rounds, its peak
// memory counted from the capture on: the eager and the graph figures come from the same model in one process.
//
// --peak-memory (CPU) runs each engine once more in a process of its own with bench/alloc_peak.c preloaded, which
// records the high-water mark of the process's large heap blocks (tensor storage): the CPU counterpart of the
// caching allocator's peak that CUDA runs report. Both processes use the same libtorch and allocator.
//
// Rounds alternate the engines (seerkit's timed steps, then one run of the anchor script, ...) and each engine's
// figure is its best round, which damps a machine shared with other processes. Both run with OpenMP's passive
// wait policy unless OMP_WAIT_POLICY is set (with the spinning default, a shared machine makes step times swing
// several-fold). The anchor is found at <repo>/../shared/anchors/pytorch_cpu_step.py, or given with --anchor.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { expectPositiveIntegers, formatFlags, parseArgs, UsageError, type FlagSpec } from "../cli/args";
import { parseCropSpec, type CropGroup } from "../data/multicrop";
import { CACHE_DIR, PACKAGE_ROOT } from "../util/paths";

export interface StepBenchOptions {
  /** Trunk name (createModel); the anchor needs a torchvision name. */
  arch: string;
  method: "swav" | "simclr";
  /** Images per step. */
  batch: number;
  /** Crop spec, e.g. "2x64+4x32" (SimCLR: "2xS"). */
  crops: string;
  threads: number;
  /** Where seerkit runs ("cpu", "cuda:0"). */
  device: string;
  /** "fp32", or "bf16" (CUDA autocast). */
  precision: "fp32" | "bf16";
  /** Weights and crops channels-last (NHWC). */
  channelsLast: boolean;
  /** CUDA: also time the step captured once as a CUDA graph and replayed. */
  cudaGraph?: boolean;
  /** Timed steps per round (after 2 untimed ones, as the anchor). */
  steps: number;
  /** Rounds, alternating engines; the best round counts. */
  rounds: number;
  /** The anchor script, or undefined to skip it. */
  anchor?: string;
  /** A saved output of the GPU anchor script, read instead of running it. */
  anchorLog?: string;
  python: string;
  /** CPU: also measure each engine's peak of large heap blocks in a process of its own (see the header). */
  peakMemory?: boolean;
}

export interface EngineTiming {
  engine: string;
  step_ms: number;
  images_per_s: number;
  /** step_ms of every round. */
  rounds_ms: number[];
  /** CUDA: the caching allocator's peak; CPU with --peak-memory: the peak of large heap blocks. GiB. */
  peak_gib?: number;
}

/** What was timed (the options, less where the anchor came from) and the timings. */
export interface StepBenchResult extends Omit<StepBenchOptions, "anchor" | "anchorLog" | "python"> {
  seerkit: EngineTiming;
  pytorch?: EngineTiming;
  /** seerkit images/s ÷ PyTorch images/s (above 1: seerkit is faster). */
  ratio?: number;
  /** --cuda-graph: seerkit's step replayed from a CUDA graph, and its ratio to PyTorch eager. */
  seerkitGraph?: EngineTiming;
  graphRatio?: number;
  /** --cuda-graph: why there is no graph figure, when there is none. */
  graphNote?: string;
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

/** The default anchor location: <repo>/../shared/anchors/pytorch_{cpu,gpu}_step.py. */
export function defaultAnchorPath(device = "cpu"): string {
  return path.resolve(PACKAGE_ROOT, "..", "shared", "anchors", device === "cpu" ? "pytorch_cpu_step.py" : "pytorch_gpu_step.py");
}

/** Each anchor's head widths after the trunk and prototype count (see the header); CUDA's are SEER's widths. */
export function anchorRecipe(device: string): { head: number[]; prototypes: number } {
  return device === "cpu" ? { head: [2048, 128], prototypes: 3000 } : { head: [8192, 8192, 256], prototypes: 16384 };
}

interface Stepper {
  engine: string;
  /** Times o.steps eager steps; ms per step. */
  time: () => number;
  /** Times o.steps replays of the step captured as a CUDA graph (captured on the first call); ms per step. */
  timeGraph: () => number;
  /** The allocator's peak since the start, or since the capture once timeGraph ran (CUDA). */
  peakGiB: () => number | undefined;
  dispose: () => void;
}

/** seerkit's step: builds the model once and returns functions that time steps. */
async function seerkitStepper(o: StepBenchOptions, crops: readonly CropGroup[]): Promise<Stepper> {
  const T = await import("../tensor");
  const { createModel } = await import("../models/registry");
  const { ProjectionHead, SimCLR, SwAV, SwAVPrototypes } = await import("../ssl");
  const { SGD } = await import("../optim");
  T.setNumThreads(o.threads);
  T.manualSeed(0);
  const device = T.checkDevice(o.device);
  if (device !== "cpu" && !T.cudaAvailable()) throw new UsageError(`--device ${device}: this libtorch (${T.torchVersion()}) sees no CUDA device`);
  if (device === "cpu" && o.precision !== "fp32") throw new UsageError("--precision bf16 is CUDA autocast; on the CPU use fp32");
  const cuda = device !== "cpu";
  if (cuda) T.setCudaBackend({ cudnnBenchmark: true, allowTf32: true });
  const recipe = anchorRecipe(device);
  const backbone = createModel(o.arch, { numClasses: 0 });
  const head = new ProjectionHead([backbone.numFeatures, ...recipe.head], { batchNorm: true });
  const embDim = recipe.head[recipe.head.length - 1]!;
  let forward: (inputs: import("../tensor").Tensor[]) => import("../tensor").Tensor;
  let model: import("../nn/module").Module;
  let prototypes: InstanceType<typeof SwAVPrototypes> | undefined;
  if (o.method === "swav") {
    prototypes = new SwAVPrototypes(embDim, recipe.prototypes, { frozenUntilStep: 0 });
    const swav = new SwAV(backbone, { numCrops: crops.map((g) => g.count), head, prototypes, loss: { sinkhornIterations: 3, epsilon: 0.05, temperature: 0.1 } });
    model = swav;
    forward = (inputs) => swav.forward(inputs).loss;
  } else {
    const simclr = new SimCLR(backbone, { head, loss: { temperature: 0.1 } });
    model = simclr;
    forward = (inputs) => simclr.forward(inputs[0]!);
  }
  model.to(device);
  if (o.channelsLast) model.channelsLast();
  model.train();
  const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-6 });
  // Crop-major groups (count x batch, 3, S, S), one trunk pass each.
  const inputs = crops.map((g) => T.keep(T.tidy(() => {
    const x = T.randn([g.count * o.batch, 3, g.size, g.size], { device });
    return o.channelsLast ? x.channelsLast() : x;
  })));
  const swavPrototypes = prototypes;
  const autocast = o.precision === "bf16" ? "bfloat16" : null;
  const step = (): void =>
    T.tidy(() => {
      swavPrototypes?.normalize(); // the anchor re-normalizes before each forward
      const loss = T.withAutocast(autocast, () => forward(inputs));
      opt.zeroGrad();
      loss.backward();
      opt.step();
      if (!cuda) loss.item(); // a sync point per step, as the CPU anchor's loss.item(); on CUDA, one at the end
    });
  if (cuda) T.resetCudaPeak(device);
  const warmup = cuda ? 4 : 2; // untimed, as the anchors
  for (let i = 0; i < warmup; i++) step();
  const timed = (run: () => void): number => {
    T.cudaSynchronize();
    const t = process.hrtime.bigint();
    for (let i = 0; i < o.steps; i++) run();
    T.cudaSynchronize();
    return Number(process.hrtime.bigint() - t) / 1e6 / o.steps;
  };
  let graph: import("../tensor").CudaGraph | undefined;
  return {
    engine: `seerkit (libtorch ${T.torchVersion()}, ${device}${autocast ? ", bf16 autocast" : ""}${o.channelsLast ? ", channels-last" : ""})`,
    time: () => timed(step),
    timeGraph: () => {
      if (graph === undefined) {
        T.resetCudaPeak(device);
        graph = T.CudaGraph.capture(device, step); // one warm-up step on the capture stream, then records one step
        graph.replay(); // the first replay uploads the graph
      }
      const g = graph;
      return timed(() => g.replay());
    },
    peakGiB: () => {
      const peak = cuda ? T.cudaMemory(device).peak : NaN;
      return Number.isNaN(peak) ? undefined : peak / 2 ** 30; // NaN: a build without the CUDA headers
    },
    dispose: () => {
      graph?.dispose();
      for (const t of inputs) t.dispose();
      opt.dispose();
      model.dispose();
    },
  };
}

/** One run of the anchor script: its step_ms and its engine line. */
function runAnchor(o: StepBenchOptions, a: { big: number; small: number; nsmall: number }, env?: NodeJS.ProcessEnv): { ms: number; engine: string } {
  const args = [o.anchor!, o.arch, String(o.batch), String(a.big), String(a.small), String(a.nsmall), String(o.steps), String(o.threads)];
  const out = execFileSync(o.python, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env });
  const line = out.trim().split("\n").pop() ?? "";
  const m = /step_ms=([0-9.]+)/.exec(line);
  if (!m) throw new Error(`the anchor printed no step_ms: ${line}`);
  const engine = /^(pytorch-eager \S+)/.exec(line)?.[1] ?? "pytorch-eager";
  return { ms: Number(m[1]), engine };
}

/**
 * The GPU anchor's line for this arch, method and batch, from its whole output, e.g.
 * "regnet_y_8gf     swav   bs= 128 crops=8 step=  245.0 ms  images/s=   522.0  peak= 34.2 GiB".
 */
export function parseGpuAnchorLine(output: string, arch: string, method: string, batch: number): { ms: number; peakGiB: number } | string {
  for (const line of output.split("\n")) {
    const m = /^(\S+)\s+(swav|simclr)\s+bs=\s*(\d+)\s+crops=\d+\s+step=\s*([0-9.]+) ms.*peak=\s*([0-9.]+) GiB/.exec(line.trim());
    if (m && m[1] === arch && m[2] === method && Number(m[3]) === batch) return { ms: Number(m[4]), peakGiB: Number(m[5]) };
  }
  const failed = output.split("\n").find((l) => l.startsWith(`${arch} ${method} failed`));
  return failed ?? `the GPU anchor has no line for ${arch} ${method} batch ${batch} (it times resnet50, regnet_y_800mf/8gf/16gf/32gf at its own batches)`;
}

/** bench/alloc_peak.c built into the cache (again when the source is newer); its path. */
function allocPeakLibrary(): string {
  const src = path.join(PACKAGE_ROOT, "bench", "alloc_peak.c");
  const lib = path.join(CACHE_DIR, "alloc_peak.so");
  if (!fs.existsSync(lib) || fs.statSync(lib).mtimeMs < fs.statSync(src).mtimeMs) {
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    const tmp = `${lib}.${process.pid}.tmp`;
    try {
      execFileSync("cc", ["-O2", "-shared", "-fPIC", "-o", tmp, src, "-ldl"], { stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      throw new Error(`--peak-memory: compiling ${src} with cc failed: ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}`);
    }
    fs.renameSync(tmp, lib);
  }
  return lib;
}

/**
 * Runs `run` with bench/alloc_peak.c preloaded into the process it starts (given the environment); returns that
 * process's peak of large heap blocks, in GiB.
 */
function peakOf(what: string, run: (env: NodeJS.ProcessEnv) => void): number {
  const out = path.join(os.tmpdir(), `seerkit-alloc-peak-${process.pid}-${what}`);
  fs.rmSync(out, { force: true });
  try {
    run({ ...process.env, LD_PRELOAD: allocPeakLibrary(), ALLOC_PEAK_OUT: out });
    if (!fs.existsSync(out)) throw new Error(`--peak-memory: the ${what} process wrote no peak to ${out}`);
    return Number(fs.readFileSync(out, "utf8").trim()) / 2 ** 30;
  } finally {
    fs.rmSync(out, { force: true });
  }
}

/** --peak-memory: each engine's peak in a process of its own (one timed step after the two untimed ones). */
function measurePeaks(o: StepBenchOptions, fit: { big: number; small: number; nsmall: number }): { seerkit: number; pytorch: number } {
  const seer = path.join(PACKAGE_ROOT, "bin", "seer");
  const args = [seer, "bench", "step", "--arch", o.arch, "--method", o.method, "--batch", String(o.batch), "--crops", o.crops,
    "--threads", String(o.threads), "--layout", o.channelsLast ? "nhwc" : "nchw", "--steps", "1", "--rounds", "1", "--anchor", "none"];
  return {
    seerkit: peakOf("seerkit", (env) => execFileSync(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env })),
    pytorch: peakOf("pytorch", (env) => runAnchor({ ...o, steps: 1 }, fit, env)),
  };
}

/** The GPU anchor's output: the saved log, or one run of the script. */
function gpuAnchorOutput(o: StepBenchOptions): string {
  if (o.anchorLog !== undefined) return fs.readFileSync(o.anchorLog, "utf8");
  return execFileSync(o.python, [o.anchor!], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Times seerkit's step and the anchor's, alternating rounds. */
export async function runStepBench(o: StepBenchOptions): Promise<StepBenchResult> {
  expectPositiveIntegers({ batch: o.batch, threads: o.threads, steps: o.steps, rounds: o.rounds });
  let crops: CropGroup[];
  try {
    crops = parseCropSpec(o.crops);
  } catch (e) {
    throw new UsageError(`--crops: ${(e as Error).message}`);
  }
  if (o.method === "simclr" && (crops.length !== 1 || crops[0]!.count !== 2)) throw new UsageError(`--crops: SimCLR takes two views of one size (e.g. 2x64), got ${o.crops}`);
  if (o.method === "swav" && crops[0]!.count < 2) throw new UsageError(`--crops: SwAV needs 2 large crops first, got ${o.crops}`);
  if (o.cudaGraph && o.device === "cpu") throw new UsageError("--cuda-graph: CUDA graphs need a CUDA device (--device cuda:0)");
  if (o.peakMemory && o.anchor === "none") throw new UsageError("--peak-memory compares with the anchor; it cannot go with --anchor none");
  if (o.peakMemory && o.device !== "cpu") throw new UsageError("--peak-memory is the CPU's measure; on CUDA the caching allocator's peak is always reported");

  const cpu = o.device === "cpu";
  let note: string | undefined;
  const fit = anchorCrops(crops);
  if (o.anchor === "none") note = "no anchor (--anchor none)";
  else if (cpu && o.method !== "swav") note = "the CPU anchor times SwAV only";
  else if (cpu && typeof fit === "string") note = fit;
  else if (o.anchorLog === undefined && (o.anchor === undefined || !fs.existsSync(o.anchor))) {
    note = `no anchor script at ${o.anchor ?? defaultAnchorPath(o.device)} (give it with --anchor PATH)`;
  }

  const loadAverage = os.loadavg()[0]!;
  const ours = await seerkitStepper(o, crops);
  const oursMs: number[] = [];
  const anchorMs: number[] = [];
  const graphMs: number[] = [];
  let anchorEngine = "pytorch-eager";
  let anchorPeak: number | undefined;
  let oursPeak: number | undefined;
  let graphPeak: number | undefined;
  let graphNote: string | undefined;
  try {
    for (let r = 0; r < o.rounds; r++) {
      oursMs.push(ours.time());
      if (note !== undefined) continue;
      if (cpu) {
        const a = runAnchor(o, fit as { big: number; small: number; nsmall: number });
        anchorMs.push(a.ms);
        anchorEngine = a.engine;
      }
    }
    oursPeak = ours.peakGiB();
    if (o.cudaGraph) {
      try {
        for (let r = 0; r < o.rounds; r++) graphMs.push(ours.timeGraph());
        graphPeak = ours.peakGiB();
      } catch (e) {
        graphNote = `the CUDA graph failed: ${(e as Error).message}`; // the eager figures stand
      }
    }
  } finally {
    ours.dispose();
  }
  if (!cpu && note === undefined) {
    // After seerkit's model is freed: the anchor process needs the GPU's memory to itself.
    const a = parseGpuAnchorLine(gpuAnchorOutput(o), o.arch, o.method, o.batch);
    if (typeof a === "string") note = a;
    else {
      anchorMs.push(a.ms);
      anchorPeak = a.peakGiB;
      anchorEngine = "pytorch-eager (bf16 autocast, channels-last)";
    }
  }
  if (o.peakMemory && note === undefined) {
    const peaks = measurePeaks(o, fit as { big: number; small: number; nsmall: number });
    oursPeak = peaks.seerkit;
    anchorPeak = peaks.pytorch;
  }
  const timing = (engine: string, ms: number[], peak?: number): EngineTiming => {
    const best = Math.min(...ms);
    return { engine, step_ms: best, images_per_s: (o.batch * 1000) / best, rounds_ms: ms, ...(peak !== undefined ? { peak_gib: peak } : {}) };
  };
  const result: StepBenchResult = {
    arch: o.arch, method: o.method, batch: o.batch, crops: o.crops, threads: o.threads, device: o.device,
    precision: o.precision, channelsLast: o.channelsLast,
    steps: o.steps, rounds: o.rounds, seerkit: timing(ours.engine, oursMs, oursPeak), loadAverage,
  };
  if (o.cudaGraph && graphNote === undefined) result.seerkitGraph = timing(`${ours.engine}, CUDA graph`, graphMs, graphPeak);
  if (graphNote !== undefined) result.graphNote = graphNote;
  if (note === undefined) {
    result.pytorch = timing(`${anchorEngine} (torchvision ${o.arch}, ${o.anchorLog ?? o.anchor})`, anchorMs, anchorPeak);
    result.ratio = result.seerkit.images_per_s / result.pytorch.images_per_s;
    if (result.seerkitGraph) result.graphRatio = result.seerkitGraph.images_per_s / result.pytorch.images_per_s;
  } else result.note = note;
  return result;
}

export function formatStepBench(r: StepBenchResult): string {
  const recipe = anchorRecipe(r.device);
  const head = `d-${recipe.head.join("-BN-")}`;
  const what = r.method === "swav"
    ? `SwAV step (head ${head}, ${recipe.prototypes} prototypes, Sinkhorn 3, SGD momentum 0.9)`
    : `SimCLR step (head ${head}, NT-Xent τ 0.1, SGD momentum 0.9)`;
  const row = (label: string, e: EngineTiming): string =>
    `  ${label.padEnd(14)} ${e.step_ms.toFixed(1).padStart(9)} ms/step ${e.images_per_s.toFixed(1).padStart(8)} images/s` +
    `${e.peak_gib !== undefined ? `  peak ${e.peak_gib.toPrecision(3)} GiB` : ""}  rounds [${e.rounds_ms.map((m) => m.toFixed(0)).join(", ")}] ms  ${e.engine}`;
  const lines = [
    `${what}: ${r.arch}, batch ${r.batch}, crops ${r.crops}, ${r.threads} threads, ${r.device}; best of ${r.rounds} rounds of ${r.steps} steps (load average ${r.loadAverage.toFixed(2)})`,
    row("seerkit", r.seerkit),
  ];
  if (r.seerkitGraph) lines.push(row("seerkit graph", r.seerkitGraph));
  if (r.graphNote !== undefined) lines.push(`  (no CUDA graph figure: ${r.graphNote})`);
  if (r.pytorch) {
    lines.push(row("pytorch eager", r.pytorch));
    lines.push(`  ratio (seerkit / pytorch images/s): ${r.ratio!.toFixed(3)}${r.graphRatio !== undefined ? `; with the CUDA graph ${r.graphRatio.toFixed(3)}` : ""}`);
    if (r.device === "cpu" && r.seerkit.peak_gib !== undefined && r.pytorch.peak_gib !== undefined) {
      lines.push(`  peak memory (large heap blocks, one process each): seerkit / pytorch ${(r.seerkit.peak_gib / r.pytorch.peak_gib).toFixed(3)}`);
    }
  } else lines.push(`  (no PyTorch number: ${r.note})`);
  return lines.join("\n");
}

export const STEP_BENCH_FLAGS: Record<string, FlagSpec> = {
  arch: { type: "string", help: "trunk (a torchvision name for the anchor)", default: "regnet_y_400mf" },
  method: { type: "string", help: "swav or simclr", default: "swav" },
  batch: { type: "number", help: "images per step", default: 64 },
  crops: { type: "string", help: "crops per image, e.g. 2x64+4x32 (SimCLR: 2x64)", default: "2x64+4x32" },
  threads: { type: "number", help: "intra-op threads, both engines", default: 2 },
  device: { type: "string", help: "where seerkit runs (cpu, cuda:0)", default: "cpu" },
  precision: { type: "string", help: "fp32, or bf16 (CUDA autocast); auto: bf16 on CUDA, fp32 on the CPU", default: "auto" },
  layout: { type: "string", help: "nchw, or nhwc (channels-last); auto: nhwc on CUDA, nchw on the CPU", default: "auto" },
  steps: { type: "number", help: "timed steps per round (after 2 untimed)", default: 5 },
  rounds: { type: "number", help: "rounds alternating the engines (best of)", default: 2 },
  anchor: { type: "string", help: "the PyTorch anchor script (default <repo>/../shared/anchors/pytorch_cpu_step.py, or pytorch_gpu_step.py on CUDA); none: seerkit only" },
  "anchor-log": { type: "string", help: "CUDA: a saved output of pytorch_gpu_step.py, read instead of running it" },
  python: { type: "string", help: "python with torch and torchvision for the anchor (default /usr/bin/python3 on the CPU, python3 on CUDA)" },
  "cuda-graph": { type: "boolean", help: "CUDA: also time the step captured as a CUDA graph and replayed" },
  "peak-memory": { type: "boolean", help: "CPU: also each engine's peak of large heap blocks (tensor storage), one process each" },
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
    const device = flags.device as string;
    const cpu = device === "cpu";
    const precision = flags.precision === "auto" ? (cpu ? "fp32" : "bf16") : (flags.precision as string);
    if (precision !== "fp32" && precision !== "bf16") throw new UsageError(`--precision: expected fp32, bf16 or auto but got '${precision}'`);
    const layout = flags.layout === "auto" ? (cpu ? "nchw" : "nhwc") : (flags.layout as string);
    if (layout !== "nchw" && layout !== "nhwc") throw new UsageError(`--layout: expected nchw, nhwc or auto but got '${layout}'`);
    process.env.OMP_WAIT_POLICY ??= "PASSIVE"; // before libtorch loads (see the header)
    const r = await runStepBench({
      arch: flags.arch as string, method, batch: flags.batch as number, crops: flags.crops as string, threads: flags.threads as number,
      device, precision, channelsLast: layout === "nhwc", cudaGraph: flags["cuda-graph"] === true, peakMemory: flags["peak-memory"] === true, steps: flags.steps as number, rounds: flags.rounds as number,
      anchor: (flags.anchor as string | undefined) ?? defaultAnchorPath(device), anchorLog: flags["anchor-log"] as string | undefined,
      python: (flags.python as string | undefined) ?? (cpu ? "/usr/bin/python3" : "python3"),
    });
    console.log(flags.json ? JSON.stringify(r, null, 2) : formatStepBench(r));
    return 0;
  } catch (e) {
    console.error(`seer bench step: ${(e as Error).message}`);
    return e instanceof UsageError ? 2 : 1;
  }
}
