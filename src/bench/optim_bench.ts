// `seer bench optim`: the optimizer step alone, seerkit against PyTorch eager, side by side in one run on the same
// parameter shapes, device and thread count.
//
// The parameters are those of the GPU step bench's model (step_bench.ts, after pytorch_gpu_step.py): a RegNetY
// trunk, SEER's 3-layer projection head widths (8192-8192-256, with BN) and 16384 prototypes (RegNetY-8GF:
// 127 M values in 247 tensors). Each parameter gets a fixed random gradient; a step is
// one optimizer.step() over all of them. Two optimizers:
//   - SGD (momentum 0.9, weight decay 1e-6), as both step benches use; PyTorch's rows are torch.optim.SGD with
//     foreach=False (a loop over tensors) and foreach=True (multi-tensor ops; its default on CUDA);
//   - LARC around that SGD, as SEER and SwAV train (trust 0.001, no clip); PyTorch's row is apex's LARC formulas
//     written per tensor without host syncs (apex itself reads both norms on the host for every tensor), then
//     foreach SGD.
// `--tiny` gives every tensor one element, keeping their number: the step then costs only its per-tensor
// overhead, which is what a GPU step pays when kernels are too small to hide their launches.
// PyTorch's side is bench/pytorch_optim.py; the parameter shapes reach it as JSON on stdin.
import { execFileSync } from "child_process";
import * as path from "path";
import { expectPositiveIntegers, UsageError } from "../cli/args";
import { PACKAGE_ROOT } from "../util/paths";
import { anchorRecipe } from "./step_bench";

export interface OptimBenchOptions {
  arch: string;
  device: string;
  threads: number;
  steps: number;
  /** Rounds, alternating engines; each figure is the best (lowest) over rounds, which damps a noisy machine. */
  rounds: number;
  tiny: boolean;
  python: string;
}

/** ms per optimizer step, by row name. */
type Rows = Record<string, number>;

export interface OptimBenchResult {
  arch: string;
  device: string;
  threads: number;
  tensors: number;
  values: number;
  tiny: boolean;
  seerkit: Rows;
  pytorch: Rows;
  pytorchEngine: string;
  /** seerkit ms / PyTorch ms for the like-for-like pairs (lower is better for us). */
  ratios: Record<string, number>;
}

/** The parameter shapes of trunk + head + prototypes for `arch`, with the GPU step bench's head and prototypes. */
async function seerShapes(arch: string): Promise<number[][]> {
  const { createModel } = await import("../models/registry");
  const { ProjectionHead, SwAVPrototypes } = await import("../ssl");
  const recipe = anchorRecipe("cuda");
  const trunk = createModel(arch, { numClasses: 0 });
  const head = new ProjectionHead([trunk.numFeatures, ...recipe.head], { batchNorm: true });
  const prototypes = new SwAVPrototypes(recipe.head[recipe.head.length - 1]!, recipe.prototypes);
  const shapes = [trunk, head, prototypes].flatMap((m) => m.parameters().map((p) => [...p.shape]));
  for (const m of [trunk, head, prototypes]) m.dispose();
  return shapes;
}

async function benchSeerkit(o: OptimBenchOptions, shapes: number[][]): Promise<Rows> {
  const T = await import("../tensor");
  const { LARC, SGD } = await import("../optim");
  T.setNumThreads(o.threads);
  T.manualSeed(0);
  const device = T.checkDevice(o.device);
  const params = shapes.map((s) => T.keep(T.randn(s, { device }).requiresGrad_(true)));
  const grads = shapes.map((s) => T.keep(T.randn(s, { device }).mul_(1e-3)));
  const setGrads = (): void => params.forEach((p, i) => (p.grad = grads[i]));
  const time = (opt: import("../optim").OptimizerLike): number => {
    setGrads();
    opt.step(); // creates the momentum buffers
    opt.step();
    T.cudaSynchronize();
    const t = process.hrtime.bigint();
    for (let i = 0; i < o.steps; i++) opt.step();
    T.cudaSynchronize();
    const ms = Number(process.hrtime.bigint() - t) / 1e6 / o.steps;
    opt.dispose();
    return ms;
  };
  const sgd = (): InstanceType<typeof SGD> => new SGD(params, { lr: 0.1, momentum: 0.9, weightDecay: 1e-6 });
  const rows = { sgd: time(sgd()), larc: time(new LARC(sgd())) };
  for (const t of [...params, ...grads]) t.dispose();
  return rows;
}

