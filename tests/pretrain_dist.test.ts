// Data-parallel pretraining on 2 processes (Gloo over loopback, 1 thread each, real CIFAR-10 images, float64):
// - 2 processes on 4 images each take the steps of 1 process on the 8 images together, for SwAV (Sinkhorn's sums
//   all-reduced, a sharded queue) and SimCLR (negatives gathered with their gradient), with BatchNorm synchronized
//   over both ranks; with BatchNorm kept per rank they do not (the comparison can fail); a checkpoint the 2
//   processes wrote resumes in 1 process on the same trajectory (the queue and sampler position are stored in one
//   process's layout);
// - `seer pretrain --nproc 2`: rank 1 SIGKILLed mid-run -> every rank exits non-zero and the message names rank 1;
//   the same command resumes from the last checkpoint and ends bit-identical to an uninterrupted run; Ctrl-C to the
//   launcher -> both ranks stop after the same iteration, which rank 0 saves, status 130; rank 1 hung (SIGSTOP) ->
//   rank 0 fails after --dist-timeout naming rank 1, and the launcher exits non-zero.
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnLocalWorkers } from "../src/dist";
import { disposeTensors, loadSafetensors } from "../src/io/safetensors";
import { memory, type Tensor } from "../src/tensor";
import { resolvePretrainConfig } from "../src/train/pretrain";
import { pretrain, type PretrainResult } from "../src/train/trainer";
import { assertClose } from "./helpers/assert";
import { PRETRAIN_CLI, PRETRAIN_WORKER, tinyDistConfig, writeConfig } from "./helpers/dist_pretrain";
import { lastMetricsStep } from "./helpers/pretrain_child";

const quiet = { progress: false, handleSignals: false, log: () => {} };
const ckpt = (run: string, step: number): string => path.join(run, `checkpoint-${String(step).padStart(9, "0")}`);

/** One process, float64, in this test process; asserts it leaves no tensor behind. */
async function singleProcess(configFile: string, outDir: string): Promise<PretrainResult> {
  const { config } = resolvePretrainConfig(configFile, []);
  const before = memory().numTensors;
  const r = await pretrain({ config, outDir, dtype: "float64", processGroup: null, ...quiet });
  assert.equal(memory().numTensors, before, `pretrain() leaked ${memory().numTensors - before} native tensors`);
  return r;
}

/** 2 processes, float64, through the launcher (each rank checks its own leaks); returns rank 0's result. */
async function twoProcesses(configFile: string, outDir: string): Promise<PretrainResult> {
  const r = await spawnLocalWorkers(2, PRETRAIN_WORKER, [configFile, outDir], { output: "capture" });
  assert.ok(r.ok, `${r.message}\n${r.output.map((lines, rank) => lines.map((l) => `[rank ${rank}] ${l}`).join("\n")).join("\n")}`);
  const results = r.output.map((lines) => JSON.parse(lines.find((l) => l.startsWith("RESULT "))!.slice(7)) as PretrainResult);
  assert.deepEqual(results.map((x) => [x.rank, x.worldSize, x.status, x.step]), [[0, 2, "completed", 6], [1, 2, "completed", 6]]);
  assert.equal(results[1]!.lastLoss, results[0]!.lastLoss, "every rank reports the global mean loss");
  return results[0]!;
}

/** Every tensor of a checkpoint: the model (weights and BN statistics), the optimizer's momenta, the SwAV queue. */
function checkpointTensors(dir: string): Map<string, Tensor> {
  const all = new Map<string, Tensor>();
  for (const file of ["model.safetensors", "state.safetensors"]) for (const [k, t] of loadSafetensors(path.join(dir, file))) all.set(`${file}:${k}`, t);
  return all;
}

/** The largest |a - b| over two checkpoints' tensors (same names and shapes required). */
function maxDifference(a: string, b: string): { max: number; where: string } {
  const [ta, tb] = [checkpointTensors(a), checkpointTensors(b)];
  try {
    assert.deepEqual([...ta.keys()].sort(), [...tb.keys()].sort());
    let worst = { max: 0, where: "" };
    for (const [k, t] of ta) {
      if (t.dtype === "int64") continue; // BN counters: compared by assertSameState
      const d = t.sub(tb.get(k)!).abs().max().item();
      if (d > worst.max) worst = { max: d, where: k };
    }
    return worst;
  } finally {
    disposeTensors(ta);
    disposeTensors(tb);
  }
}

/** Checkpoint b holds the state of checkpoint a up to rounding (atol/rtol 1e-9 in float64). */
function assertSameState(a: string, b: string, what: string): void {
  const [ta, tb] = [checkpointTensors(a), checkpointTensors(b)];
  try {
    assert.deepEqual([...tb.keys()].sort(), [...ta.keys()].sort(), `${what}: the same tensors`);
    for (const [k, t] of ta) assertClose(tb.get(k)!, t, { atol: 1e-9, rtol: 1e-9, what: `${what} ${k}` });
  } finally {
    disposeTensors(ta);
    disposeTensors(tb);
  }
}

