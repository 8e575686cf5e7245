// `seer eval knn|linear|finetune|lowshot` (src/eval/command.ts) end to end on a small folder of class subfolders
// written with sharp, with a random-init RegNetX-200MF (CIFAR stem) as the baseline backbone: the table and the JSON,
// the feature cache shared between the subcommands, the low-shot subset file, fine-tuning (and its --scratch twin
// of a saved trunk), help and argument errors.
import "./helpers/quiet_omp"; // first: before libtorch loads
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import sharp from "sharp";
import { evalCommand, type EvalReport } from "../src/eval/command";
import { memory } from "../src/tensor";
import { captureCommand } from "./helpers/capture";

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-evalcmd-"));
after(() => fs.rmSync(TMP, { recursive: true, force: true }));

/** Two classes of 6 images each: dark-red-ish and bright-blue-ish noise, 32x32 (train) or 36x36 (test). */
async function makeSplit(root: string, size: number, seed: number): Promise<void> {
  for (const [ci, cls] of ["blue", "red"].entries()) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    for (let i = 0; i < 6; i++) {
      const px = Buffer.alloc(size * size * 3);
      let s = seed * 7919 + ci * 104729 + i * 31 + 1;
      for (let p = 0; p < px.length; p++) {
        s = (s * 1103515245 + 12345) >>> 0;
        const channel = p % 3;
        const base = ci === 1 ? (channel === 0 ? 200 : 30) : channel === 2 ? 220 : 40;
        px[p] = Math.min(255, base + (s >>> 27));
      }
      await sharp(px, { raw: { width: size, height: size, channels: 3 } }).png().toFile(path.join(root, cls, `${i}.png`));
    }
  }
}

const TRAIN = path.join(TMP, "train");
const TEST = path.join(TMP, "test");
const ready = Promise.all([makeSplit(TRAIN, 32, 1), makeSplit(TEST, 36, 2)]);
const CACHE = path.join(TMP, "features");
const SUBSETS = path.join(TMP, "lowshot");
const common = ["--checkpoint", "random:regnet_x_200mf", "--small-stem", "--train", TRAIN, "--test", TEST, "--resize", "32", "--crop", "32", "--cache-dir", CACHE, "--threads", "2"];

const run = (argv: string[]): Promise<{ code: number; out: string; err: string }> => captureCommand(evalCommand, argv);

test("eval knn: table, then JSON from cached features", async () => {
  await ready;
  const before = memory().numTensors;
  const table = await run(["knn", ...common, "--k", "5"]);
  assert.equal(table.code, 0, table.err);
  assert.match(table.out, /method\s+top-1\s+top-5\s+n train\s+n test/);
  assert.match(table.out, /knn k=5 T=0\.07\s+\d+\.\d\d\s+100\.00\s+12\s+12/); // 2 classes: top-5 is 100%
  assert.match(table.out, /regnet_x_200mf \(random init, seed 0\)/);
  assert.equal(fs.readdirSync(CACHE).length, 2, "train and test features cached");

  const json = await run(["knn", ...common, "--k", "5", "--json"]);
  assert.equal(json.code, 0, json.err);
  const r = JSON.parse(json.out) as EvalReport;
  assert.equal(r.train.fromCache, true);
  assert.equal(r.test.fromCache, true);
  assert.deepEqual([r.nTrain, r.nTest, r.params.k, r.params.temperature], [12, 12, 5, 0.07]);
  assert.equal(r.transform, "resize 32, crop 32");
  assert.ok(r.top1 >= 0 && r.top1 <= 100);
  assert.equal(memory().numTensors, before, "the command frees everything");
});

test("eval linear and lowshot reuse the cached features; the subset file is written once", async () => {
  await ready;
  const lin = await run(["linear", ...common, "--epochs", "3", "--batch", "4", "--json"]);
  assert.equal(lin.code, 0, lin.err);
  const r = JSON.parse(lin.out) as EvalReport;
  assert.equal(r.train.fromCache, true);
  assert.equal(r.params.epochs, 3);
  assert.equal(r.params.batchNorm, true);

  const args = ["lowshot", ...common, "--pct", "50", "--subset-dir", SUBSETS, "--mode", "linear", "--epochs", "2", "--json"];
  const first = JSON.parse((await run(args)).out) as EvalReport;
  assert.equal(first.lowshot!.created, true);
  assert.deepEqual(first.lowshot!.classCounts, [3, 3]);
  assert.equal(first.nTrain, 6);
  assert.equal(first.nTest, 12);
  assert.match(first.method, /^lowshot 50% linear/);
  const mtime = fs.statSync(first.lowshot!.file).mtimeMs;
  const knn = JSON.parse((await run([...args, "--mode", "knn", "--k", "3"])).out) as EvalReport;
  assert.equal(knn.lowshot!.created, false);
  assert.equal(knn.lowshot!.file, first.lowshot!.file);
  assert.equal(fs.statSync(first.lowshot!.file).mtimeMs, mtime);
  assert.match(knn.method, /^lowshot 50% knn k=3/);
  assert.equal(fs.readdirSync(CACHE).length, 2, "still the same two feature files");
});

