// Feature extraction and its cache (src/eval/features.ts), and loading backbones for evaluation
// (src/eval/backbone.ts), on a handful of real images written with sharp into class folders in a temp folder, with
// a tiny random RegNet. Checks: (N, numFeatures) rows in record order with bad images skipped and counted, the
// eval transform's pixels (torchvision CenterCrop offsets and padding, HWC → CHW, normalization), the cache written
// once and reused (same file, same mtime, same values), keys that change with the transform and the model, and no
// tensor leaks.
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import sharp from "sharp";
import { folderSource } from "../src/data/sources";
import { loadBackbone } from "../src/eval/backbone";
import { AS_IS_TRANSFORM, cachedFeatures, centerCropHwc, defaultEvalTransform, extractFeatures, featureCacheFile, numClassesOf } from "../src/eval/features";
import { saveSafetensors } from "../src/io/safetensors";
import { createModel, type CreateModelOptions } from "../src/models/registry";
import { IMAGENET_MEAN, IMAGENET_STD } from "../src/data/multicrop";
import { manualSeed, memory, noGrad, tensor, type Tensor } from "../src/tensor";
import { assertClose } from "./helpers/assert";

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-evalfeat-"));
after(() => fs.rmSync(TMP, { recursive: true, force: true }));

/** A tiny RegNetX: 2 blocks of widths 8 and 16, 8-wide stem. */
const TINY: CreateModelOptions = { depth: 2, w0: 8, wa: 8, wm: 2, groupWidth: 8, stemWidth: 8, smallImageStem: true, numClasses: 0 };

function noisePixels(w: number, h: number, seed: number): Buffer {
  const px = Buffer.alloc(w * h * 3);
  let s = seed * 2654435761 + 1;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    px[i] = s >>> 24;
  }
  return px;
}

/** root/<class>/<i>.png of various sizes, plus one file that is not an image. */
async function makeFolder(root: string): Promise<void> {
  const sizes = [[40, 30], [32, 32], [50, 36]];
  for (const [ci, cls] of ["ant", "bee", "cow"].entries()) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    for (const [i, [w, h]] of sizes.entries()) {
      await sharp(noisePixels(w!, h!, ci * 10 + i), { raw: { width: w!, height: h!, channels: 3 } }).png().toFile(path.join(root, cls, `${i}.png`));
    }
  }
  fs.writeFileSync(path.join(root, "bee", "9-bad.png"), "this is not an image");
}

const ROOT = path.join(TMP, "images");
const ready = makeFolder(ROOT);

test("center crop: torchvision offsets (round half to even) and zero padding", () => {
  // A 5 (w) x 4 (h) image whose pixel (x, y) has value 10·y + x in every channel.
  const data = new Uint8Array(5 * 4 * 3);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 5; x++) data.fill(10 * y + x, (y * 5 + x) * 3, (y * 5 + x + 1) * 3);
  const img = { width: 5, height: 4, data };
  const at = (out: Uint8Array, size: number, x: number, y: number): number => out[(y * size + x) * 3]!;
  // S = 3: top = round(0.5) = 0, left = round(1.0) = 1.
  const c3 = centerCropHwc(img, 3);
  assert.deepEqual([at(c3, 3, 0, 0), at(c3, 3, 2, 2)], [1, 23]);
  // S = 2: top = round(1.0) = 1, left = round(1.5) = 2.
  const c2 = centerCropHwc(img, 2);
  assert.deepEqual([at(c2, 2, 0, 0), at(c2, 2, 1, 1)], [12, 23]);
  // S = 6: pad top (6-4)//2 = 1 and left (6-5)//2 = 0; then nothing to crop.
  const c6 = centerCropHwc(img, 6);
  assert.deepEqual([at(c6, 6, 0, 0), at(c6, 6, 0, 1), at(c6, 6, 4, 4), at(c6, 6, 5, 1), at(c6, 6, 0, 5)], [0, 0, 34, 0, 0]);
});

