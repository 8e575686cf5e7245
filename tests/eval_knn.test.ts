// Weighted kNN (src/eval/knn.ts): synthetic features with known structure give known accuracies (separated
// clusters → 100%; a circle of points whose neighbours and exp(s/T) votes are worked out by hand; test-label noise
// → exactly the clean fraction), the top-1/top-5 ranking rule, chunking, and the naive Python / DINO oracle.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { knnClassify, rankScores } from "../src/eval/knn";
import { manualSeed, randn, tensor, tidy, type Tensor } from "../src/tensor";
import { assertNoLeak } from "./helpers/assert";
import { runOracle } from "./helpers/oracle";

/** perClass points per class around C orthogonal centres 10·e_c in D dims; labels interleaved (row i: i mod C). */
function clusters(perClass: number, C: number, D: number, spread: number, seed: number): { x: Tensor; y: Tensor } {
  manualSeed(seed);
  const n = perClass * C;
  const labels = Array.from({ length: n }, (_, i) => i % C);
  const centres = new Float32Array(n * D);
  labels.forEach((c, i) => (centres[i * D + c] = 10));
  return tidy(() => {
    const x = tensor(centres, { shape: [n, D] }).add(randn([n, D]).mul(spread)); // (n, D)
    const y = tensor(BigInt64Array.from(labels, (l) => BigInt(l)), { shape: [n] }); // (n)
    return { x, y };
  });
}

const longs = (v: number[]): Tensor => tensor(BigInt64Array.from(v, (l) => BigInt(l)), { shape: [v.length] });
const deg = (d: number): number[] => [Math.cos((d * Math.PI) / 180), Math.sin((d * Math.PI) / 180)];

test("separated Gaussian clusters: 100% top-1 and top-5, any k", () => {
  const train = clusters(30, 4, 16, 0.5, 1);
  const held = clusters(20, 4, 16, 0.5, 2);
  for (const k of [1, 5, 20, 200]) {
    const r = assertNoLeak(() => knnClassify(train.x, train.y, held.x, held.y, { k }), `knn k=${k}`);
    assert.equal(r.n, 80);
    assert.equal(r.correct1, 80, `k=${k}`);
    assert.equal(r.top1, 100);
    assert.equal(r.top5, 100);
    assert.deepEqual(Array.from(r.predictions), Array.from({ length: 80 }, (_, i) => i % 4));
  }
  for (const t of [train.x, train.y, held.x, held.y]) t.dispose();
});

