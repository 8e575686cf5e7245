// Linear probe (src/eval/linear.ts) on synthetic frozen features: separated clusters are learned perfectly with and
// without the BN-without-affine layer, label noise gives exactly the clean fraction, runs are seeded, the schedule
// is SwAV's per-epoch cosine, and nothing leaks.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { LinearClassifier, evaluateClassifier, linearProbe } from "../src/eval/linear";
import { manualSeed, noGrad, randn, tensor, tidy, type Tensor } from "../src/tensor";
import { assertNoLeak } from "./helpers/assert";

/** perClass points per class around C orthogonal centres scale·e_c in D dims (plus an offset); labels i mod C. */
function clusters(perClass: number, C: number, D: number, spread: number, seed: number, scale = 4): { x: Tensor; y: Tensor } {
  manualSeed(seed);
  const n = perClass * C;
  const labels = Array.from({ length: n }, (_, i) => i % C);
  const centres = new Float32Array(n * D).fill(1); // an offset, as after a ReLU
  labels.forEach((c, i) => (centres[i * D + c] += scale));
  return tidy(() => {
    const x = tensor(centres, { shape: [n, D] }).add(randn([n, D]).mul(spread)); // (n, D)
    const y = tensor(BigInt64Array.from(labels, (l) => BigInt(l)), { shape: [n] }); // (n)
    return { x, y };
  });
}

const longs = (v: number[]): Tensor => tensor(BigInt64Array.from(v, (l) => BigInt(l)), { shape: [v.length] });

test("separated clusters: 100% top-1 and top-5, with and without BN", () => {
  const train = clusters(40, 10, 16, 0.3, 1);
  const held = clusters(10, 10, 16, 0.3, 2);
  for (const batchNorm of [true, false]) {
    const r = assertNoLeak(() => linearProbe(train.x, train.y, held.x, held.y, { epochs: 15, batchSize: 64, batchNorm }), `probe bn=${batchNorm}`);
    assert.equal(r.n, 100);
    assert.equal(r.correct1, 100, `bn=${batchNorm}: top-1 ${r.top1}`);
    assert.equal(r.top5, 100);
    assert.equal(r.epochs, 15);
    assert.equal(r.steps, 15 * Math.ceil(400 / 64));
    assert.ok(r.finalTrainLoss < 0.1, `bn=${batchNorm}: final loss ${r.finalTrainLoss}`);
  }
  for (const t of [train.x, train.y, held.x, held.y]) t.dispose();
});

test("test-label noise: accuracy is exactly the clean fraction", () => {
  const train = clusters(30, 4, 8, 0.3, 3);
  const held = clusters(20, 4, 8, 0.3, 4);
  const flipped = new Set([1, 2, 15, 40, 66]);
  using noisyTest = longs(held.y.toArray().map((c, i) => (flipped.has(i) ? (c + 1) % 4 : c)));
  const r = linearProbe(train.x, train.y, held.x, noisyTest, { epochs: 20, batchSize: 32 });
  assert.equal(r.correct1, 80 - 5);
  assert.equal(r.top1, (100 * 75) / 80);
  for (const t of [train.x, train.y, held.x, held.y]) t.dispose();
});

test("train-label noise: 10% flipped labels on repeated points → clean test accuracy 100%, loss → the noise entropy", () => {
  // Every train point of a class is its centre exactly (spread 0), and 3 of each class's 30 copies carry the next
  // class's label. The best the classifier can do is p = 0.9 / 0.1 at each centre, so the loss tends to the
  // entropy -(0.9 ln 0.9 + 0.1 ln 0.1) = 0.32508, and the argmax is still the true class everywhere near a centre.
  // NOTE no BN here: a feature dim with zero variance in training (the constant dims) would be divided by
  // sqrt(eps) and blow up the test noise.
  const train = clusters(30, 4, 8, 0, 3);
  const held = clusters(20, 4, 8, 0.1, 4);
  using noisyTrain = longs(train.y.toArray().map((c, i) => (i % 40 < 4 ? (c + 1) % 4 : c)));
  const r = linearProbe(train.x, noisyTrain, held.x, held.y, { epochs: 50, batchSize: 32, batchNorm: false });
  assert.equal(r.correct1, 80);
  const entropy = -(0.9 * Math.log(0.9) + 0.1 * Math.log(0.1));
  assert.ok(Math.abs(r.finalTrainLoss - entropy) < 0.002, `final loss ${r.finalTrainLoss}, optimum ${entropy}`);
  for (const t of [train.x, train.y, held.x, held.y]) t.dispose();
});

