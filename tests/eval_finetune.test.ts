// Full fine-tuning (src/eval/finetune.ts) on a tiny real subset: 48 Imagenette train photos each of tench and
// parachute at 32 px, a narrow RegNetY from its random init, 40 steps of 16; tested on 40 val photos of each class.
// Checks: the accuracy rises well above chance (50% for the two classes the test holds) and the training loss
// falls; the trunk's weights and BN running statistics change (trained end to end, BN in train mode) while its
// training flag is restored; top-5 is consistent; the run is seeded; nothing leaks; argument errors name the
// argument. Also decodeLabelledImages / imageFeatures (eval/features.ts), which fine-tuning and reproduce use.
import "./helpers/quiet_omp"; // first: before libtorch loads
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { resolveSource } from "../src/data/scan";
import { isIndexed, type IndexedImageSource } from "../src/data/sources";
import { loadBackbone } from "../src/eval/backbone";
import { IMAGENET_EVAL_TRANSFORM, decodeLabelledImages, imageFeatures, type LabelledImages } from "../src/eval/features";
import { finetune, finetuneAugment, recordSubset } from "../src/eval/finetune";
import { memory, setNumThreads, tidy } from "../src/tensor";

setNumThreads(2);
const TENCH = 0; // n01440764
const PARACHUTE = 9; // n03888257
const NARROW = { w0: 16, wa: 16, wm: 2.5, depth: 8 };
const transform = { ...IMAGENET_EVAL_TRANSFORM, resizeShortSide: 37, centerCrop: 32 };

/** The first n records of each class in `classes`, in record order. */
async function twoClasses(spec: string, n: number): Promise<IndexedImageSource> {
  const s = await resolveSource(spec, { labels: true });
  assert.ok(isIndexed(s));
  const picked: number[] = [];
  const count = new Map<number, number>();
  for (let i = 0; i < s.length; i++) {
    const c = s.at(i).label!;
    if ((c === TENCH || c === PARACHUTE) && (count.get(c) ?? 0) < n) {
      picked.push(i);
      count.set(c, (count.get(c) ?? 0) + 1);
    }
  }
  return recordSubset(s, picked, `${spec} (tench + parachute, ${n} each)`);
}

const data = (async () => {
  const train = await twoClasses("builtin:imagenette/train", 48);
  const test = await decodeLabelledImages(await twoClasses("builtin:imagenette/val", 40), { transform, progress: false });
  return { train, test };
})();

const scratch = () => loadBackbone({ checkpoint: "random:regnet_y_200mf", smallImageStem: true, modelOptions: NARROW, seed: 0 });

test("decodeLabelledImages: (N, 3, 32, 32) normalized images with their labels; imageFeatures: (N, W), no leaks", async () => {
  const { test: images } = await data;
  assert.deepEqual(images.images.shape, [80, 3, 32, 32]);
  const labels = images.labels.toArray();
  assert.deepEqual([labels.filter((l) => l === TENCH).length, labels.filter((l) => l === PARACHUTE).length], [40, 40]);
  const mean = tidy(() => images.images.mean().item());
  assert.ok(Math.abs(mean) < 1.5, `normalized pixels have a mean near 0, got ${mean}`);
  const before = memory().numTensors;
  const m = scratch();
  const f = imageFeatures(m.backbone, images, 32);
  assert.deepEqual(f.features.shape, [80, m.backbone.numFeatures]);
  assert.deepEqual(f.labels.toArray(), labels);
  f.dispose();
  m.backbone.dispose();
  assert.equal(memory().numTensors, before, "imageFeatures leaked");
});

test("fine-tuning from random init on 96 real photos: well above chance, loss falls, trunk and BN statistics change, no leaks", async () => {
  const { train, test: images } = await data;
  const before = memory().numTensors;
  const m = scratch();
  const stem = m.backbone.namedParameters()[0]![1];
  const stemBefore = stem.toArray().slice(0, 20);
  const runningMean = m.backbone.namedBuffers().find(([n]) => n.endsWith("running_mean"))![1];
  const rmBefore = runningMean.toArray().slice();
  m.backbone.eval(); // fine-tuning trains in train mode and puts the flag back
  const steps: number[] = [];
  const r = await finetune(m.backbone, train, images, { imageSize: 32, iterations: 40, batchSize: 16, lr: 0.1, cropScale: [0.35, 1], seed: 0, onStep: (s) => steps.push(s) });
  assert.equal(m.backbone.training, false);
  assert.deepEqual(steps, Array.from({ length: 40 }, (_, i) => i));
  assert.equal(r.n, 80);
  assert.equal(r.nTrain, 96);
  assert.equal(r.iterations, 40);
  assert.ok(Math.abs(r.epochs - (40 * 16) / 96) < 1e-9);
  assert.ok(r.top1 >= 75, `top-1 ${r.top1}% on two classes (chance 50%)`);
  assert.ok(r.top5 >= r.top1 && r.top5 >= 95, `top-5 ${r.top5}%: the true class is in nearly every top 5 of the 10-way head`);
  assert.ok(r.finalTrainLoss < r.firstTrainLoss - 0.3, `loss ${r.firstTrainLoss} -> ${r.finalTrainLoss}`);
  assert.notDeepEqual(stem.toArray().slice(0, 20), stemBefore, "the trunk's first conv was trained");
  assert.notDeepEqual(runningMean.toArray(), rmBefore, "BN running statistics were updated (train mode)");
  m.backbone.dispose();
  assert.equal(memory().numTensors, before, "fine-tuning leaked");
});

test("seeded: the same seed repeats the run exactly", async () => {
  const { train, test: images } = await data;
  const run = async (): Promise<number[]> => {
    const m = scratch();
    const losses: number[] = [];
    await finetune(m.backbone, train, images, { imageSize: 32, iterations: 3, batchSize: 8, seed: 3, onStep: (_s, l) => losses.push(l) });
    m.backbone.dispose();
    return losses;
  };
  assert.deepEqual(await run(), await run());
});

test("augmentation: one random-resized crop + flip, nothing photometric; argument errors name the argument", async () => {
  const a = finetuneAugment(32, [0.2, 1]);
  assert.equal(a.crops.length, 1);
  assert.deepEqual([a.crops[0]!.count, a.crops[0]!.size, ...a.crops[0]!.scale], [1, 32, 0.2, 1]);
  assert.deepEqual([a.flipProb, a.colorJitter.prob, a.grayscaleProb, a.blur.prob, a.solarize.prob], [0.5, 0, 0, 0, 0]);
  const { train, test: images } = await data;
  const m = scratch();
  try {
    await assert.rejects(finetune(m.backbone, train, images, { imageSize: 32, batchSize: 200 }), /96 images, fewer than one batch of 200/);
    await assert.rejects(finetune(m.backbone, train, images, { imageSize: 32, batchSize: 1 }), /at least 2/);
    await assert.rejects(finetune(m.backbone, train, images, { imageSize: 0 }), /imageSize/);
    await assert.rejects(finetune(m.backbone, train, images, { imageSize: 32, lr: -1 }), /lr/);
    const unlabelled: IndexedImageSource = { ...train, description: "no labels", at: (i) => ({ ...train.at(i), label: undefined }) };
    await assert.rejects(finetune(m.backbone, unlabelled, images, { imageSize: 32, batchSize: 8 }), /no labels: record .* has no label/);
    assert.throws(() => recordSubset(train, [0, 96], "bad subset"), /bad subset: record index 96 out of range/);
  } finally {
    m.backbone.dispose();
  }
});

process.on("beforeExit", () => void data.then((d) => (d.test as LabelledImages).dispose()));