test("extract: (N, numFeatures) in record order, bad files skipped and counted, transform applied, no leaks", async () => {
  await ready;
  const source = await folderSource(ROOT, { labels: true });
  assert.equal(source.length, 10);
  manualSeed(0);
  using model = createModel("regnet_x_200mf", TINY);
  const before = memory().numTensors;
  const transform = { ...AS_IS_TRANSFORM, resizeShortSide: 36, centerCrop: 32 };
  const logged: string[] = [];
  const set = await extractFeatures(model, source, { transform, batchSize: 4, progress: false, log: (m) => logged.push(m) });
  assert.deepEqual(set.features.shape, [9, model.numFeatures]);
  assert.equal(set.features.dtype, "float32");
  assert.deepEqual(set.labels.toArray(), [0, 0, 0, 1, 1, 1, 2, 2, 2]);
  // Records: ant/0..2 (0-2), bee/0..2 (3-5), bee/9-bad (6), cow/0..2 (7-9).
  assert.deepEqual(Array.from(set.recordIndices), [0, 1, 2, 3, 4, 5, 7, 8, 9]);
  assert.equal(set.records, 10);
  assert.equal(set.totalSkipped, 1);
  assert.equal(set.skipped.not_image, 1);
  assert.equal(logged.length, 1);
  assert.deepEqual(set.classes, ["ant", "bee", "cow"]);
  assert.equal(numClassesOf(set), 3);
  assert.equal(model.training, true, "training mode restored");

  // selectRecords: rows of the given records, the bad one has none.
  const sub = set.selectRecords([1, 6, 8]);
  assert.deepEqual(Array.from(sub.recordIndices), [1, 8]);
  assert.deepEqual(sub.labels.toArray(), [0, 2]);
  sub.dispose();
  set.dispose();
  assert.equal(memory().numTensors, before, "no tensors left behind");
});

