// Pretraining configuration: every preset validates (the SEER ones without building their trunks), errors name the
// key, the resume guard ignores keys that do not change a run, and the kNN monitor's classifier is right.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError } from "../src/config/overrides";
import { modelStateShapes } from "../src/models/registry";
import { tensor } from "../src/tensor";
import { knnAccuracy } from "../src/train/knn_monitor";
import { PRETRAIN_PRESETS, modelOptions, presetConfig, runChangingDifferences, validatePretrainConfig } from "../src/train/presets";
import { pretrainCommand, resolvePretrainConfig } from "../src/train/pretrain";
import { splitSourceSpec } from "../src/train/pretrain_data";
import { captureCommand } from "./helpers/capture";

test("every preset validates; the SEER presets carry the paper's recipe", () => {
  for (const name of Object.keys(PRETRAIN_PRESETS)) {
    const c = presetConfig(name);
    validatePretrainConfig(c);
    // The trunk resolves (shapes only: RegNetY-256GF is 1.3B parameters).
    assert.ok(modelStateShapes(c.model.arch, modelOptions(c.model)).length > 0, name);
  }
  const seer = presetConfig("seer-regnety-256gf");
  assert.equal(seer.model.arch, "seer_regnet_y_256gf");
  assert.equal(seer.data.batchSize, 8192);
  assert.equal(seer.optim.baseLrPer256 * seer.data.batchSize / 256, 9.6);
  assert.deepEqual([seer.optim.larc, seer.optim.trustCoefficient, seer.optim.clip, seer.optim.weightDecay], [true, 0.001, false, 1e-5]);
  assert.deepEqual([seer.swav.headDims, seer.swav.headBatchNorm, seer.swav.prototypes], [[8192, 8192, 256], false, 16000]);
  assert.deepEqual([seer.swav.sinkhornIterations, seer.swav.epsilon, seer.swav.temperature, seer.swav.freezePrototypesIters], [10, 0.05, 0.1, 313]);
  assert.equal(seer.data.crops, "2x224@0.14-1+4x96@0.05-0.14");
  assert.deepEqual([seer.run.device, seer.run.precision, seer.run.channelsLast, seer.dist.syncBnGroupSize], ["cuda", "bf16", true, 64]);
  assert.equal(Object.keys(PRETRAIN_PRESETS).filter((n) => n.startsWith("seer-regnety-")).length, 6);
  // Presets are fresh copies: changing one does not change the next.
  presetConfig("swav-cifar-tiny").optim.baseLrPer256 = 99;
  assert.notEqual(presetConfig("swav-cifar-tiny").optim.baseLrPer256, 99);
});

