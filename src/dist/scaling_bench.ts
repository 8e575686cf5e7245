// Data-parallel scaling on one machine: the same global batch trained by 1 process × 1 thread and by N processes ×
// 1 thread (each with batch/N, gradients averaged with GradientAllReducer over Gloo on loopback). Reports the time
// per step and the strong-scaling efficiency: speedup / N = T(1 process) / (N · T(N processes)).
//
//   node dist/src/dist/scaling_bench.js [--nproc 2] [--batch 64] [--steps 20] [--warmup 3] [--sync-bn]
//
// Each configuration runs in fresh worker processes started by spawnLocalWorkers; a worker prints one
// "BENCH {json}" line with its per-step times.
import * as os from "os";
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, F, Flatten, Linear, ReLU, Sequential } from "../nn";
import { SGD } from "../optim";
import { keep, manualSeed, randint, randn, setNumThreads, tidy } from "../tensor";
import { broadcastModule, GradientAllReducer } from "./data_parallel";
import { spawnLocalWorkers } from "./launch";
import { initProcessGroupFromEnv } from "./process_group";
import { convertSyncBatchNorm } from "./sync_batchnorm";

export interface ScalingBenchOptions {
  /** Processes in the distributed configuration (default 2). */
  nproc?: number;
  /** Global batch (default 64), split evenly over the processes. */
  batch?: number;
  /** Timed steps (default 20) after untimed warm-up steps (default 3). */
  steps?: number;
  warmup?: number;
  /** Input side (default 32). */
  imageSize?: number;
  /** Convert the BatchNorms to SyncBatchNorm in the distributed run (default false, as DDP without SyncBN). */
  syncBn?: boolean;
}

interface WorkerReport {
  rank: number;
  /** Milliseconds per timed step. */
  stepMs: number[];
  /** Of which in GradientAllReducer.synchronize(). */
  syncMs: number[];
}

export interface ScalingBenchResult {
  nproc: number;
  batch: number;
  /** Median ms per step: one process on the whole batch. */
  singleMs: number;
  /** Median ms per step with nproc processes (the slowest rank each step). */
  distMs: number;
  /**
   * Median ms per step in GradientAllReducer.synchronize() on the rank that got there last (it waits for no one,
   * so this is the communication cost; the other ranks also wait there for the slowest backward).
   */
  syncMs: number;
  speedup: number;
  efficiency: number;
  cpus: number;
}

/** A small CNN: three conv-BN-ReLU stages (3→32→64→128 channels), global pooling, a linear classifier. */
export function benchCnn(): Sequential {
  return new Sequential(
    new Conv2d(3, 32, 3, { padding: 1, bias: false }), new BatchNorm2d(32), new ReLU(),
    new Conv2d(32, 64, 3, { stride: 2, padding: 1, bias: false }), new BatchNorm2d(64), new ReLU(),
    new Conv2d(64, 128, 3, { stride: 2, padding: 1, bias: false }), new BatchNorm2d(128), new ReLU(),
    new AdaptiveAvgPool2d(1), new Flatten(), new Linear(128, 10),
  );
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** One worker: trains on its slice of the batch and prints its step times (run via spawnLocalWorkers). */
async function worker(o: Required<ScalingBenchOptions>): Promise<void> {
  setNumThreads(1);
  const { pg } = initProcessGroupFromEnv({ timeoutMs: 120_000 });
  manualSeed(0);
  const net = benchCnn();
  if (o.syncBn) convertSyncBatchNorm(net, pg);
  broadcastModule(net, pg);
  const reducer = new GradientAllReducer(net, pg);
  const opt = new SGD(net.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 });
  const local = o.batch / pg.worldSize;
  manualSeed(1 + pg.rank);
  const x = keep(randn([local, 3, o.imageSize, o.imageSize]));
  const y = keep(randint(0, 10, [local]));
  const report: WorkerReport = { rank: pg.rank, stepMs: [], syncMs: [] };
  for (let step = 0; step < o.warmup + o.steps; step++) {
    pg.barrier(); // every rank starts the step together
    const t0 = performance.now();
    let sync = 0;
    tidy(() => {
      opt.zeroGrad();
      F.crossEntropy(net.forward(x), y).backward();
      const s0 = performance.now();
      reducer.synchronize();
      sync = performance.now() - s0;
      opt.step();
    });
    if (step >= o.warmup) {
      report.stepMs.push(performance.now() - t0);
      report.syncMs.push(sync);
    }
  }
  console.log(`BENCH ${JSON.stringify(report)}`);
  pg.barrier();
  pg.destroy();
}