test("extract: pixels reach the model as CHW, /255, ImageNet-normalized (checked on a lossless 32x32 image)", async () => {
  await ready;
  const source = await folderSource(ROOT, { labels: true });
  const one = { ...source, length: 1, at: () => source.at(1), description: "one" }; // ant/1.png is 32x32
  manualSeed(1);
  using model = createModel("regnet_x_200mf", TINY);
  using set = await extractFeatures(model, one, { transform: AS_IS_TRANSFORM, progress: false });
  const px = noisePixels(32, 32, 1);
  const chw = new Float32Array(3 * 32 * 32);
  for (let c = 0; c < 3; c++) for (let i = 0; i < 32 * 32; i++) chw[c * 1024 + i] = (px[i * 3 + c]! / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;
  model.eval();
  using x = tensor(chw, { shape: [1, 3, 32, 32] });
  using expected = noGrad(() => model.forwardFeatures(x));
  assertClose(set.features, expected, { atol: 1e-5, rtol: 1e-4, what: "features" });
  // Mixed sizes without a crop are refused with a hint.
  await assert.rejects(extractFeatures(model, source, { transform: AS_IS_TRANSFORM, progress: false, log: () => {} }), /differ in size.*--crop/);
});

test("cache: written once, reused on the second call (same file, mtime and values); other keys, other files", async () => {
  await ready;
  const source = await folderSource(ROOT, { labels: true });
  manualSeed(2);
  using model = createModel("regnet_x_200mf", TINY);
  const cacheDir = path.join(TMP, "cache");
  const o = { modelId: "tiny seed 2", cacheDir, transform: { ...AS_IS_TRANSFORM, resizeShortSide: 36, centerCrop: 32 }, progress: false as const, log: () => {} };
  const first = await cachedFeatures(model, source, o);
  assert.equal(first.fromCache, false);
  assert.ok(first.file && fs.existsSync(first.file));
  assert.equal(first.file, featureCacheFile(model, source, o));
  assert.match(path.basename(first.file), /-images-[0-9a-f]{16}\.safetensors$/);
  const mtime = fs.statSync(first.file).mtimeMs;

  const second = await cachedFeatures(model, source, o);
  assert.equal(second.fromCache, true);
  assert.equal(second.file, first.file);
  assert.equal(fs.statSync(first.file).mtimeMs, mtime, "not rewritten");
  assert.deepEqual(second.features.toArray(), first.features.toArray());
  assert.deepEqual(second.labels.toArray(), first.labels.toArray());
  assert.deepEqual(Array.from(second.recordIndices), Array.from(first.recordIndices));
  assert.equal(second.totalSkipped, 1);
  assert.deepEqual(second.classes, ["ant", "bee", "cow"]);

  const otherCrop = featureCacheFile(model, source, { ...o, transform: { ...o.transform, centerCrop: 28 } });
  const otherModel = featureCacheFile(model, source, { ...o, modelId: "tiny seed 3" });
  assert.equal(new Set([first.file, otherCrop, otherModel]).size, 3);

  const third = await cachedFeatures(model, source, { ...o, recompute: true });
  assert.equal(third.fromCache, false);
  for (const s of [first, second, third]) s.dispose();
});

test("backbones: random:<arch>, a bare state dict file, and a checkpoint folder with backbone./head. keys", async () => {
  manualSeed(5);
  using src = createModel("regnet_x_200mf", TINY);
  // A checkpoint folder of an SSL model: backbone.* plus a head tensor that must be ignored.
  const ckpt = path.join(TMP, "run", "checkpoint-000000010");
  fs.mkdirSync(ckpt, { recursive: true });
  const sd = new Map<string, Tensor>([...src.stateDict()].map(([k, t]) => [`backbone.${k}`, t]));
  using headW = tensor([[1, 2]]);
  sd.set("head.0.weight", headW);
  saveSafetensors(path.join(ckpt, "model.safetensors"), sd);
  const fromFolder = loadBackbone({ checkpoint: ckpt, arch: "regnet_x_200mf", modelOptions: TINY, smallImageStem: true });
  try {
    assert.equal(fromFolder.backbone.training, false);
    for (const [k, t] of src.stateDict()) assert.deepEqual(fromFolder.backbone.stateDict().get(k)!.toArray(), t.toArray(), k);
    assert.match(fromFolder.identity, /model\.safetensors bytes \d+ mtime/);
  } finally {
    fromFolder.backbone.dispose();
  }
  // A bare backbone file that records its architecture in the metadata; the run folder finds it.
  const run = path.join(TMP, "run");
  saveSafetensors(path.join(run, "backbone.safetensors"), src.stateDict(), { arch: "regnet_x_200mf", smallImageStem: "true" });
  const fromRun = loadBackbone({ checkpoint: run, modelOptions: TINY });
  assert.equal(fromRun.weightsFile, path.join(run, "backbone.safetensors"));
  assert.equal(fromRun.smallImageStem, true);
  fromRun.backbone.dispose();
  // Without --arch and without metadata: a clear error.
  const bare = path.join(TMP, "bare.safetensors");
  saveSafetensors(bare, src.stateDict());
  assert.throws(() => loadBackbone({ checkpoint: bare }), /--arch/);
  // The wrong architecture: the load error names the file.
  assert.throws(() => loadBackbone({ checkpoint: bare, arch: "regnet_x_200mf", smallImageStem: true }), /bare\.safetensors: cannot load into regnet_x_200mf/);
  // random:<arch> is seeded.
  const r1 = loadBackbone({ checkpoint: "random:regnet_x_200mf", modelOptions: TINY, seed: 4 });
  const r2 = loadBackbone({ checkpoint: "random:regnet_x_200mf", modelOptions: TINY, seed: 4 });
  assert.deepEqual(r1.backbone.stateDict().get("stem.0.weight")!.toArray(), r2.backbone.stateDict().get("stem.0.weight")!.toArray());
  assert.equal(r1.identity, r2.identity);
  r1.backbone.dispose();
  r2.backbone.dispose();
  assert.throws(() => loadBackbone({ checkpoint: "random" }), /needs an architecture/);
  assert.throws(() => loadBackbone({ checkpoint: path.join(TMP, "nope") }), /does not exist/);
});

test("backbones: design overrides recorded by a pretraining run (modelOptions metadata) rebuild the same trunk", () => {
  manualSeed(6);
  const design = { depth: 2, w0: 8, wa: 8, wm: 2, groupWidth: 8, stemWidth: 8 };
  using src = createModel("regnet_x_200mf", { ...design, smallImageStem: true, numClasses: 0 });
  const dir = path.join(TMP, "designed");
  fs.mkdirSync(dir, { recursive: true });
  // What train/trainer.ts writes: arch, stem, and the createModel options as JSON (numClasses included).
  saveSafetensors(path.join(dir, "backbone.safetensors"), src.stateDict(), { arch: "regnet_x_200mf", smallImageStem: "true", modelOptions: JSON.stringify({ ...design, numClasses: 0, smallImageStem: true }) });
  const loaded = loadBackbone({ checkpoint: dir });
  try {
    assert.deepEqual(loaded.modelOptions, design);
    assert.equal(loaded.backbone.numParameters(), src.numParameters());
    for (const [k, t] of src.stateDict()) assert.deepEqual(loaded.backbone.stateDict().get(k)!.toArray(), t.toArray(), k);
    assert.match(loaded.identity, /options \{"depth":2/);
  } finally {
    loaded.backbone.dispose();
  }
  saveSafetensors(path.join(dir, "backbone.safetensors"), src.stateDict(), { arch: "regnet_x_200mf", smallImageStem: "true", modelOptions: "{not json" });
  assert.throws(() => loadBackbone({ checkpoint: dir }), /backbone\.safetensors: metadata modelOptions is not JSON/);
});

test("default transforms: CIFAR as decoded, everything else Resize(256) → CenterCrop(224)", () => {
  assert.deepEqual([defaultEvalTransform("builtin:cifar10/test").resizeShortSide, defaultEvalTransform("builtin:cifar10/test").centerCrop], [0, 0]);
  assert.deepEqual([defaultEvalTransform("builtin:imagenette/val").resizeShortSide, defaultEvalTransform("/data/x").centerCrop], [256, 224]);
});