test("points on a circle: neighbours and votes worked out by hand", () => {
  // Train points at angles (degrees) with labels; the test point is at 0°, so cosine similarity = cos(angle).
  //   5° → 1, -7° → 1, 10° → 0, -12° → 0, 15° → 0, 170° → 2
  const angles = [5, -7, 10, -12, 15, 170];
  const trainX = tensor(angles.map(deg));
  const trainY = longs([1, 1, 0, 0, 0, 2]);
  const testX = tensor([deg(0)]);
  const y1 = longs([1]);
  const y0 = longs([0]);
  const run = (y: Tensor, k: number, o: { temperature?: number; vote?: "weighted" | "majority" }): number =>
    knnClassify(trainX, trainY, testX, y, { k, numClasses: 3, ...o }).predictions[0]!;

  // Majority: k=3 sees 5°, -7°, 10° → labels 1, 1, 0 → class 1; k=5 adds -12°, 15° → 1, 1, 0, 0, 0 → class 0.
  assert.equal(run(y1, 3, { vote: "majority" }), 1);
  assert.equal(run(y1, 5, { vote: "majority" }), 0);
  // Weighted, k=5: class 1 gets exp(cos5°/T) + exp(cos7°/T), class 0 exp(cos10°/T) + exp(cos12°/T) + exp(cos15°/T).
  // T = 0.07: relative to exp(1/T), 0.947 + 0.899 = 1.846 < 0.805 + 0.732 + 0.614 = 2.151 → class 0.
  // T = 0.01: 0.683 + 0.475 = 1.158 > 0.219 + 0.112 + 0.033 = 0.364 → class 1 (a sharper T trusts the closest).
  const vote = (ds: number[], T: number): number => ds.reduce((s, d) => s + Math.exp((Math.cos((d * Math.PI) / 180) - 1) / T), 0);
  assert.ok(vote([5, 7], 0.07) < vote([10, 12, 15], 0.07) && vote([5, 7], 0.01) > vote([10, 12, 15], 0.01));
  assert.equal(run(y1, 5, { temperature: 0.07 }), 0);
  assert.equal(run(y1, 5, { temperature: 0.01 }), 1);
  // k larger than the train set is clamped (all 6 vote; 170° adds a tiny class-2 vote): still class 0 at T = 0.07.
  assert.equal(run(y1, 100, { temperature: 0.07 }), 0);
  // Top-5 counts only voted classes: with k=3 class 0 (voted) is a top-5 hit for label 0, class 2 (no vote) is not.
  const r0 = knnClassify(trainX, trainY, testX, y0, { k: 3, numClasses: 3, vote: "majority" });
  assert.deepEqual([r0.correct1, r0.correct5], [0, 1]);
  const r2 = knnClassify(trainX, trainY, testX, longs([2]), { k: 3, numClasses: 3, vote: "majority" });
  assert.deepEqual([r2.correct1, r2.correct5], [0, 0]);
  for (const t of [trainX, trainY, testX, y1, y0]) t.dispose();
});

test("test-label noise: accuracy is exactly the clean fraction, and noisy rows are no top-5 hits", () => {
  const train = clusters(25, 4, 12, 0.4, 3);
  const held = clusters(20, 4, 12, 0.4, 4);
  // Flip 7 of the 80 test labels to the next class.
  const flipped = [0, 9, 18, 33, 47, 60, 79];
  const noisy = held.y.toArray().map((c, i) => (flipped.includes(i) ? (c + 1) % 4 : c));
  const y = longs(noisy);
  const r = knnClassify(train.x, train.y, held.x, y, { k: 20, temperature: 0.07 });
  assert.equal(r.correct1, 73);
  assert.equal(r.top1, (100 * 73) / 80);
  // The wrong label's class has no neighbours at all (the clusters are far apart), so it is not in the top 5 either.
  assert.equal(r.correct5, 73);
  // Train-label noise that is a minority within every neighbourhood changes nothing: 1 in 5 train labels flipped.
  const trainNoisy = longs(train.y.toArray().map((c, i) => (i % 5 === 0 ? (c + 2) % 4 : c)));
  const r2 = knnClassify(train.x, trainNoisy, held.x, held.y, { k: 20, vote: "majority" });
  assert.equal(r2.correct1, 80);
  for (const t of [train.x, train.y, held.x, held.y, y, trainNoisy]) t.dispose();
});

test("ranking: top-1 / top-5 with ties by lower class index; zero scores only with positiveOnly", () => {
  const row = [0.1, 0.5, 0.3, 0.9, 0.2, 0.8, 0.05];
  const scores = [...row, ...row, ...row, ...row];
  // label 3: best → top-1; label 2: 3 classes above (0.5, 0.9, 0.8) → top-5 only; label 0: 5 above → miss; label 6: miss.
  const r = rankScores(scores, [3, 2, 0, 6], 7);
  assert.deepEqual([r.correct1, r.correct5], [1, 2]);
  assert.deepEqual(Array.from(r.predictions), [3, 3, 3, 3]);
  // Ties: class 0 and 1 tie at the top; the lower index wins top-1.
  const t = rankScores([1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0], [0, 1], 7);
  assert.deepEqual([t.correct1, t.correct5], [1, 2]);
  assert.deepEqual(Array.from(t.predictions), [0, 0]);
  // A zero score ranked within the top 5 (only 2 classes scored) counts unless positiveOnly.
  const z = [0.7, 0.2, 0, 0, 0, 0, 0];
  assert.equal(rankScores(z, [2], 7).correct5, 1);
  assert.equal(rankScores(z, [2], 7, true).correct5, 0);
  assert.equal(rankScores(z, [1], 7, true).correct5, 1);
});