test("config errors name the key", () => {
  const bad = (overrides: string[], pattern: RegExp): void => {
    assert.throws(() => resolvePretrainConfig("swav-cifar-tiny", overrides), (e: unknown) => e instanceof ConfigError && pattern.test(e.message));
  };
  bad(["optim.lrr=1"], /unknown key 'optim\.lrr'/);
  bad(["optim.momentum=fast"], /optim\.momentum: 'fast' is not a number/);
  bad(["optim.larc=yes"], /optim\.larc: 'yes' is not a boolean/);
  bad(["swav.headDims=128"], /swav\.headDims/);
  bad(["swav.headDims=[128,0]"], /swav\.headDims: expected a non-empty array of positive integers/);
  bad(["optim.momentum=1.5"], /optim\.momentum: expected a number in \[0, 1\)/);
  bad(["data.batchSize=0"], /data\.batchSize: expected an integer >= 1/);
  bad(["data.crops=2x32+banana"], /data\.crops: parseCropSpec/);
  bad(["method=byol"], /method: expected one of swav, simclr/);
  bad(["method=simclr", "data.crops=2x32+4x16"], /data\.crops: SimCLR takes exactly two views/);
  bad(["model.arch=regnet_y_201mf"], /model\.arch: Unknown model 'regnet_y_201mf'/);
  bad(["model.arch=resnet18", "model.depth=4"], /model\.depth: design overrides apply to RegNets only/);
  bad(["swav.queueLength=50"], /swav\.queueLength: a queue holds whole batches; 50 is below data\.batchSize 64/);
  bad(["schedule.iterations=5"], /optim\.warmupIters: the warmup \(10\) must be shorter/);
  bad(["optim.cosine=linear"], /optim\.cosine: expected one of global, after-warmup/);
  bad(["run.device=gpu"], /run\.device: expected cpu, cuda or cuda:N/);
  bad(["run.precision=fp16"], /run\.precision: expected one of fp32, bf16/);
  bad(["run.precision=bf16"], /run\.precision: bf16 is CUDA autocast; with run\.device=cpu use fp32/);
  assert.throws(() => resolvePretrainConfig("seer-regnety-512gf", []), /unknown preset 'seer-regnety-512gf' \(known: .*swav-cifar-tiny/);

  // JSON files: merged onto their "preset" with the same checks.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-pretrain-cfg-"));
  try {
    const file = path.join(dir, "mine.json");
    fs.writeFileSync(file, JSON.stringify({ preset: "simclr-cifar-tiny", optim: { baseLrPer256: 0.3 } }));
    const { config, name } = resolvePretrainConfig(file, ["schedule.iterations=50"], { data: "builtin:cifar10/test", threads: 1 });
    assert.equal(name, "mine");
    assert.deepEqual([config.method, config.optim.baseLrPer256, config.schedule.iterations, config.data.source, config.run.threads], ["simclr", 0.3, 50, "builtin:cifar10/test", 1]);
    fs.writeFileSync(file, JSON.stringify({ optim: { baseLR: 0.3 } }));
    assert.throws(() => resolvePretrainConfig(file, []), /mine\.json: unknown key 'optim\.baseLR'/);
    fs.writeFileSync(file, JSON.stringify({ swav: { prototypes: "many" } }));
    assert.throws(() => resolvePretrainConfig(file, []), /mine\.json: swav\.prototypes: expected number, got string/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("pretrainCommand: usage and config errors exit 2 with the key in the message; --dry-run builds nothing", async () => {
  const bad = await captureCommand(pretrainCommand, ["--config", "swav-cifar-tiny", "swav.epsilon=-1"]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /seer pretrain: swav\.epsilon: expected a number in \(0, 100\]/);
  const typo = await captureCommand(pretrainCommand, ["--confg", "x"]);
  assert.equal(typo.code, 2);
  assert.match(typo.err, /unknown option --confg/);
  const dry = await captureCommand(pretrainCommand, ["--config", "seer-regnety-128gf", "--dry-run"]);
  assert.equal(dry.code, 0);
  assert.match(dry.out, /seer_regnet_y_128gf[\s\S]*LARC\(trust 0\.001\)[\s\S]*out {8}runs\/seer-regnety-128gf/);
});

test("the resume guard ignores reporting keys and names the others", () => {
  const a = presetConfig("swav-cifar-tiny");
  const b = resolvePretrainConfig("swav-cifar-tiny", ["run.threads=1", "run.logEvery=1", "run.keep=9", "data.workers=2", "knn.every=10", "knn.k=200"]).config;
  assert.deepEqual(runChangingDifferences(a, b), []);
  const c = resolvePretrainConfig("swav-cifar-tiny", ["swav.epsilon=0.03", "data.crops=2x32+2x16"]).config;
  assert.deepEqual(runChangingDifferences(a, c).sort(), ['data.crops: "2x32@0.2-1" -> "2x32+2x16"', "swav.epsilon: 0.02 -> 0.03"]);
});

test("source specs: parts joined by +", () => {
  assert.deepEqual(splitSourceSpec("builtin:imagenette/train+builtin:tiny_coco/train"), ["builtin:imagenette/train", "builtin:tiny_coco/train"]);
  assert.deepEqual(splitSourceSpec("/data/shard-{000..009}.tar"), ["/data/shard-{000..009}.tar"]);
  assert.throws(() => splitSourceSpec("a++b"), /data\.source: empty part/);
});

test("knnAccuracy: weighted cosine votes", () => {
  // Two classes on two directions; scale does not matter (cosine).
  using train = tensor([[1, 0], [2, 0.1], [3, -0.1], [0, 1], [0.1, 2], [-0.1, 5]]);
  using trainLabels = tensor([0, 0, 0, 1, 1, 1], { dtype: "int64" });
  using test = tensor([[5, 1], [1, 4], [1, 1.2], [0.7, -0.1]]);
  using testLabels = tensor([0, 1, 1, 1], { dtype: "int64" });
  assert.equal(knnAccuracy(train, trainLabels, test, testLabels, { k: 1, temperature: 0.07 }), 0.75);
  // k = all 6: votes weighted by exp(s / T) still side with the nearer class for a small T...
  assert.equal(knnAccuracy(train, trainLabels, test, testLabels, { k: 6, temperature: 0.01 }), 0.75);
  // k above the number of train rows is clamped to it.
  assert.equal(knnAccuracy(train, trainLabels, test, testLabels, { k: 100, temperature: 0.01, numClasses: 2 }), 0.75);
});
