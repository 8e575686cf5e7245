// Pretraining stops cleanly: a non-finite loss stops the run with a message naming the step and the loss, after
// saving the last good state; SIGINT finishes the current step, saves a checkpoint and exits with status 130.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { CheckpointManager } from "../src/train/checkpoint";
import { resolvePretrainConfig } from "../src/train/pretrain";
import { NonFiniteLossError, pretrain } from "../src/train/trainer";
import { lastMetricsStep, makeFixture, runChildUntil } from "./helpers/pretrain_child";

test("a NaN loss stops the run, naming the step and the loss, after saving the state before that step", async () => {
  const { dir, configFile } = await makeFixture();
  try {
    const { config } = resolvePretrainConfig(configFile, ["run.checkpointEvery=0"]);
    const out = path.join(dir, "nan");
    // Iteration 5 (0-based) yields NaN: step 6 in the run's counting.
    const hooks = { beforeBackward: (iteration: number, loss: import("../src/tensor").Tensor) => (iteration === 5 ? loss.mul(Number.NaN) : loss) };
    await assert.rejects(pretrain({ config, outDir: out, hooks, progress: false, handleSignals: false, log: () => {} }), (e: unknown) => {
      assert.ok(e instanceof NonFiniteLossError);
      assert.equal(e.step, 6);
      assert.ok(Number.isNaN(e.loss));
      assert.match(e.message, /the loss is NaN at step 6; training stopped before applying it\. The state after step 5 is saved in .*checkpoint-000000005/);
      return true;
    });
    // The saved state is intact and points at the batch that failed: the first of epoch 1 (5 batches of 8 an epoch).
    const m = new CheckpointManager(out, 10, () => {});
    assert.deepEqual(m.list(), [5]);
    assert.equal(m.verify(5), undefined);
    const c = m.load(5);
    try {
      const sampler = c.state["sampler"] as { epoch: number; position: number };
      assert.deepEqual([sampler.epoch, sampler.position], [1, 0]);
      for (const [name, t] of c.model) if (t.dtype === "float32") assert.equal(t.isfinite().all().item(), 1, `${name} is finite`);
    } finally {
      for (const t of [...c.model.values(), ...c.tensors.values()]) t.dispose();
    }
    assert.equal(lastMetricsStep(out), 5, "no metrics line for the failed step");
    // Resuming without the fault finishes the run from there.
    const r = await pretrain({ config, outDir: out, progress: false, handleSignals: false, log: () => {} });
    assert.deepEqual([r.status, r.resumedFrom, r.step], ["completed", 5, 15]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("SIGINT finishes the step, saves a checkpoint and exits 130", async () => {
  const { dir, configFile } = await makeFixture({ schedule: { iterations: 400 }, run: { checkpointEvery: 0 } });
  try {
    const out = path.join(dir, "sigint");
    const r = await runChildUntil(["--config", configFile, "--out", out, "--no-progress"], out, 2, "SIGINT");
    assert.equal(r.code, 130, r.output);
    const stopped = lastMetricsStep(out);
    assert.ok(stopped >= 2 && stopped < 400, `stopped at step ${stopped}`);
    assert.match(r.output, new RegExp(`SIGINT: finishing the current iteration[\\s\\S]*interrupted by SIGINT at step ${stopped} of 400`));
    const m = new CheckpointManager(out, 10, () => {});
    assert.deepEqual(m.list(), [stopped], "one checkpoint, at the step it stopped after");
    assert.equal(m.verify(stopped), undefined);
    assert.ok(!fs.existsSync(path.join(out, "backbone.safetensors")));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