test("chunking does not change the result", () => {
  const train = clusters(20, 5, 8, 3, 5); // overlapping clusters: a non-trivial accuracy
  const held = clusters(15, 5, 8, 3, 6);
  const whole = knnClassify(train.x, train.y, held.x, held.y, { k: 10 });
  const chunked = assertNoLeak(() => knnClassify(train.x, train.y, held.x, held.y, { k: 10, chunkRows: 7 }), "chunked knn");
  assert.deepEqual(Array.from(chunked.predictions), Array.from(whole.predictions));
  assert.deepEqual([chunked.correct1, chunked.correct5], [whole.correct1, whole.correct5]);
  assert.ok(whole.correct1 > 15 && whole.correct1 < 75, `expected a non-trivial accuracy, got ${whole.correct1}/75`);
  for (const t of [train.x, train.y, held.x, held.y]) t.dispose();
});

test("argument errors name the parameter", () => {
  using x = tensor([[1, 0], [0, 1]]);
  using y = longs([0, 1]);
  using y3 = longs([0, 1, 1]);
  assert.throws(() => knnClassify(x, y, x, y, { k: 0 }), /positive integer for k/);
  assert.throws(() => knnClassify(x, y, x, y, { temperature: 0 }), /positive temperature/);
  assert.throws(() => knnClassify(x, y3, x, y), /expected 2 labels/);
  using x3 = tensor([[1, 0, 0]]);
  assert.throws(() => knnClassify(x, y, x3, longs([0])), /2 dims, test features 3/);
});

test("oracle: naive per-row InstDisc kNN and DINO's knn_classifier agree with knnClassify on random features", () => {
  manualSeed(11);
  using train = randn([240, 32], { dtype: "float64" });
  using held = randn([80, 32], { dtype: "float64" });
  // Labels that depend on the features a little, so that accuracies are neither 0 nor 100.
  const labelsOf = (x: Tensor, n: number): Tensor => {
    const a = x.toArray();
    return longs(Array.from({ length: n }, (_, i) => (a[i * 32]! > 0 ? 5 : 0) + (Math.abs(Math.floor(a[i * 32 + 1]! * 2)) % 5)));
  };
  using trainY = labelsOf(train, 240);
  using heldY = labelsOf(held, 80);
  for (const [k, vote] of [[20, "weighted"], [7, "majority"]] as const) {
    const args = { k, temperature: 0.07, num_classes: 10, vote };
    const ours = knnClassify(train, trainY, held, heldY, { k, temperature: 0.07, numClasses: 10, vote, chunkRows: 33 });
    const o = runOracle("eval_knn.py", { train, train_labels: trainY, test: held, test_labels: heldY }, args);
    assert.deepEqual(Array.from(ours.predictions), Array.from(o.predictions!.data as BigInt64Array, Number), `${vote} predictions`);
    assert.deepEqual([ours.correct1, ours.correct5], Array.from(o.counts!.data as BigInt64Array, Number), `${vote} top-1/top-5 counts`);
    if (vote === "weighted") {
      assert.deepEqual(Array.from(ours.predictions), Array.from(o.dino_predictions!.data as BigInt64Array, Number), "DINO top-1");
    }
    assert.ok(ours.correct1 > 8 && ours.correct1 < 72, `non-trivial accuracy: ${ours.correct1}`);
  }
  // float32 features give the same predictions (no near-ties in random data).
  using train32 = train.float();
  using held32 = held.float();
  const f64 = knnClassify(train, trainY, held, heldY, { k: 20 });
  const f32 = knnClassify(train32, trainY, held32, heldY, { k: 20 });
  assert.deepEqual(Array.from(f32.predictions), Array.from(f64.predictions));
});