test("seeded: the same seed repeats bit for bit, another seed differs", () => {
  const train = clusters(20, 5, 8, 3, 5); // overlapping: the result depends on the details
  const held = clusters(20, 5, 8, 3, 6);
  const run = (seed: number) => linearProbe(train.x, train.y, held.x, held.y, { epochs: 5, batchSize: 16, seed });
  const a = run(7);
  const b = run(7);
  const c = run(8);
  assert.equal(a.finalTrainLoss, b.finalTrainLoss);
  assert.deepEqual(Array.from(a.predictions), Array.from(b.predictions));
  assert.notEqual(a.finalTrainLoss, c.finalTrainLoss);
  assert.ok(a.correct1 > 20 && a.correct1 < 100, `non-trivial accuracy: ${a.correct1}/100`);
  for (const t of [train.x, train.y, held.x, held.y]) t.dispose();
});

test("schedule: SGD lr follows the per-epoch cosine from lr to finalLr (torch CosineAnnealingLR)", () => {
  const train = clusters(4, 2, 4, 0.3, 9);
  const lrs: number[] = [];
  linearProbe(train.x, train.y, train.x, train.y, { epochs: 4, lr: 0.2, finalLr: 0.02, onEpoch: (_e, _l, lr) => lrs.push(lr) });
  const expected = [0, 1, 2, 3].map((e) => 0.02 + 0.5 * (0.2 - 0.02) * (1 + Math.cos((Math.PI * e) / 4)));
  lrs.forEach((lr, i) => assert.ok(Math.abs(lr - expected[i]!) < 1e-12, `epoch ${i}: ${lr} vs ${expected[i]}`));
  for (const t of [train.x, train.y]) t.dispose();
});

test("classifier: RegLog init (N(0, 0.01²), bias 0), BN without affine parameters, eval-mode top-k", () => {
  manualSeed(0);
  using clf = new LinearClassifier(64, 10);
  assert.deepEqual(clf.namedParameters().map(([n]) => n), ["linear.weight", "linear.bias"]);
  const w = clf.linear.weight.toArray();
  const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
  assert.ok(Math.abs(std - 0.01) < 0.001, `init std ${std}`);
  assert.ok(clf.linear.bias!.toArray().every((v) => v === 0));
  // A classifier whose logits are the features themselves: label = argmax feature.
  using ident = new LinearClassifier(3, 3, { batchNorm: false });
  using eye3 = tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
  noGrad(() => ident.linear.weight.copy_(eye3));
  using x = tensor([[3, 2, 1], [0, 5, 1], [1, 1, 4], [2, 1, 0]]);
  using y = longs([0, 1, 0, 1]);
  const r = assertNoLeak(() => evaluateClassifier(ident, x, y, 3), "evaluateClassifier");
  assert.deepEqual(Array.from(r.predictions), [0, 1, 2, 0]);
  assert.deepEqual([r.correct1, r.correct5], [2, 4]);
});

test("argument errors name the parameter", () => {
  const train = clusters(2, 2, 3, 0.1, 1);
  assert.throws(() => linearProbe(train.x, train.y, train.x, train.y, { epochs: 0 }), /positive integer for epochs/);
  assert.throws(() => linearProbe(train.x, train.y, train.x, train.y, { batchSize: 1.5 }), /positive integer for batchSize/);
  using other = tensor([[1, 2]]);
  using y1 = longs([0]);
  assert.throws(() => linearProbe(train.x, train.y, other, y1), /3 dims, test features 2/);
  for (const t of [train.x, train.y]) t.dispose();
});
