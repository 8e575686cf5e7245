// Pretraining resumes exactly: a run killed (SIGKILL) at a random step and resumed ends with the same weights,
// optimizer state and queue, bit for bit, as an uninterrupted run with the same seed and threads; a truncated
// newest checkpoint is detected and the previous one used; a changed config is refused unless forced.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { ConfigError } from "../src/config/overrides";
import { resolvePretrainConfig } from "../src/train/pretrain";
import { pretrain } from "../src/train/trainer";
import { makeFixture, runChildUntil } from "./helpers/pretrain_child";

const quiet = { progress: false, handleSignals: false };

/** The files of a finished run that must match bit for bit. */
function finalFiles(runDir: string): Record<string, Buffer> {
  const ckpt = path.join(runDir, "checkpoint-000000015");
  return {
    "backbone.safetensors": fs.readFileSync(path.join(runDir, "backbone.safetensors")),
    "model.safetensors": fs.readFileSync(path.join(ckpt, "model.safetensors")),
    "state.safetensors (optimizer, queue)": fs.readFileSync(path.join(ckpt, "state.safetensors")),
  };
}

test("a run killed at a random step and resumed (past a truncated checkpoint) ends bit-identical", async () => {
  const { dir, configFile } = await makeFixture();
  const { config } = resolvePretrainConfig(configFile, []);
  try {
    // Uninterrupted, in this process.
    const runA = path.join(dir, "a");
    const a = await pretrain({ config, outDir: runA, log: () => {}, ...quiet });
    assert.equal(a.status, "completed");
    assert.equal(a.step, 15);

    // In a child killed with SIGKILL once metrics.jsonl shows step >= k (checkpoints every 3 steps exist by then).
    const runB = path.join(dir, "b");
    const k = 7 + Math.floor(Math.random() * 5); // 7..11
    const killed = await runChildUntil(["--config", configFile, "--out", runB, "--no-progress"], runB, k, "SIGKILL");
    assert.equal(killed.signal, "SIGKILL", `the child should have been killed, it exited with ${killed.code}:\n${killed.output}`);
    assert.ok(!fs.existsSync(path.join(runB, "backbone.safetensors")), "a killed run has no final weights");

    // Damage the newest checkpoint: cut its weights file in half.
    const checkpoints = fs.readdirSync(runB).filter((n) => /^checkpoint-\d{9}$/.test(n)).sort();
    assert.ok(checkpoints.length >= 2, `expected 2+ checkpoints, found ${checkpoints.join(", ")}`);
    const newest = path.join(runB, checkpoints[checkpoints.length - 1]!, "model.safetensors");
    fs.truncateSync(newest, Math.floor(fs.statSync(newest).size / 2));
    const previousStep = Number(checkpoints[checkpoints.length - 2]!.slice("checkpoint-".length));

    // Resumed, in this process: the damaged checkpoint is reported and skipped.
    const lines: string[] = [];
    const b = await pretrain({ config, outDir: runB, log: (l) => lines.push(l), ...quiet });
    assert.equal(b.status, "completed");
    assert.equal(b.resumedFrom, previousStep, `resumed from the checkpoint before the damaged one (killed after step ${killed.sentAt})`);
    assert.match(lines.join("\n"), /is damaged: model\.safetensors has \d+ bytes, expected \d+ \(truncated\?\); trying the previous one/);

    const [fa, fb] = [finalFiles(runA), finalFiles(runB)];
    for (const name of Object.keys(fa)) assert.ok(fa[name]!.equals(fb[name]!), `${name} differs between the uninterrupted and the resumed run`);
    // metrics.jsonl reads as one run: steps 1..15 once each.
    const steps = fs.readFileSync(path.join(runB, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { step: number }).step);
    assert.deepEqual(steps, Array.from({ length: 15 }, (_, i) => i + 1));

    // The folder's config is guarded: a change that alters the run is refused, unless forced.
    const changed = resolvePretrainConfig(configFile, ["optim.baseLrPer256=0.3", "run.logEvery=5"]).config;
    await assert.rejects(pretrain({ config: changed, outDir: runA, log: () => {}, ...quiet }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /optim\.baseLrPer256: 4\.8 -> 0\.3/);
      assert.doesNotMatch(e.message, /run\.logEvery/, "reporting keys do not change the run");
      return true;
    });
    const forced = await pretrain({ config: changed, outDir: runA, force: true, log: () => {}, ...quiet });
    assert.equal(forced.resumedFrom, 15);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
