// Projection heads, SwAV prototypes (normalization, freezing, several sets) and SwAV's embedding queue.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { manualSeed, noGrad, randn, type Tensor, tensor, tidy } from "../src/tensor";
import * as F from "../src/nn/functional";
import { BatchNorm1d, Linear, ReLU } from "../src/nn/layers";
import { ProjectionHead, SwAVPrototypes, seerHead, smallSwavHead } from "../src/ssl/heads";
import { SwAVQueue } from "../src/ssl/swav_loss";
import { assertClose, assertNoLeak } from "./helpers/assert";

const shapes = (m: { namedParameters(): [string, Tensor][] }): Record<string, number[]> =>
  Object.fromEntries(m.namedParameters().map(([n, t]) => [n, t.shape]));

test("ProjectionHead: Linear [-> BN] -> ReLU between layers, a plain Linear last, torch.nn.Sequential names", () => {
  assertNoLeak(() => {
    using withBn = new ProjectionHead([6, 8, 5], { batchNorm: true });
    assert.deepEqual([...withBn].map((m) => m.constructor), [Linear, BatchNorm1d, ReLU, Linear]);
    assert.deepEqual([...withBn.stateDict().keys()], [
      "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked", "3.weight", "3.bias",
    ]);
    using noBn = new ProjectionHead([6, 10, 9, 4]);
    assert.deepEqual([...noBn].map((m) => m.constructor), [Linear, ReLU, Linear, ReLU, Linear]);
    assert.deepEqual(shapes(noBn), { "0.weight": [10, 6], "0.bias": [10], "2.weight": [9, 10], "2.bias": [9], "4.weight": [4, 9], "4.bias": [4] });
    assert.equal(noBn.inDim, 6);
    assert.equal(noBn.outDim, 4);
    using linearOnly = new ProjectionHead([3, 2], { batchNorm: true });
    assert.deepEqual([...linearOnly].map((m) => m.constructor), [Linear]);
    manualSeed(1);
    tidy(() => {
      const x = randn([5, 6]);
      const y = withBn.forward(x); // (5, 5)
      assert.deepEqual(y.shape, [5, 5]);
      // Same as the layers by hand.
      const l0 = withBn.at(0) as Linear;
      const bn = withBn.at(1) as BatchNorm1d;
      const l3 = withBn.at(3) as Linear;
      withBn.eval(); // running statistics, so that a second pass is the same computation
      const byHand = l3.forward(bn.forward(l0.forward(x)).relu());
      assertClose(withBn.forward(x), byHand, { atol: 0, rtol: 0, what: "eval forward" });
    });
    assert.throws(() => new ProjectionHead([4]), /at least 2 dims/);
    assert.throws(() => new ProjectionHead([4, 0]), /positive integer dims/);
  });
});

test("presets: SEER's W-8192-8192-256 head without BN + 16000 prototypes; SwAV's W-2048-BN-128 + 3000", () => {
  assertNoLeak(() => {
    const small = smallSwavHead(40);
    assert.deepEqual(small.head.dims, [40, 2048, 128]);
    assert.ok(small.head.batchNorm);
    assert.deepEqual(small.prototypes.numPrototypes, [3000]);
    assert.deepEqual(small.prototypes.weights[0]!.shape, [3000, 128]);
    assert.equal(small.prototypes.frozenUntilStep, 313);
    small.head.dispose();
    small.prototypes.dispose();
    const seer = seerHead(16, { frozenUntilStep: 0 });
    assert.deepEqual(seer.head.dims, [16, 8192, 8192, 256]);
    assert.ok(!seer.head.batchNorm && !seer.head.modules().some((m) => m instanceof BatchNorm1d));
    assert.equal(seer.head.numParameters(), 16 * 8192 + 8192 + 8192 * 8192 + 8192 + 8192 * 256 + 256);
    assert.deepEqual(seer.prototypes.numPrototypes, [16000]);
    assert.equal(seer.prototypes.dim, 256);
    assert.equal(seer.prototypes.frozenUntilStep, 0);
    seer.head.dispose();
    seer.prototypes.dispose();
  });
});

test("SwAVPrototypes: bias-free sets named prototypes0.., forwardAll returns an array, forward needs a single set", () => {
  assertNoLeak(() => {
    using multi = new SwAVPrototypes(4, [7, 3]);
    assert.deepEqual(shapes(multi), { "prototypes0.weight": [7, 4], "prototypes1.weight": [3, 4] });
    using single = new SwAVPrototypes(4, 5);
    assert.deepEqual(shapes(single), { "prototypes0.weight": [5, 4] });
    manualSeed(2);
    tidy(() => {
      const z = F.normalize(randn([6, 4]), { dim: 1 });
      const [s0, s1, ...rest] = multi.forwardAll(z);
      assert.equal(rest.length, 0);
      assertClose(s0!, z.mm(multi.weights[0]!.t()), { atol: 1e-6, what: "set 0" });
      assertClose(s1!, z.mm(multi.weights[1]!.t()), { atol: 1e-6, what: "set 1" });
      assert.equal(single.forwardAll(z).length, 1);
      assertClose(single.forward(z), single.forwardAll(z)[0]!, { atol: 0, rtol: 0 });
      assert.throws(() => multi.forward(z), /2 prototype sets; use forwardAll/);
    });
    assert.throws(() => new SwAVPrototypes(4, []), /at least one/);
    assert.throws(() => new SwAVPrototypes(4, 3, { frozenUntilStep: -1 }), /frozenUntilStep/);
  });
});