const losses = (run: string): number[] =>
  fs.readFileSync(path.join(run, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { loss: number }).loss);

describe("2 processes take the steps of 1 process on the whole batch", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-pretrain-dist-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const method of ["swav", "simclr"] as const) {
    test(`${method}: weights, BN statistics, optimizer state${method === "swav" ? " and queue" : ""} after 6 steps equal 1 process's (1e-9)`, async () => {
      const configFile = writeConfig(dir, method, tinyDistConfig(method));
      const one = path.join(dir, `${method}-1`);
      const two = path.join(dir, `${method}-2`);
      const r1 = await singleProcess(configFile, one);
      await twoProcesses(configFile, two);
      assert.equal(r1.worldSize, 1);
      assertSameState(ckpt(one, 6), ckpt(two, 6), `${method}, 2 processes vs 1:`);
      const [l1, l2] = [losses(one), losses(two)];
      assert.equal(l2.length, 6);
      l1.forEach((l, i) => assert.ok(Math.abs(l - l2[i]!) < 1e-9, `step ${i + 1}: loss ${l2[i]} with 2 processes, ${l} with 1`));
      // Only rank 0 wrote: one set of files.
      assert.deepEqual(fs.readdirSync(two).sort(), ["backbone.safetensors", "checkpoint-000000003", "checkpoint-000000006", "config.json", "metrics.jsonl", "summary.json"]);
      const state = JSON.parse(fs.readFileSync(path.join(ckpt(two, 3), "state.json"), "utf8")) as { state: { worldSize: number; sampler: { position: number }; queue?: { filled: number[] } } };
      assert.equal(state.state.worldSize, 2);
      assert.equal(state.state.sampler.position, 24, "the sampler position counts the images of both ranks");
      if (method === "swav") assert.deepEqual(state.state.queue?.filled, [16, 16], "the queue counts the rows of both ranks");

      if (method === "swav") {
        // The checkpoint of the 2 processes at step 3 resumes in 1 process onto the same trajectory.
        const resumed = path.join(dir, "swav-2-then-1");
        fs.mkdirSync(resumed);
        fs.cpSync(ckpt(two, 3), ckpt(resumed, 3), { recursive: true });
        fs.copyFileSync(path.join(two, "config.json"), path.join(resumed, "config.json"));
        const r = await singleProcess(configFile, resumed);
        assert.equal(r.resumedFrom, 3);
        assertSameState(ckpt(one, 6), ckpt(resumed, 6), "swav, 2 processes to step 3, then 1:");
      }
    });
  }

  test("swav with BatchNorm per rank (dist.syncBnGroupSize=1) drifts from 1 process: the comparison above can fail", async () => {
    const configFile = writeConfig(dir, "swav-localbn", tinyDistConfig("swav", { dist: { syncBnGroupSize: 1 } }));
    const one = path.join(dir, "swav-1");
    if (!fs.existsSync(ckpt(one, 6))) await singleProcess(configFile, one); // (the swav test above made it when it ran)
    const two = path.join(dir, "swav-localbn-2");
    await twoProcesses(configFile, two);
    const { max, where } = maxDifference(ckpt(one, 6), ckpt(two, 6));
    assert.ok(max > 1e-4, `BatchNorm over 4 images per rank should change the run, but the largest difference is ${max} (${where})`);
  });
});

interface CliRun {
  code: number | null;
  output: string;
  /** Date.now() at exit. */
  endedAt: number;
}

/**
 * `seer pretrain --nproc 2 ARGS` in a child (the launcher); every 10 ms onTick sees the output so far, the last
 * step in metrics.jsonl and the launcher's pid, e.g. to signal a worker.
 */
function runCli(args: string[], runDir: string, onTick: (output: string, step: number, launcherPid: number) => void = () => {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PRETRAIN_CLI, "--nproc", "2", "--no-progress", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    const timer = setInterval(() => onTick(output, lastMetricsStep(runDir), child.pid!), 10);
    child.on("error", (e) => {
      clearInterval(timer);
      reject(e);
    });
    child.on("exit", (code) => {
      clearInterval(timer);
      resolve({ code, output, endedAt: Date.now() });
    });
  });
}

/** The pid rank `rank` printed ("[rank 1] rank       1 of 2: pid 1234"). */
function workerPid(output: string, rank: number): number | undefined {
  const m = new RegExp(`\\[rank ${rank}\\] rank +${rank} of 2: pid (\\d+)`).exec(output);
  return m ? Number(m[1]) : undefined;
}

const signalQuietly = (pid: number, sig: NodeJS.Signals): void => {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
};

