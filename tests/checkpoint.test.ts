// Checkpoints: atomic writes, pruning, and detection of damaged files with fallback to the previous checkpoint.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { CheckpointManager } from "../src/train/checkpoint";
import { disposeTensors } from "../src/io/safetensors";
import { arange, tensor, tidy } from "../src/tensor";
import { assertNoLeak } from "./helpers/assert";

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-ckpt-"));
}

function save(m: CheckpointManager, step: number): void {
  using w = tidy(() => arange(0, 6).float().mul(step));
  using buf = tensor([step], { dtype: "int64" });
  m.save({ step, model: new Map([["fc.weight", w]]), tensors: new Map([["optim.0.momentum_buffer", buf]]), state: { step, sampler: { epoch: 1, position: step * 10 } } });
}

test("saves, keeps the last K, and loads the newest", () => {
  assertNoLeak(() => {
    const dir = tmpDir();
    const m = new CheckpointManager(dir, 2, () => {});
    for (const step of [10, 20, 30]) save(m, step);
    assert.deepEqual(m.list(), [30, 20]);
    assert.equal(fs.readdirSync(dir).filter((n) => n.includes(".tmp-")).length, 0, "no temp folders left");
    const c = m.loadLatest()!;
    assert.equal(c.step, 30);
    assert.deepEqual(c.model.get("fc.weight")!.toArray(), [0, 30, 60, 90, 120, 150]);
    assert.deepEqual(c.state, { step: 30, sampler: { epoch: 1, position: 300 } });
    disposeTensors(c.model);
    disposeTensors(c.tensors);
    fs.rmSync(dir, { recursive: true });
  });
});

test("a truncated checkpoint is detected and the previous one is used", () => {
  const dir = tmpDir();
  const warnings: string[] = [];
  const m = new CheckpointManager(dir, 3, (w) => warnings.push(w));
  save(m, 1);
  save(m, 2);
  const file = path.join(dir, "checkpoint-000000002", "model.safetensors");
  fs.truncateSync(file, fs.statSync(file).size - 5);
  const c = m.loadLatest()!;
  assert.equal(c.step, 1);
  assert.match(warnings[0]!, /checkpoint-000000002 is damaged: model.safetensors has \d+ bytes, expected \d+/);
  disposeTensors(c.model);
  disposeTensors(c.tensors);

  // A flipped byte of the same length is caught by the hash.
  save(m, 3);
  const f3 = path.join(dir, "checkpoint-000000003", "state.safetensors");
  const bytes = fs.readFileSync(f3);
  bytes[bytes.length - 1] ^= 0xff;
  fs.writeFileSync(f3, bytes);
  assert.match(m.verify(3)!, /SHA-256/);
  fs.rmSync(dir, { recursive: true });
});

test("an interrupted save leaves no checkpoint and is cleaned up by the next save", () => {
  const dir = tmpDir();
  const m = new CheckpointManager(dir, 3, () => {});
  fs.mkdirSync(path.join(dir, "checkpoint-000000005.tmp-99999")); // a save that died before its rename
  assert.deepEqual(m.list(), []);
  assert.equal(m.loadLatest(), undefined);
  save(m, 6);
  assert.deepEqual(fs.readdirSync(dir).sort(), ["checkpoint-000000006"]);
  fs.rmSync(dir, { recursive: true });
});