test("SwAVPrototypes.normalize: unit rows, in place (same tensors), no autograd history", () => {
  using protos = new SwAVPrototypes(3, [4, 2]);
  manualSeed(3);
  noGrad(() => protos.weights.forEach((w) => w.mul_(5)));
  const before = protos.weights;
  const expected = protos.weights.map((w) => noGrad(() => F.normalize(w, { dim: 1 })));
  assertNoLeak(() => protos.normalize(), "normalize");
  protos.weights.forEach((w, i) => {
    assert.equal(w, before[i], "the parameter is the same tensor");
    assert.ok(w.requiresGrad && w.isLeaf, "still a trainable leaf");
    assert.equal(w.grad, undefined);
    assertClose(w, expected[i]!, { atol: 1e-7, what: `set ${i}` });
    tidy(() => assertClose(w.norm(2, 1), Array(w.shape[0]).fill(1), { atol: 1e-6, what: `row norms of set ${i}` }));
  });
  expected.forEach((t) => t.dispose());
});

test("SwAVPrototypes.cancelGradIfFrozen drops only the prototype gradients, only before frozenUntilStep", () => {
  using head = new ProjectionHead([4, 3]);
  using protos = new SwAVPrototypes(3, [5, 2], { frozenUntilStep: 2 });
  manualSeed(4);
  using x = randn([6, 4]);
  const backward = (): void => tidy(() => protos.forwardAll(head.forward(x)).reduce((a, s) => a.add(s.pow(2).sum()), tensor(0)).backward());
  const hasGrad = (t: Tensor): boolean => {
    const g = t.grad;
    g?.dispose();
    return g !== undefined;
  };
  for (const [step, frozen] of [[0, true], [1, true], [2, false], [300, false]] as const) {
    head.zeroGrad();
    protos.zeroGrad();
    backward();
    assert.equal(protos.isFrozen(step), frozen);
    assert.equal(assertNoLeak(() => protos.cancelGradIfFrozen(step)), frozen, `step ${step}`);
    assert.ok(protos.weights.every((w) => hasGrad(w) === !frozen), `prototype grads at step ${step}`);
    assert.ok(head.parameters().every(hasGrad), `head grads at step ${step}`);
  }
  using never = new SwAVPrototypes(3, 2);
  assert.equal(never.cancelGradIfFrozen(0), false);
});

test("SwAVQueue: FIFO with the newest batch first; full after length rows; scores are queue · Cᵀ", () => {
  using queue = new SwAVQueue(5, 2, 3, { numQueues: 2, dtype: "float64" });
  assert.ok(!queue.isActive(2) && queue.isActive(3) && queue.isActive(10));
  const batch = (base: number): Tensor => tensor([[base, base + 0.5], [base + 1, base + 1.5]], { dtype: "float64" });
  const rows = (i: number): number[][] =>
    tidy(() => {
      const d = queue.embeddings(i).toArray();
      return Array.from({ length: 5 }, (_, r) => [d[2 * r]!, d[2 * r + 1]!]);
    });
  assertNoLeak(() => {
    using b1 = batch(1);
    using b2 = batch(10);
    using b3 = batch(100);
    queue.push(0, b1);
    assert.deepEqual(rows(0), [[1, 1.5], [2, 2.5], [0, 0], [0, 0], [0, 0]]);
    assert.deepEqual(rows(1), [[0, 0], [0, 0], [0, 0], [0, 0], [0, 0]], "queue 1 untouched");
    assert.equal(queue.filled(0), 2);
    queue.push(0, b2);
    assert.ok(!queue.isFull(0));
    queue.push(0, b3);
    assert.deepEqual(rows(0), [[100, 100.5], [101, 101.5], [10, 10.5], [11, 11.5], [1, 1.5]], "the oldest row dropped");
    assert.ok(queue.isFull(0) && !queue.isFull(1));
    assert.equal(queue.filled(0), 5);
    tidy(() => {
      const C = tensor([[1, 0], [0.6, 0.8], [0, -1]], { dtype: "float64" }).requiresGrad_(true); // (3, 2)
      const s = queue.scores(0, C); // (5, 3)
      assert.deepEqual(s.shape, [5, 3]);
      assert.equal(s.requiresGrad, false);
      assertClose(s, queue.embeddings(0).mm(C.detach().t()), { atol: 0, rtol: 0 });
      assert.throws(() => queue.scores(0, tensor([[1, 0, 0]], { dtype: "float64" })), /\(K, 2\)/);
    });
    assert.throws(() => queue.push(2, b1), /queue index 2/);
    tidy(() => assert.throws(() => queue.push(0, randn([6, 2], { dtype: "float64" })), /does not fit/));
  });
});

test("SwAVQueue: state round trip for checkpoints", () => {
  using a = new SwAVQueue(4, 3, 0, { numQueues: 2 });
  using b = new SwAVQueue(4, 3, 0, { numQueues: 2 });
  manualSeed(5);
  tidy(() => {
    a.push(0, randn([2, 3]));
    a.push(1, randn([2, 3]));
    a.push(1, randn([2, 3]));
  });
  const s = a.state();
  assert.deepEqual(s.filled, [2, 4]);
  assert.deepEqual(s.embeddings.shape, [2, 4, 3]);
  assertNoLeak(() => b.loadState(s));
  assert.deepEqual(b.state().filled, [2, 4]);
  assert.ok(b.isFull(1) && !b.isFull(0));
  assertClose(b.state().embeddings, s.embeddings, { atol: 0, rtol: 0 });
  assert.notEqual(b.state().embeddings, s.embeddings, "copied, not shared");
  assertNoLeak(() => {
    using wrong = randn([2, 5, 3]);
    assert.throws(() => b.loadState({ embeddings: wrong, filled: [0, 0] }), /shape \[2, 4, 3\]/);
    assert.throws(() => b.loadState({ embeddings: s.embeddings, filled: [0, 5] }), /fill counts/);
  });
});