test("eval finetune: trunk + head end to end, JSON report; lowshot fine-tunes by default; --scratch re-initializes a saved trunk", async () => {
  await ready;
  const before = memory().numTensors;
  const ft = await run(["finetune", ...common, "--iterations", "3", "--batch", "4", "--json"]);
  assert.equal(ft.code, 0, ft.err);
  const r = JSON.parse(ft.out) as EvalReport;
  assert.match(r.method, /^finetune 3 it \(1\.0 ep\)$/);
  assert.deepEqual([r.nTrain, r.nTest, r.params.size, r.params.iterations, r.params.batchSize, r.params.lr], [12, 12, 32, 3, 4, 0.05]);
  assert.equal(r.transform, "resize 32, crop 32");
  assert.ok(r.top1 >= 0 && r.top1 <= 100 && r.top5 === 100, `top-1 ${r.top1}, top-5 ${r.top5} (2 classes)`);
  assert.ok(Number.isFinite(r.params.finalTrainLoss as number));

  const ls = await run(["lowshot", ...common, "--pct", "50", "--subset-dir", SUBSETS, "--iterations", "2", "--batch", "2", "--json"]);
  assert.equal(ls.code, 0, ls.err);
  const l = JSON.parse(ls.out) as EvalReport;
  assert.match(l.method, /^lowshot 50% finetune 2 it/);
  assert.equal(l.nTrain, 6);

  // A saved trunk and its scratch twin: same architecture, random init, so a different result than the weights.
  const { createModel } = await import("../src/models/registry");
  const { saveSafetensors } = await import("../src/io/safetensors");
  const { manualSeed } = await import("../src/tensor");
  manualSeed(5);
  const m = createModel("regnet_x_200mf", { numClasses: 0, smallImageStem: true });
  const file = path.join(TMP, "trunk.safetensors");
  saveSafetensors(file, m.stateDict(), { arch: "regnet_x_200mf", smallImageStem: "true" });
  m.dispose();
  const withCkpt = common.slice(2);
  const table = await run(["finetune", "--checkpoint", file, ...withCkpt, "--iterations", "2", "--batch", "4", "--scratch"]);
  assert.equal(table.code, 0, table.err);
  assert.match(table.out, /regnet_x_200mf \(random init, seed 0\)/);
  assert.match(table.out, /finetune 2 it \(0\.7 ep\) \(scratch\)/);
  assert.equal(memory().numTensors, before, "the command frees everything");
});

test("help and argument errors", async () => {
  const top = await run(["--help"]);
  assert.equal(top.code, 0);
  assert.match(top.out, /knn\s.*linear\s|lowshot/s);
  const help = await run(["lowshot", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /fine-tuning \(default; or --mode linear \/ knn\)/);
  assert.match(help.out, /--pct/);
  assert.equal((await run(["svm"])).code, 2);
  const missing = await run(["knn", "--train", TRAIN, "--test", TEST]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /--checkpoint is required/);
  const unknown = await run(["knn", "--bogus", "1"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /unknown option --bogus/);
  const badMode = await run(["lowshot", ...common, "--pct", "50", "--mode", "svm"]);
  assert.equal(badMode.code, 2);
  assert.match(badMode.err, /finetune, linear or knn for --mode but received 'svm'/);
  const bigBatch = await run(["finetune", ...common, "--batch", "64"]);
  assert.equal(bigBatch.code, 2);
  assert.match(bigBatch.err, /--batch 64 is more than the 12 train images/);
  const noPct = await run(["lowshot", ...common]);
  assert.equal(noPct.code, 2);
  assert.match(noPct.err, /--pct is required/);
  // A test folder whose class folders differ from the train folder's: the labels would not line up.
  const other = path.join(TMP, "other");
  fs.cpSync(path.join(TEST, "blue"), path.join(other, "blue"), { recursive: true });
  fs.cpSync(path.join(TEST, "red"), path.join(other, "green"), { recursive: true });
  const mismatch = await run(["knn", ...common.slice(0, 6), other, ...common.slice(7)]);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.err, /different classes/);
  const badCkpt = await run(["knn", ...common.slice(2), "--checkpoint", path.join(TMP, "missing")]);
  assert.equal(badCkpt.code, 1);
  assert.match(badCkpt.err, /does not exist/);
});
