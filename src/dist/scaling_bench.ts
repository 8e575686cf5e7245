// Data-parallel scaling on one machine: the same global batch trained by 1 process × 1 thread and by N processes ×
// 1 thread (each with batch/N, gradients averaged with GradientAllReducer over Gloo on loopback). Reports the time
// per step and the strong-scaling efficiency: speedup / N = T(1 process) / (N · T(N processes)).
//
//   node dist/src/dist/scaling_bench.js [--nproc 2] [--batch 64] [--steps 20] [--warmup 3] [--rounds 3] [--sync-bn] [--pin]
//   node dist/src/dist/scaling_bench.js --pretrain swav-cifar-tiny [--nproc 2] [--batch 64] [--steps 20] [--warmup 3] [--rounds 3] [--set key=value ...] [--pin]
//   node dist/src/dist/scaling_bench.js --latency [--nproc 2]
//
// The first form trains a small CNN with plain cross-entropy (the engine: GradientAllReducer over Gloo). The second
// times the real pretraining iteration of the trainer (train/trainer.ts) on a preset, kNN monitor and intermediate
// checkpoints off: data sharded by rank, SyncBatchNorm over all ranks, global Sinkhorn or gathered negatives, the
// per-step [loss, stop] all-reduce, the gradient all-reduce; the time of an iteration excludes waiting for data.
//
// The third measures small collectives in a loop, as rank 0 sees them (wall and CPU time): an all-reduce of 129
// float64 values (a SyncBatchNorm statistics vector of 64 channels; Gloo's all-gather on the calling thread), the
// same in float16 (which goes through c10d's worker threads, as large tensors do), and a SyncBatchNorm layer's
// forward and backward (two collectives and the normalization itself).
//
// Besides 1 process and N processes, the first two forms run a control: N independent processes, each on batch/N,
// with no process group and no exchange. Its time per step is the best any data-parallel implementation can reach on this machine (cores that
// slow each other down, shared caches and memory bandwidth, a hypervisor's vCPUs), so "of the ceiling" =
// T(N independent) / T(N processes) is the share of the ideal that distribution itself keeps.
//
// Each configuration runs in fresh worker processes started by spawnLocalWorkers; a worker prints one
// "BENCH {json}" line with its per-step times.
//
// "1 thread" bounds the intra-op threads only: a process also runs libvips decoding, libuv and V8 GC threads, so an
// unbound single process spreads over 1.2-1.3 cores of an otherwise idle machine, while N processes on N cores have
// no spare core to spread into. --pin gives each configuration as many CPUs as it has processes (taskset -a: CPU 0
// for one process, CPUs 0..N-1 shared by N). Binding each process to a CPU of its own was tried and is worse on
// the 2-vCPU VM of BENCHMARKS.md: every wake-up across CPUs then waits ~3 ms, and a small collective costs 3 ms.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, F, Flatten, Linear, ReLU, Sequential } from "../nn";
import { SGD } from "../optim";
import { keep, manualSeed, randint, randn, setNumThreads, tensor, tidy } from "../tensor";
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
  /** Time the trainer's iteration on this pretraining preset instead of the small CNN (default: the CNN). */
  pretrain?: string;
  /** Config overrides of the preset (key=value, as `seer pretrain` takes them), e.g. dist.syncBnGroupSize=1. */
  set?: string[];
  /** Run each configuration on as many CPUs as it has processes (CPUs 0..N-1; default false: all CPUs). */
  pin?: boolean;
  /** Rounds of the three configurations, interleaved (default 3); each figure is the median over the rounds. */
  rounds?: number;
}

/** What a worker runs: the bench's options, and whether it is one of the independent control's processes. */
type WorkerOptions = Required<ScalingBenchOptions> & { independent?: boolean };

interface WorkerReport {
  rank: number;
  /** Milliseconds per timed step. */
  stepMs: number[];
  /** Of which blocked in collectives: small CNN, in GradientAllReducer.synchronize(); trainer, in all of them. */
  syncMs: number[];
  /** Trainer: collectives per step. */
  collectives?: number;
  /** CPU time (user + system, all threads) of this process per timed step, in ms. */
  cpuMsPerStep: number;
}