describe("seer pretrain --nproc 2: faults", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-pretrain-dist-faults-"));
  let configFile = "";
  before(() => {
    configFile = writeConfig(dir, "swav", tinyDistConfig("swav", { schedule: { iterations: 12 }, run: { checkpointEvery: 3 } }));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("rank 1 killed mid-run: every rank exits non-zero naming rank 1; the rerun resumes and ends bit-identical", async () => {
    const killedRun = path.join(dir, "killed");
    let killedAt = 0;
    let killedAfter = -1;
    const killed = await runCli(["--config", configFile, "--out", killedRun, "--dist-timeout", "20"], killedRun, (output, step) => {
      const pid = workerPid(output, 1);
      if (killedAt === 0 && pid !== undefined && step >= 5) {
        killedAt = Date.now();
        killedAfter = step;
        signalQuietly(pid, "SIGKILL");
      }
    });
    assert.ok(killedAt > 0, `rank 1 was never killed:\n${killed.output}`);
    assert.equal(killed.code, 1, killed.output);
    assert.match(killed.output, /seer pretrain: rank 1 was killed by SIGKILL; (then rank 0 exited with code 1|stopped rank 0)/);
    assert.ok(killed.endedAt - killedAt < 15_000, `the launcher took ${killed.endedAt - killedAt} ms to end after the kill`);
    assert.ok(!fs.existsSync(path.join(killedRun, "backbone.safetensors")), "a failed run has no final weights");
    assert.deepEqual(fs.readdirSync(killedRun).filter((n) => n.includes(".tmp")), [], "no partial checkpoint");
    const last = Math.floor(Math.min(killedAfter, 11) / 3) * 3;

    const rerun = await runCli(["--config", configFile, "--out", killedRun, "--dist-timeout", "20"], killedRun);
    assert.equal(rerun.code, 0, rerun.output);
    const resumedAt = Number(/resume +from .*checkpoint-(\d+) /.exec(rerun.output)?.[1]);
    assert.ok(resumedAt >= last && resumedAt <= last + 3, `resumed at ${resumedAt}; the kill came after step ${killedAfter}:\n${rerun.output}`);
    assert.match(rerun.output, /done +12 iterations \(resumed at \d+\)/);
    assert.match(rerun.output, /note: each of the \d+ synchronized BatchNorm layers waits on 2 collectives .*dist\.syncBnGroupSize=1/, "CPU processes with SyncBN are told its cost");

    // Resuming in 2 processes is exact: the same files as a run that was never interrupted.
    const whole = path.join(dir, "whole");
    const uninterrupted = await runCli(["--config", configFile, "--out", whole], whole);
    assert.equal(uninterrupted.code, 0, uninterrupted.output);
    for (const f of ["backbone.safetensors", "checkpoint-000000012/model.safetensors", "checkpoint-000000012/state.safetensors"]) {
      assert.ok(fs.readFileSync(path.join(whole, f)).equals(fs.readFileSync(path.join(killedRun, f))), `${f} differs between the resumed and the uninterrupted run`);
    }
  });

  test("Ctrl-C to the launcher: both ranks stop after the same iteration, rank 0 saves it, exit status 130", async () => {
    const run = path.join(dir, "interrupted");
    let sent = false;
    const r = await runCli(["--config", configFile, "--out", run], run, (_output, step, launcher) => {
      if (!sent && step >= 3) {
        sent = true;
        signalQuietly(launcher, "SIGINT");
      }
    });
    assert.equal(r.code, 130, r.output);
    const m = /\[rank 0\] interrupted by SIGINT at step (\d+) of 12 .*saved .*checkpoint-0*(\d+)\./.exec(r.output);
    assert.ok(m && m[1] === m[2], `rank 0 should save the step it stopped at:\n${r.output}`);
    assert.ok(fs.existsSync(ckpt(run, Number(m[1]))));
    assert.doesNotMatch(r.output, /\[rank 1\] seer pretrain:/, "rank 1 stops without an error");
  });

  test("rank 1 hung (SIGSTOP): rank 0 fails after --dist-timeout naming rank 1, and the launcher ends the job", async () => {
    const hungRun = path.join(dir, "hung");
    const timeoutS = 6;
    let hungAt = 0;
    let pid1 = 0;
    const hung = await runCli(["--config", configFile, "--out", hungRun, "--dist-timeout", String(timeoutS)], hungRun, (output, step) => {
      const pid = workerPid(output, 1);
      if (hungAt === 0 && pid !== undefined && step >= 2) {
        hungAt = Date.now();
        pid1 = pid;
        signalQuietly(pid, "SIGSTOP");
      }
    });
    if (pid1) signalQuietly(pid1, "SIGKILL"); // in case it outlived the launcher
    assert.ok(hungAt > 0, `rank 1 was never stopped:\n${hung.output}`);
    assert.equal(hung.code, 1, hung.output);
    assert.match(hung.output, /seer pretrain: rank 0 exited with code 1 \(.*Rank 1 did not answer a roll call.*\); stopped rank 1/);
    const waited = hung.endedAt - hungAt;
    assert.ok(waited >= timeoutS * 1000 * 0.5 && waited < timeoutS * 1000 + 10_000, `the job ended ${waited} ms after rank 1 hung`);
  });
});
