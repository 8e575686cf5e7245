// Distributed training: launcher environment parsing; collectives between 2 processes on 127.0.0.1 (Gloo);
// SyncBatchNorm + gradient all-reduce on 2 processes against one process on the whole batch; failures (a worker
// SIGKILLed, a worker hung, a rank that never joins) end the others within their timeout, naming the rank; the
// launcher stops the rest and names the failed rank.
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as readline from "readline";
import {
  bucketize, DistEnvError, firstSlurmHost, freePort, fromEnv, initProcessGroup, spawnLocalWorkers, torchrunEnv,
} from "../src/dist";
import { disposeTensors, loadSafetensors } from "../src/io/safetensors";
import { F } from "../src/nn";
import { cat, full, memory, noGrad, randn, tidy, zeros } from "../src/tensor";
import { assertClose } from "./helpers/assert";
import { runScalingBench } from "../src/dist/scaling_bench";
import { buildTinyCnn, makeBatch, train } from "./helpers/dist_model";

const WORKER = path.join(__dirname, "helpers", "dist_worker.js");

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string[];
  stderr: string;
  /** When it exited (Date.now()). */
  endedAt: number;
}

/**
 * Starts 2 workers of a scenario with their own torchrun variables (no launcher in between, so that each exit is
 * the worker's own). onLine may react to output, e.g. kill a worker; resolves with both runs.
 */