export interface ScalingBenchResult {
  /** "small CNN" or the pretraining preset. */
  model: string;
  nproc: number;
  batch: number;
  /** Each figure is the median over the rounds of its configuration's median ms per step. */
  /** Median ms per step: one process on the whole batch. */
  singleMs: number;
  /** CPU ms per step (user + system, summed over the processes) of the two configurations: their difference is work
   * that distribution adds (communication, waiting that spins, duplicated per-process work). */
  singleCpuMs: number;
  distCpuMs: number;
  /** Median ms per step with nproc processes (the slowest rank each step). */
  distMs: number;
  /** Median ms per step of nproc independent processes on batch/nproc each (the slowest each step): the ceiling. */
  independentMs: number;
  /** singleMs / (nproc · independentMs): the efficiency this machine allows without any exchange. */
  ceiling: number;
  /** independentMs / distMs: the share of that ceiling the distributed run keeps. */
  ofCeiling: number;
  /**
   * Median ms per step blocked in collectives (small CNN: GradientAllReducer.synchronize(); trainer: every
   * collective) on the rank that waited least, i.e. mostly the exchange itself; the others also wait for it.
   */
  syncMs: number;
  /** Trainer: collectives per step (0 for the small CNN). */
  collectives: number;
  speedup: number;
  efficiency: number;
  /** Each round's efficiency and share of the ceiling (their spread shows the machine's noise). */
  roundsEfficiency: number[];
  roundsOfCeiling: number[];
  cpus: number;
  /** Whether each configuration was bound to as many CPUs as it has processes. */
  pinned: boolean;
  /** 1-minute load average of the machine before and after the runs (a shared machine: other work competes). */
  loadBefore: number;
  loadAfter: number;
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

/** User + system CPU ms of this process since `since`. */
const cpuMs = (since: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
};

/**
 * Binds every thread of this process (and, by inheritance, those it starts later) to CPUs 0..WORLD_SIZE-1: a
 * configuration of N processes runs on N CPUs. Node has no affinity call; util-linux's taskset -a sets it on all
 * the process's threads.
 */
function bindToWorldCpus(): void {
  const world = Number(process.env.WORLD_SIZE ?? "1");
  const cpus = `0-${world - 1}`;
  const r = spawnSync("taskset", ["-a", "-c", "-p", cpus, String(process.pid)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`scaling bench: --pin could not bind process ${process.pid} to CPUs ${cpus} with taskset: ${r.error?.message ?? r.stderr.trim()}`);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** One worker: trains on its slice of the batch and prints its step times (run via spawnLocalWorkers). */
async function worker(o: WorkerOptions): Promise<void> {
  if (o.pin) bindToWorldCpus();
  setNumThreads(1);
  const pg = o.independent ? undefined : initProcessGroupFromEnv({ timeoutMs: 120_000 }).pg;
  const rank = Number(process.env.RANK ?? "0");
  const world = Number(process.env.WORLD_SIZE ?? "1");
  manualSeed(0);
  const net = benchCnn();
  let reducer: GradientAllReducer | undefined;
  if (pg) {
    if (o.syncBn) convertSyncBatchNorm(net, pg);
    broadcastModule(net, pg);
    reducer = new GradientAllReducer(net, pg);
  }
  const opt = new SGD(net.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 });
  const local = o.batch / world;
  manualSeed(1 + rank);
  const x = keep(randn([local, 3, o.imageSize, o.imageSize]));
  const y = keep(randint(0, 10, [local]));
  const report: WorkerReport = { rank, stepMs: [], syncMs: [], cpuMsPerStep: 0 };
  let cpu0 = process.cpuUsage();
  for (let step = 0; step < o.warmup + o.steps; step++) {
    if (step === o.warmup) cpu0 = process.cpuUsage();
    if (step === o.warmup) pg?.barrier(); // the timed steps start together; then the all-reduce paces the ranks, as in training
    const t0 = performance.now();
    let sync = 0;
    tidy(() => {
      opt.zeroGrad();
      const loss = F.crossEntropy(net.forward(x), y);
      reducer?.prepare();
      loss.backward();
      const s0 = performance.now();
      reducer?.synchronize();
      sync = performance.now() - s0;
      opt.step();
    });
    if (step >= o.warmup) {
      report.stepMs.push(performance.now() - t0);
      report.syncMs.push(sync);
    }
  }
  report.cpuMsPerStep = cpuMs(cpu0) / o.steps;
  console.log(`BENCH ${JSON.stringify(report)}`);
  reducer?.dispose();
  pg?.barrier();
  pg?.destroy();
}

/**
 * One worker of --pretrain: the preset's run with batch o.batch (global), o.warmup + o.steps iterations, one thread
 * per process, the kNN monitor and intermediate checkpoints off; reports each iteration's time and how long the
 * rank was blocked in collectives during it.
 */
async function pretrainWorker(o: WorkerOptions, outDir: string): Promise<void> {
  if (o.pin) bindToWorldCpus();
  const { presetConfig } = await import("../train/presets");
  const { pretrain } = await import("../train/trainer");
  const { applyOverrides } = await import("../config/overrides");
  const nproc = Number(process.env.WORLD_SIZE ?? "1");
  const rank = Number(process.env.RANK ?? "0");
  // Independent: a single-process run on this rank's share of the batch, in its own folder (the trainer joins a
  // group only when the launcher's variables say so).
  if (o.independent) for (const k of ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"]) delete process.env[k];
  const config = applyOverrides(presetConfig(o.pretrain), [
    `data.batchSize=${o.independent ? o.batch / nproc : o.batch}`, `schedule.iterations=${o.warmup + o.steps}`, "optim.warmupIters=1", "knn.enabled=false",
    "run.checkpointEvery=0", "run.logEvery=1000", `run.threads=${o.independent ? 1 : nproc}`, "data.workers=0", ...o.set,
  ]);
  const report: WorkerReport = { rank, stepMs: [], syncMs: [], cpuMsPerStep: 0 };
  let cpu0 = process.cpuUsage();
  await pretrain({
    config, outDir: o.independent ? path.join(outDir, `rank-${rank}`) : outDir, progress: false, handleSignals: false, log: () => {},
    hooks: {
      afterIteration: (it, ms, blocked) => {
        // CPU from the end of the last warm-up iteration to the end of the last one (data loading included).
        if (it === o.warmup - 1) cpu0 = process.cpuUsage();
        if (it < o.warmup) return;
        report.stepMs.push(ms);
        report.syncMs.push(blocked?.blockedMs ?? 0);
        report.collectives = blocked?.collectives ?? 0;
        if (it === o.warmup + o.steps - 1) report.cpuMsPerStep = cpuMs(cpu0) / o.steps;
      },
    },
  });
  console.log(`BENCH ${JSON.stringify(report)}`);
}

/** One configuration's run: medians over its timed steps (see WorkerReport). */
interface ConfigTiming {
  stepMs: number;
  syncMs: number;
  cpuMs: number;
  collectives: number;
}

async function runConfig(nproc: number, o: WorkerOptions): Promise<ConfigTiming> {
  const reports: WorkerReport[] = [];
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-scaling-"));
  let r;
  try {
    r = await spawnLocalWorkers(nproc, __filename, ["--worker", JSON.stringify(o), outDir], {
      output: "capture",
      env: { OMP_NUM_THREADS: "1" },
      onLine: (_rank, line) => {
        if (line.startsWith("BENCH ")) reports.push(JSON.parse(line.slice(6)) as WorkerReport);
      },
    });
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
  if (!r.ok) throw new Error(`scaling bench with ${nproc}${o.independent ? " independent" : ""} process(es) failed: ${r.message}\n${r.output.flat().join("\n")}`);
  // Per step, the slowest rank sets the pace; the least time blocked is the rank that arrived last.
  const perStep = (key: "stepMs" | "syncMs", pick: (...xs: number[]) => number): number[] =>
    reports[0]![key].map((_, i) => pick(...reports.map((w) => w[key][i]!)));
  return {
    stepMs: median(perStep("stepMs", Math.max)), syncMs: median(perStep("syncMs", Math.min)),
    cpuMs: reports.reduce((a, w) => a + w.cpuMsPerStep, 0), // all processes together
    collectives: reports[0]!.collectives ?? 0,
  };
}

/** Runs 1 process on the whole batch, then nproc processes on slices of it; returns the medians and efficiency. */
export async function runScalingBench(opts: ScalingBenchOptions = {}): Promise<ScalingBenchResult> {
  const o: Required<ScalingBenchOptions> = {
    nproc: opts.nproc ?? 2, batch: opts.batch ?? 64, steps: opts.steps ?? 20, warmup: opts.warmup ?? 3,
    imageSize: opts.imageSize ?? 32, syncBn: opts.syncBn ?? false, pretrain: opts.pretrain ?? "", set: opts.set ?? [],
    pin: opts.pin ?? false, rounds: opts.rounds ?? 3,
  };
  if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new RangeError(`scaling bench: --rounds must be a positive integer, got ${o.rounds}`);
  if (o.batch % o.nproc !== 0) throw new RangeError(`scaling bench: batch ${o.batch} does not split over ${o.nproc} processes`);
  const cpus = os.availableParallelism?.() ?? os.cpus().length;
  if (o.pin && o.nproc > cpus) throw new RangeError(`scaling bench: --pin runs ${o.nproc} processes on ${o.nproc} CPUs, but this machine has ${cpus}`);
  const loadBefore = os.loadavg()[0]!;
  // Rounds interleave the three configurations, so that a slow spell of a shared machine hits all of them.
  const rounds: { single: ConfigTiming; dist: ConfigTiming; independent: ConfigTiming }[] = [];
  for (let r = 0; r < o.rounds; r++) {
    rounds.push({ single: await runConfig(1, o), dist: await runConfig(o.nproc, o), independent: await runConfig(o.nproc, { ...o, independent: true }) });
  }
  const loadAfter = os.loadavg()[0]!;
  const mid = (config: "single" | "dist" | "independent", key: keyof ConfigTiming): number => median(rounds.map((r) => r[config][key]));
  const [singleMs, distMs, independentMs] = [mid("single", "stepMs"), mid("dist", "stepMs"), mid("independent", "stepMs")];
  const speedup = singleMs / distMs;
  return {
    model: o.pretrain === "" ? "small CNN" : `${o.pretrain}${o.set.length ? ` ${o.set.join(" ")}` : ""} (trainer iteration)`, nproc: o.nproc, batch: o.batch,
    singleMs, distMs, independentMs, ceiling: singleMs / (o.nproc * independentMs), ofCeiling: independentMs / distMs,
    syncMs: mid("dist", "syncMs"), collectives: rounds[0]!.dist.collectives,
    singleCpuMs: mid("single", "cpuMs"), distCpuMs: mid("dist", "cpuMs"),
    speedup, efficiency: speedup / o.nproc,
    roundsEfficiency: rounds.map((r) => r.single.stepMs / (o.nproc * r.dist.stepMs)),
    roundsOfCeiling: rounds.map((r) => r.independent.stepMs / r.dist.stepMs),
    pinned: o.pin, cpus, loadBefore, loadAfter,
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
    if (flag === "--pin") {
      o.pin = true;
      continue;
    }
    if (flag === "--pretrain") {
      const preset = argv[++i];
      if (preset === undefined) throw new Error("scaling bench: --pretrain needs a preset name (seer pretrain --presets lists them)");
      o.pretrain = preset;
      continue;
    }
    if (flag === "--set") {
      const kv = argv[++i];
      if (kv === undefined || !kv.includes("=")) throw new Error("scaling bench: --set needs key=value");
      (o.set ??= []).push(kv);
      continue;
    }
    const v = Number(argv[++i]);
    if (!Number.isInteger(v) || v < 0) throw new Error(`scaling bench: ${flag} needs a non-negative integer`);
    if (flag === "--nproc") o.nproc = v;
    else if (flag === "--batch") o.batch = v;
    else if (flag === "--steps") o.steps = v;
    else if (flag === "--warmup") o.warmup = v;
    else if (flag === "--rounds") o.rounds = v;
    else if (flag === "--image-size") o.imageSize = v;
    else throw new Error(`scaling bench: unknown flag ${flag}`);
  }
  return o;
}

/** --latency, one worker: per-op wall and CPU (user, system) microseconds of small collectives, printed by rank 0. */
function latencyWorker(): void {
  setNumThreads(1);
  const { pg } = initProcessGroupFromEnv({ timeoutMs: 120_000 });
  const x = keep(randn([129], { dtype: "float64" }));
  const measure = (n: number, op: () => void): { wallUs: number; userUs: number; sysUs: number } => {
    for (let i = 0; i < 20; i++) op(); // warm-up
    pg.barrier();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) op();
    const wallUs = ((performance.now() - t0) * 1000) / n;
    const c = process.cpuUsage(c0);
    return { wallUs, userUs: c.user / n, sysUs: c.system / n };
  };
  const allReduce = measure(1000, () => void pg.allReduce(x, "sum"));
  const bnInput = keep(randn([16, 64, 8, 8], { requiresGrad: true }));
  const syncBn = measure(200, () =>
    tidy(() => {
      const [y] = pg.syncBatchNorm(bnInput, undefined, undefined, 1e-5);
      y.sum().backward();
    }),
  );
  const c10dPath = measure(200, () => void pg.allReduce(tensor(x.toArray() as number[], { dtype: "float16" }), "sum"));
  if (pg.rank === 0) {
    const fmt = (m: { wallUs: number; userUs: number; sysUs: number }): string =>
      `${m.wallUs.toFixed(0)} us wall, CPU ${m.userUs.toFixed(0)} us user + ${m.sysUs.toFixed(0)} us system`;
    console.log(`latency: ${pg.worldSize} processes, Gloo on loopback; 1-min load average ${os.loadavg()[0]!.toFixed(2)}`);
    console.log(`  allReduce of 129 float64 (on the calling thread)       ${fmt(allReduce)}`);
    console.log(`  allReduce of 129 float16 (c10d's worker threads)       ${fmt(c10dPath)}`);
    console.log(`  syncBatchNorm forward + backward, (16, 64, 8, 8) float32  ${fmt(syncBn)}`);
  }
  x.dispose();
  bnInput.dispose();
  pg.barrier();
  pg.destroy();
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  // --worker OPTIONS_JSON OUT_DIR: one rank of a configuration, the trainer's iteration or the small CNN's step.
  const runWorker = (o: WorkerOptions, outDir: string): Promise<void> => (o.pretrain ? pretrainWorker(o, outDir) : worker(o));
  const run =
    argv[0] === "--latency-worker"
      ? Promise.resolve().then(latencyWorker)
      : argv[0] === "--latency"
        ? spawnLocalWorkers(parseFlags(argv.slice(1)).nproc ?? 2, __filename, ["--latency-worker"], { env: { OMP_NUM_THREADS: "1" }, output: "inherit" }).then((r) => {
            if (!r.ok) throw new Error(`latency bench failed: ${r.message}`);
          })
      : argv[0] === "--worker"
      ? runWorker(JSON.parse(argv[1]!) as WorkerOptions, argv[2]!)
      : runScalingBench(parseFlags(argv)).then((r) => {
          console.log(`scaling bench: ${r.model}, global batch ${r.batch}, ${r.cpus} CPUs, 1 thread per process${r.pinned ? `, bound to ${r.nproc} CPU(s) / 1 CPU` : ""}; 1-min load average ${r.loadBefore.toFixed(2)} before, ${r.loadAfter.toFixed(2)} after`);
          console.log(`  1 process         ${r.singleMs.toFixed(1)} ms/step, CPU ${r.singleCpuMs.toFixed(1)} ms/step`);
          console.log(
            `  ${r.nproc} processes       ${r.distMs.toFixed(1)} ms/step` +
              (r.model === "small CNN" ? ` (of which gradient all-reduce ${r.syncMs.toFixed(1)} ms)` : ` (of which blocked in ${r.collectives} collectives ${r.syncMs.toFixed(1)} ms on the rank that waited least)`) +
              `, CPU ${r.distCpuMs.toFixed(1)} ms/step (all processes)`,
          );
          console.log(`  ${r.nproc} independent     ${r.independentMs.toFixed(1)} ms/step (no exchange: the ceiling, ${(100 * r.ceiling).toFixed(0)}%)`);
          console.log(`  speedup ${r.speedup.toFixed(2)}x, scaling efficiency ${(100 * r.efficiency).toFixed(0)}% (${(100 * r.ofCeiling).toFixed(0)}% of the ceiling)`);
          const pct = (xs: number[]): string => xs.map((x) => `${(100 * x).toFixed(0)}%`).join(" ");
          console.log(`  rounds: efficiency ${pct(r.roundsEfficiency)}; of the ceiling ${pct(r.roundsOfCeiling)}`);
          console.log(`JSON ${JSON.stringify(r)}`);
        });
  run.catch((e: Error) => {
    console.error(e.message);
    process.exitCode = 1;
  });
}