async function runConfig(nproc: number, o: Required<ScalingBenchOptions>): Promise<{ stepMs: number; syncMs: number }> {
  const reports: WorkerReport[] = [];
  const r = await spawnLocalWorkers(nproc, __filename, ["--worker", JSON.stringify(o)], {
    output: "capture",
    env: { OMP_NUM_THREADS: "1" },
    onLine: (_rank, line) => {
      if (line.startsWith("BENCH ")) reports.push(JSON.parse(line.slice(6)) as WorkerReport);
    },
  });
  if (!r.ok) throw new Error(`scaling bench with ${nproc} process(es) failed: ${r.message}\n${r.output.flat().join("\n")}`);
  // Per step, the slowest rank sets the pace; the least time in synchronize() is the rank that arrived last.
  const perStep = (key: "stepMs" | "syncMs", pick: (...xs: number[]) => number): number[] =>
    reports[0]![key].map((_, i) => pick(...reports.map((w) => w[key][i]!)));
  return { stepMs: median(perStep("stepMs", Math.max)), syncMs: median(perStep("syncMs", Math.min)) };
}

/** Runs 1 process on the whole batch, then nproc processes on slices of it; returns the medians and efficiency. */
export async function runScalingBench(opts: ScalingBenchOptions = {}): Promise<ScalingBenchResult> {
  const o: Required<ScalingBenchOptions> = {
    nproc: opts.nproc ?? 2, batch: opts.batch ?? 64, steps: opts.steps ?? 20, warmup: opts.warmup ?? 3,
    imageSize: opts.imageSize ?? 32, syncBn: opts.syncBn ?? false,
  };
  if (o.batch % o.nproc !== 0) throw new RangeError(`scaling bench: batch ${o.batch} does not split over ${o.nproc} processes`);
  const single = await runConfig(1, o);
  const dist = await runConfig(o.nproc, o);
  const speedup = single.stepMs / dist.stepMs;
  return {
    nproc: o.nproc, batch: o.batch, singleMs: single.stepMs, distMs: dist.stepMs, syncMs: dist.syncMs,
    speedup, efficiency: speedup / o.nproc, cpus: os.availableParallelism?.() ?? os.cpus().length,
  };
}

function parseFlags(argv: string[]): ScalingBenchOptions {
  const o: ScalingBenchOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === "--sync-bn") {
      o.syncBn = true;
      continue;
    }
    const v = Number(argv[++i]);
    if (!Number.isInteger(v) || v < 0) throw new Error(`scaling bench: ${flag} needs a non-negative integer`);
    if (flag === "--nproc") o.nproc = v;
    else if (flag === "--batch") o.batch = v;
    else if (flag === "--steps") o.steps = v;
    else if (flag === "--warmup") o.warmup = v;
    else if (flag === "--image-size") o.imageSize = v;
    else throw new Error(`scaling bench: unknown flag ${flag}`);
  }
  return o;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const run =
    argv[0] === "--worker"
      ? worker(JSON.parse(argv[1]!) as Required<ScalingBenchOptions>)
      : runScalingBench(parseFlags(argv)).then((r) => {
          console.log(`scaling bench: small CNN, global batch ${r.batch}, ${r.cpus} CPUs, 1 thread per process`);
          console.log(`  1 process         ${r.singleMs.toFixed(1)} ms/step`);
          console.log(`  ${r.nproc} processes       ${r.distMs.toFixed(1)} ms/step (of which gradient all-reduce ${r.syncMs.toFixed(1)} ms)`);
          console.log(`  speedup ${r.speedup.toFixed(2)}x, scaling efficiency ${(100 * r.efficiency).toFixed(0)}%`);
          console.log(`JSON ${JSON.stringify(r)}`);
        });
  run.catch((e: Error) => {
    console.error(e.message);
    process.exitCode = 1;
  });
}
