// `seer bench ops`: seerkit against PyTorch eager, side by side in one run, on the same libtorch build and thread
// count. Two measurements:
//   1. per-call overhead of tiny ops (1-element tensors, so the kernel costs ~nothing and the binding dominates);
//   2. one training step of a small CNN (conv-BN-ReLU ×3, pool, linear; batch of 32×32 images; SGD momentum).
// PyTorch's side is bench/pytorch_ops.py, run with Debian's python3-torch.
import { execFileSync } from "child_process";
import * as path from "path";
import { smallCnn } from "../models/small_cnn";
import { crossEntropy } from "../nn/functional";
import { SGD } from "../optim";
import { getNumThreads, manualSeed, randint, randn, setNumThreads, tidy, torchVersion, zeros } from "../tensor";
import { PACKAGE_ROOT } from "../util/paths";

export interface OpsBenchOptions {
  threads: number;
  calls: number;
  steps: number;
  batch: number;
  python: string;
  /** Rounds, alternating engines; each figure is the best (lowest) over rounds, which damps a noisy machine. */
  rounds: number;
}

export interface EngineResult {
  engine: string;
  threads: number;
  ops_us: Record<string, number>;
  step_ms: number;
  images_per_s: number;
}

export interface OpsBenchResult {
  seerkit: EngineResult;
  pytorch: EngineResult;
  /** ours / PyTorch's per-call time (lower is better for us) */
  opRatios: Record<string, number>;
  /** ours / PyTorch's step time: the goal is <= 1.0 */
  stepRatio: number;
}

function perCallUs(fn: () => void, n: number): number {
  for (let i = 0; i < Math.min(n, 1000); i++) fn();
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t) / 1e3 / n;
}

function benchSeerkit(o: OpsBenchOptions): EngineResult {
  setNumThreads(o.threads);
  manualSeed(0);
  using a = zeros([1]);
  using b = zeros([1]);
  using x = zeros([1]);
  const ops = {
    add: perCallUs(() => a.add(b).dispose(), o.calls),
    mul_scalar: perCallUs(() => a.mul(2).dispose(), o.calls),
    relu: perCallUs(() => a.relu().dispose(), o.calls),
    view: perCallUs(() => a.view(1, 1).dispose(), o.calls),
    shape: perCallUs(() => void a.shape, o.calls),
    add_inplace: perCallUs(() => void x.add_(b), o.calls),
  };

  const model = smallCnn();
  const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
  using images = randn([o.batch, 3, 32, 32]);
  using labels = randint(0, 10, [o.batch]);
  const step = (): number =>
    tidy(() => {
      const loss = crossEntropy(model.forward(images), labels);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss.item(); // a sync point, as PyTorch's loss.item()
    });
  for (let i = 0; i < 3; i++) step();
  const t = process.hrtime.bigint();
  for (let i = 0; i < o.steps; i++) step();
  const stepMs = Number(process.hrtime.bigint() - t) / 1e6 / o.steps;
  opt.dispose();
  model.dispose();
  return { engine: `seerkit (libtorch ${torchVersion()})`, threads: getNumThreads(), ops_us: ops, step_ms: stepMs, images_per_s: (o.batch / stepMs) * 1e3 };
}

function benchPytorch(o: OpsBenchOptions): EngineResult {
  const script = path.join(PACKAGE_ROOT, "bench", "pytorch_ops.py");
  const out = execFileSync(o.python, [script, String(o.threads), String(o.calls), String(o.steps), String(o.batch)], { encoding: "utf8" });
  return JSON.parse(out.trim().split("\n").pop()!) as EngineResult;
}

export function runOpsBench(o: OpsBenchOptions): OpsBenchResult {
  // Alternate the engines round by round so that load from other processes hits both alike.
  const ours: EngineResult[] = [];
  const theirs: EngineResult[] = [];
  for (let r = 0; r < o.rounds; r++) {
    ours.push(benchSeerkit(o));
    theirs.push(benchPytorch(o));
  }
  const seerkit = best(ours);
  const pytorch = best(theirs);
  const opRatios: Record<string, number> = {};
  for (const k of Object.keys(seerkit.ops_us)) opRatios[k] = seerkit.ops_us[k]! / pytorch.ops_us[k]!;
  return { seerkit, pytorch, opRatios, stepRatio: seerkit.step_ms / pytorch.step_ms };
}

/** Per-figure minimum over rounds. */
function best(rounds: EngineResult[]): EngineResult {
  const first = rounds[0]!;
  const ops_us: Record<string, number> = {};
  for (const k of Object.keys(first.ops_us)) ops_us[k] = Math.min(...rounds.map((r) => r.ops_us[k]!));
  const step_ms = Math.min(...rounds.map((r) => r.step_ms));
  const batch = (first.images_per_s * first.step_ms) / 1e3;
  return { ...first, ops_us, step_ms, images_per_s: (batch / step_ms) * 1e3 };
}

export function formatOpsBench(r: OpsBenchResult): string {
  const lines = [`per-call time (µs, 1-element tensors, ${r.seerkit.threads} threads; best of the rounds)`, `  op            seerkit   pytorch   ratio`];
  for (const k of Object.keys(r.seerkit.ops_us)) {
    lines.push(`  ${k.padEnd(12)} ${r.seerkit.ops_us[k]!.toFixed(2).padStart(8)}  ${r.pytorch.ops_us[k]!.toFixed(2).padStart(8)}  ${r.opRatios[k]!.toFixed(2).padStart(6)}`);
  }
  lines.push(
    `small CNN training step (batch ${Math.round((r.seerkit.images_per_s * r.seerkit.step_ms) / 1e3)}, 3×32×32)`,
    `  seerkit   ${r.seerkit.step_ms.toFixed(1)} ms/step  ${r.seerkit.images_per_s.toFixed(0)} images/s`,
    `  pytorch   ${r.pytorch.step_ms.toFixed(1)} ms/step  ${r.pytorch.images_per_s.toFixed(0)} images/s  (${r.pytorch.engine})`,
    `  ratio (seerkit/pytorch step time): ${r.stepRatio.toFixed(3)}  (goal <= 1.0)`,
  );
  return lines.join("\n");
}