function benchPytorch(o: OptimBenchOptions, shapes: number[][]): { rows: Rows; engine: string } {
  const script = path.join(PACKAGE_ROOT, "bench", "pytorch_optim.py");
  const input = JSON.stringify({ shapes, device: o.device, threads: o.threads, steps: o.steps });
  const out = execFileSync(o.python, [script], { input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
  const r = JSON.parse(out.trim().split("\n").pop()!) as { engine: string; rows: Rows };
  return { rows: r.rows, engine: r.engine };
}

export async function runOptimBench(o: OptimBenchOptions): Promise<OptimBenchResult> {
  expectPositiveIntegers({ threads: o.threads, steps: o.steps, rounds: o.rounds });
  const T = await import("../tensor");
  const device = T.checkDevice(o.device);
  if (device !== "cpu" && !T.cudaAvailable()) throw new UsageError(`--device ${device}: this libtorch (${T.torchVersion()}) sees no CUDA device`);
  let shapes = await seerShapes(o.arch);
  const values = shapes.reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
  if (o.tiny) shapes = shapes.map(() => [1]);
  // Alternate the engines round by round so that load from other processes hits both alike.
  const ours: Rows[] = [];
  const theirs: Rows[] = [];
  let engine = "";
  for (let r = 0; r < o.rounds; r++) {
    ours.push(await benchSeerkit(o, shapes));
    const p = benchPytorch(o, shapes);
    theirs.push(p.rows);
    engine = p.engine;
  }
  const seerkit = bestOf(ours);
  const pytorch = bestOf(theirs);
  const ratios: Record<string, number> = {
    "sgd vs foreach": seerkit["sgd"]! / pytorch["sgd_foreach"]!,
    "sgd vs loop": seerkit["sgd"]! / pytorch["sgd_loop"]!,
    "larc vs per-tensor larc": seerkit["larc"]! / pytorch["larc"]!,
  };
  return { arch: o.arch, device: o.device, threads: o.threads, tensors: shapes.length, values, tiny: o.tiny, seerkit, pytorch, pytorchEngine: engine, ratios };
}

/** Per-row minimum over rounds. */
function bestOf(rounds: Rows[]): Rows {
  const out: Rows = {};
  for (const k of Object.keys(rounds[0]!)) out[k] = Math.min(...rounds.map((r) => r[k]!));
  return out;
}

export function formatOptimBench(r: OptimBenchResult): string {
  const size = r.tiny ? `${r.tensors} one-element tensors` : `${r.tensors} tensors, ${(r.values / 1e6).toFixed(1)} M values`;
  const ms = (v: number | undefined): string => (v === undefined ? "" : v.toFixed(2).padStart(9));
  const lines = [
    `optimizer step, ${r.arch} + SEER head and prototypes (${size}), ${r.device}, ${r.threads} threads; ms per step, best of the rounds`,
    `  seerkit SGD                        ${ms(r.seerkit["sgd"])}`,
    `  seerkit LARC + SGD                 ${ms(r.seerkit["larc"])}`,
    `  pytorch SGD foreach=False          ${ms(r.pytorch["sgd_loop"])}`,
    `  pytorch SGD foreach=True           ${ms(r.pytorch["sgd_foreach"])}`,
    `  pytorch per-tensor LARC + SGD      ${ms(r.pytorch["larc"])}   (${r.pytorchEngine})`,
    `  ratios (seerkit / pytorch time, lower is better):`,
  ];
  for (const [k, v] of Object.entries(r.ratios)) lines.push(`    ${k.padEnd(26)} ${v.toFixed(3)}`);
  return lines.join("\n");
}