async function runPair(
  args: string[],
  onLine: (rank: number, line: string, pids: number[]) => void = () => {},
  onExit: (rank: number, pids: number[]) => void = () => {},
): Promise<Run[]> {
  const port = await freePort();
  const pids: number[] = [];
  const runs = [0, 1].map((rank) => {
    const child = spawn(process.execPath, [WORKER, ...args], {
      env: { ...process.env, OMP_NUM_THREADS: "1", ...torchrunEnv(rank, 2, "127.0.0.1", port) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    pids[rank] = child.pid!;
    const run: Run = { code: null, signal: null, stdout: [], stderr: "", endedAt: 0 };
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      run.stdout.push(line);
      onLine(rank, line, pids);
    });
    child.stderr!.on("data", (d: Buffer) => (run.stderr += d.toString()));
    return new Promise<Run>((resolve) =>
      child.on("close", (code, signal) => {
        Object.assign(run, { code, signal, endedAt: Date.now() });
        onExit(rank, pids);
        resolve(run);
      }),
    );
  });
  return Promise.all(runs);
}

const killQuietly = (pid: number | undefined): void => {
  try {
    if (pid !== undefined) process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
};

// ---- environment ----

test("fromEnv reads torchrun's variables and SLURM's, and names what is missing or wrong", () => {
  const torchrun = { RANK: "1", WORLD_SIZE: "4", LOCAL_RANK: "1", MASTER_ADDR: "10.0.0.1", MASTER_PORT: "29500", LOCAL_WORLD_SIZE: "2" };
  assert.deepEqual(fromEnv(torchrun), { rank: 1, worldSize: 4, localRank: 1, localWorldSize: 2, masterAddr: "10.0.0.1", masterPort: 29500, source: "torchrun" });

  const slurm = { SLURM_PROCID: "5", SLURM_NTASKS: "8", SLURM_LOCALID: "1", SLURM_JOB_NODELIST: "gpu[007-008,012],cpu1", SLURM_JOB_ID: "123456" };
  assert.deepEqual(fromEnv(slurm), { rank: 5, worldSize: 8, localRank: 1, localWorldSize: undefined, masterAddr: "gpu007", masterPort: 20000 + (123456 % 20000), source: "slurm" });
  assert.equal(fromEnv({ ...slurm, MASTER_ADDR: "head", MASTER_PORT: "1234" }).masterAddr, "head");
  assert.equal(fromEnv({ ...slurm, MASTER_PORT: "1234" }).masterPort, 1234);

  const throwsWith = (env: Record<string, string>, re: RegExp): void => assert.throws(() => fromEnv(env), (e: Error) => e instanceof DistEnvError && re.test(e.message));
  const { MASTER_PORT: _p, ...noPort } = torchrun;
  throwsWith(noPort, /MASTER_PORT \(the port rank 0 listens on\) is not set/);
  const { LOCAL_RANK: _l, MASTER_ADDR: _a, ...two } = torchrun;
  throwsWith(two, /LOCAL_RANK .*, MASTER_ADDR .* are not set/);
  throwsWith({ ...torchrun, RANK: "x1" }, /RANK="x1" is not a non-negative integer/);
  throwsWith({ ...torchrun, RANK: "4" }, /RANK=4 is not below WORLD_SIZE=4/);
  throwsWith({ ...torchrun, MASTER_PORT: "70000" }, /MASTER_PORT=70000 is not a TCP port/);
  throwsWith({ ...torchrun, WORLD_SIZE: "0", RANK: "0", LOCAL_RANK: "0" }, /WORLD_SIZE=0/);
  const { SLURM_NTASKS: _n, ...noTasks } = slurm;
  throwsWith(noTasks, /SLURM_NTASKS not set/);
  const { SLURM_JOB_NODELIST: _h, ...noHosts } = slurm;
  throwsWith(noHosts, /SLURM_JOB_NODELIST/);
  throwsWith({}, /no distributed environment: set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT/);

  assert.equal(firstSlurmHost("node1"), "node1");
  assert.equal(firstSlurmHost("a1,a2"), "a1");
  assert.equal(firstSlurmHost("node[003-005,9],gpu1"), "node003");
  assert.equal(firstSlurmHost("rack[1-2]-n[07-08]"), "rack1-n07");
});

test("a rank whose store never answers fails after the timeout, naming the store and the rank", async () => {
  const port = await freePort();
  const t0 = Date.now();
  assert.throws(
    () => initProcessGroup({ rank: 1, worldSize: 2, masterAddr: "127.0.0.1", masterPort: port, timeoutMs: 1000 }),
    (e: Error) => new RegExp(`rank 1 could not join the store at 127\\.0\\.0\\.1:${port} \\(run by rank 0\\) within 1000 ms`).test(e.message),
  );
  assert.ok(Date.now() - t0 < 10000, `took ${Date.now() - t0} ms`);
  assert.throws(() => initProcessGroup({ rank: 2, worldSize: 2, masterAddr: "127.0.0.1", masterPort: port }), /rank 2 is not an integer in 0\.\.1/);
  assert.throws(() => initProcessGroup({ backend: "nccl", rank: 0, worldSize: 1, masterAddr: "127.0.0.1", masterPort: port }), /backend 'nccl' is not in this build|NCCL/);
});

test("bucketize groups tensors by dtype in order, then cuts each group at the byte cap", () => {
  tidy(() => {
    // BatchNorm buffers alternate float32 statistics with int64 counters.
    const ts = [zeros([4]), zeros([1], { dtype: "int64" }), zeros([4]), zeros([1], { dtype: "int64" }), zeros([8]), zeros([2])];
    const ids = (buckets: readonly (readonly { id: number }[])[]): number[][] => buckets.map((b) => b.map((t) => ts.findIndex((u) => u.id === t.id)));
    assert.deepEqual(ids(bucketize(ts, 1 << 20)), [[0, 2, 4, 5], [1, 3]]);
    // 32-byte cap: 4 + 4 floats fill a bucket, 8 floats fill the next, 2 floats start another.
    assert.deepEqual(ids(bucketize(ts, 32)), [[0, 2], [4], [5], [1, 3]]);
    // A tensor over the cap gets a bucket of its own.
    assert.deepEqual(ids(bucketize(ts, 8)), [[0], [2], [4], [5], [1], [3]]);
  });
});

test("a world of one: collectives are identities", async () => {
  const pg = initProcessGroup({ rank: 0, worldSize: 1, masterAddr: "127.0.0.1", masterPort: await freePort(), timeoutMs: 5000 });
  try {
    noGrad(() => {
      const { x } = makeBatch("float32");
      const before = x.toArray();
      pg.allReduce(x, "avg");
      assert.deepEqual(x.toArray(), before);
      assert.deepEqual(pg.allGather(x).shape, x.shape);
      pg.barrier();
      x.dispose();
    });
  } finally {
    pg.destroy();
  }
});

test("a world of one: syncBatchNorm is training-mode BatchNorm, forward, gradients and running statistics", async () => {
  const pg = initProcessGroup({ rank: 0, worldSize: 1, masterAddr: "127.0.0.1", masterPort: await freePort(), timeoutMs: 5000 });
  const live = memory().numTensors;
  try {
    for (const [shape, affine] of [[[6, 3, 4, 5], true], [[8, 5], true], [[6, 3, 4, 5], false], [[5, 4, 7], true]] as const) {
      tidy(() => {
        const c = shape[1];
        const x = randn([...shape], { dtype: "float64", requiresGrad: true });
        const w = affine ? randn([c], { dtype: "float64", requiresGrad: true }) : undefined;
        const b = affine ? randn([c], { dtype: "float64", requiresGrad: true }) : undefined;
        const dy = randn([...shape], { dtype: "float64" }); // a loss <y, dy> that does not ignore any direction
        const [y, running] = pg.syncBatchNorm(x, w, b, 1e-5);
        y.mul(dy).sum().backward();
        const got = [y, x.grad!, ...(affine ? [w!.grad!, b!.grad!] : [])].map((t) => t.detach().clone());
        for (const t of [x, w, b]) if (t) t.grad = undefined;
        // Reference: ATen's own BatchNorm in training mode; momentum 1 leaves the batch's statistics as running ones.
        const rm = zeros([c], { dtype: "float64" });
        const rv = zeros([c], { dtype: "float64" });
        const ref = F.batchNorm(x, { weight: w, bias: b, runningMean: rm, runningVar: rv, training: true, momentum: 1, eps: 1e-5 });
        ref.mul(dy).sum().backward();
        const want = [ref, x.grad!, ...(affine ? [w!.grad!, b!.grad!] : [])];
        const what = `${shape.join("x")}${affine ? "" : " without affine"}`;
        ["y", "dx", "dweight", "dbias"].slice(0, want.length).forEach((name, i) =>
          assertClose(got[i]!, want[i]!, { atol: 1e-10, rtol: 1e-10, what: `${what} ${name}` }),
        );
        const n = x.numel / c;
        assertClose(running, cat([rm, rv, full([1], n, { dtype: "float64" })]), { atol: 1e-12, rtol: 1e-12, what: `${what} running statistics` });
      });
    }
    // One value per channel over the group has no variance.
    tidy(() => assert.throws(() => pg.syncBatchNorm(randn([1, 3]), undefined, undefined, 1e-5), /more than 1 value per channel over the group's ranks, got 1/));
    // bf16 input whose mean is 10 standard deviations (the input gradient is formed in float32 there): within bf16's
    // rounding of ATen's float64 BatchNorm on the same (rounded) input.
    tidy(() => {
      const x = randn([8, 4, 5, 5], { dtype: "float64" }).add(10).to("bfloat16").requiresGrad_(true);
      const w = randn([4]).requiresGrad_(true);
      const b = randn([4]).requiresGrad_(true);
      const dy = randn([8, 4, 5, 5], { dtype: "float64" });
      const [y] = pg.syncBatchNorm(x, w, b, 1e-5);
      assert.equal(y.dtype, "bfloat16");
      y.to("float64").mul(dy).sum().backward();
      const x64 = x.detach().to("float64").requiresGrad_(true);
      F.batchNorm(x64, { weight: w.detach().to("float64"), bias: b.detach().to("float64"), training: true, eps: 1e-5 }).mul(dy).sum().backward();
      const scale = x64.grad!.abs().max().item();
      assertClose(x.grad!.to("float64"), x64.grad!, { atol: 0.02 * scale, rtol: 0, what: "bf16 dx" });
    });
  } finally {
    pg.destroy();
  }
  assert.equal(memory().numTensors, live, "syncBatchNorm leaked tensors");
});

// ---- two processes ----

describe("2 processes", () => {
  // One pair of workers runs the collectives and then the SyncBatchNorm training (process start-up dominates).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-dist-"));
  let runs: Run[] = [];
  before(async () => {
    runs = await runPair(["basics", dir]);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("collectives: allReduce sum/max/min/avg, allGather in rank order, broadcast, barrier, autograd allReduce and allGather, allReduceValues, sub-groups", () => {
    for (const [rank, r] of runs.entries()) {
      assert.equal(r.code, 0, `rank ${rank} failed: ${r.stderr}`);
      const line = r.stdout.find((l) => l.startsWith("RESULT "));
      assert.ok(line, `rank ${rank} printed no result`);
      const got = JSON.parse(line.slice("RESULT ".length)) as Record<string, unknown>;
      assert.equal(got.rank, rank);
      assert.deepEqual(got.sum, [3, 30]);
      assert.deepEqual(got.max, [1, 0, 5]);
      assert.deepEqual(got.min, [0, -1, 5]);
      assert.deepEqual(got.avg, [0.5, 1]);
      assert.deepEqual(got.sumInt, [3, 14]);
      assert.deepEqual(got.mixed, [3, 3, 2, 3, 3, 3]);
      assert.deepEqual(got.transposed, [3, 6, 9, 12]);
      assert.deepEqual(got.gatherShape, [2, 2]);
      assert.deepEqual(got.gather, [0, 0.5, 1, 1.5]);
      assert.deepEqual(got.gatherList, [0, 10]);
      assert.deepEqual(got.broadcast, [8, 1]);
      assert.deepEqual(got.withGradValue, [3, 4]);
      assert.deepEqual(got.withGradGrad, [3, 2]); // d/dx of sum_r <y, [r+1, 1]> = [1+2, 1+1]
      assert.deepEqual(got.gatherWithGradValue, [1, 2, 2, 2]);
      assert.deepEqual(got.gatherWithGradGrad, [3, 3]);
      assert.deepEqual(got.valuesSum, [1, 20, 0.5]);
      assert.deepEqual(got.valuesMax, [1, 0]);
      assert.deepEqual(got.splitSum, [rank + 3]);
      assert.deepEqual(got.splitRanks, [rank]);
      assert.equal(got.newGroupMember, rank === 1);
      assert.deepEqual(got.afterSubgroups, [2]);
      // Averages: a (1 + 3) / 2; b and c count a zero where unused; d has none anywhere; e's was dropped on both.
      for (const [how, grads] of Object.entries(got.reducer as Record<string, unknown>)) {
        assert.deepEqual(grads, [[2, 2], [1, 1], [2.5, 2.5], null, null], `rank ${rank}, ${how}`);
      }
    }
  });

  test("SyncBatchNorm on 2 processes with half the batch each trains exactly as 1 process with BatchNorm on the whole batch", () => {
    for (const [rank, r] of runs.entries()) {
      assert.equal(r.code, 0, `rank ${rank} failed: ${r.stderr}`);
      // float64 overlapped: buckets started during backward (all but those holding the first layers' parameters,
      // which backward finishes last); float32 reduced everything after backward.
      const early = r.stdout.filter((l) => l.startsWith("EARLY ")).map((l) => JSON.parse(l.slice(6)) as { dtype: string; early: number; buckets: number });
      const f64 = early.find((e) => e.dtype === "float64")!;
      assert.ok(f64.buckets > 2 && f64.early >= f64.buckets, `rank ${rank}: ${f64.early} buckets started during backward over the steps (${f64.buckets} per step)`);
      assert.equal(early.find((e) => e.dtype === "float32")!.early, 0);
    }
    for (const [dtype, tol] of [["float64", 1e-10], ["float32", 1e-5]] as const) {
      const net = buildTinyCnn(dtype, 0);
      const { x, y } = makeBatch(dtype);
      train(net, x, y);
      const expected = net.stateDict();
      for (const rank of [0, 1]) {
        const got = loadSafetensors(path.join(dir, `rank${rank}_${dtype}.safetensors`));
        assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort());
        for (const [name, t] of expected) assertClose(got.get(name)!, t, { atol: tol, rtol: tol, what: `${dtype} rank ${rank} ${name}` });
        disposeTensors(got);
      }
      x.dispose();
      y.dispose();
      net.dispose();
    }
  });
});

test("a worker killed with SIGKILL mid-run: the other exits non-zero within its timeout, naming the dead rank", async () => {
  const timeoutMs = 4000;
  let killedAt = 0;
  const runs = await runPair(["loop", String(timeoutMs)], (rank, line, pids) => {
    if (rank === 1 && line === "step 5" && killedAt === 0) {
      killedAt = Date.now();
      killQuietly(pids[1]);
    }
  });
  assert.equal(runs[1]!.signal, "SIGKILL");
  const survivor = runs[0]!;
  assert.equal(survivor.code, 1, `rank 0: code ${survivor.code}, stderr ${survivor.stderr}`);
  assert.match(survivor.stderr, /DistError: allReduce failed on rank 0, 2 ranks, gloo: .*Rank 1 did not answer a roll call/);
  const waited = survivor.endedAt - killedAt;
  assert.ok(waited < timeoutMs + 2000 + 3000, `rank 0 took ${waited} ms to fail`);
});

test("a worker that hangs: the other fails after the collective timeout, naming the hung rank", async () => {
  const timeoutMs = 1500;
  let hungSince = 0;
  const runs = await runPair(
    ["hang", String(timeoutMs)],
    (rank, line) => {
      if (rank === 1 && line === "hanging") hungSince = Date.now();
    },
    (rank, pids) => rank === 0 && killQuietly(pids[1]), // the hung rank never ends by itself
  );
  const survivor = runs[0]!;
  assert.ok(hungSince > 0, "rank 1 never hung");
  const waited = survivor.endedAt - hungSince;
  assert.ok(waited >= timeoutMs / 2 && waited < timeoutMs + 2000 + 3000, `rank 0 failed ${waited} ms after rank 1 hung`);
  assert.equal(survivor.code, 1, `rank 0: code ${survivor.code}, stderr ${survivor.stderr}`);
  assert.match(survivor.stderr, /allReduce failed on rank 0.*(timed out|Timed out).*Rank 1 did not answer a roll call/);
});

test("the launcher stops the other workers when one dies and names the failed rank", async () => {
  const lines: string[] = [];
  const r = await spawnLocalWorkers(2, WORKER, ["selfkill", "20000"], { output: "capture", onLine: (rank, l) => lines.push(`${rank}: ${l}`), killGraceMs: 1000 });
  assert.equal(r.ok, false);
  assert.equal(r.failedRank, 1);
  assert.match(r.message, /^rank 1 was killed by SIGKILL; stopped rank 0$/);
  assert.equal(r.exits[1]!.signal, "SIGKILL");
  assert.equal(r.exits[0]!.stopped, true);
  assert.ok(lines.some((l) => l === "1: step 2"), lines.join("\n"));
});

test("the scaling bench times 1 process, 2 processes and the no-exchange control, and refuses bad options", async () => {
  // A functional check of the benchmark's three configurations (times are not asserted: BENCHMARKS.md has them).
  const r = await runScalingBench({ steps: 2, warmup: 1, rounds: 1, batch: 8 });
  assert.equal(r.model, "small CNN");
  for (const [what, ms] of [["1 process", r.singleMs], ["2 processes", r.distMs], ["2 independent", r.independentMs]] as const) {
    assert.ok(Number.isFinite(ms) && ms > 0, `${what}: ${ms} ms/step`);
  }
  assert.equal(r.roundsEfficiency.length, 1);
  assert.ok(r.ceiling > 0 && r.ofCeiling > 0 && r.efficiency > 0);
  assert.equal(r.collectives, 0);
  await assert.rejects(runScalingBench({ batch: 7 }), /batch 7 does not split over 2 processes/);
  await assert.rejects(runScalingBench({ rounds: 0 }), /--rounds must be a positive integer/);
  await assert.rejects(runScalingBench({ pin: true, nproc: os.cpus().length + 1, batch: 8 * (os.cpus().length + 1) }), /--pin runs \d+ processes on \d+ CPUs/);
});
