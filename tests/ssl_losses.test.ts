// Sinkhorn-Knopp, the SwAV loss and NT-Xent, each checked against two PyTorch-side references
// (tests/oracle/ssl_losses.py): a naive one written from the paper's pseudocode with loops, and a direct port of
// the official code (swav main_swav.py, simclr objective.py). Plus marginals, the distributed hooks, closed forms,
// and finite-difference gradients (float64).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { cat, eye, manualSeed, randn, stack, type Tensor, tensor, tidy } from "../src/tensor";
import * as F from "../src/nn/functional";
import { sinkhorn } from "../src/ssl/sinkhorn";
import { SwAVLoss, type SwAVLossOptions } from "../src/ssl/swav_loss";
import { NTXentLoss } from "../src/ssl/ntxent_loss";
import type { AllGather, AllReduce, ReduceOp } from "../src/ssl/types";
import { assertClose, assertNoLeak } from "./helpers/assert";
import { gradcheck } from "./helpers/gradcheck";
import { oracleTensor, runOracle } from "./helpers/oracle";

const F64 = { dtype: "float64" } as const;

/** Scores as SwAV sees them: unit embeddings (N, D) against unit prototypes (K, D) -> (N, K) in [-1, 1]. */
function unitScores(n: number, k: number, d = 4, dtype: "float32" | "float64" = "float64"): Tensor {
  return tidy(() => F.normalize(randn([n, d], { dtype }), { dim: 1 }).mm(F.normalize(randn([k, d], { dtype }), { dim: 1 }).t()));
}

/** A scalar tensor's value. */
const value = (t: Tensor): number => t.item();

// ---- Sinkhorn ----

test("sinkhorn: rows sum to 1 after any number of iterations; columns converge to B/K", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(7);
      const [B, K] = [8, 4];
      const scores = unitScores(B, K);
      const colErr: number[] = [];
      for (const iterations of [1, 3, 10, 100, 2000]) {
        const Q = sinkhorn(scores, { iterations, epsilon: 0.05 }); // (B, K)
        assert.deepEqual(Q.shape, [B, K]);
        assert.equal(Q.requiresGrad, false);
        assertClose(Q.sum(1), Array(B).fill(1), { atol: 1e-12, rtol: 0, what: `row sums after ${iterations} iterations` });
        colErr.push(Q.sum(0).sub(B / K).abs().max().item());
      }
      for (let i = 1; i < colErr.length; i++) assert.ok(colErr[i]! <= colErr[i - 1]! + 1e-15, `column error grew: ${colErr.join(", ")}`);
      assert.ok(colErr[colErr.length - 1]! < 1e-9, `columns after 2000 iterations are off by ${colErr.at(-1)}`);
      assert.ok(colErr[0]! > 1e-3, "the test scores should need more than one iteration");
    }),
  );
});

test("sinkhorn: equals swav's distributed_sinkhorn and the paper's pseudocode; stable where exp() overflows", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(8);
      const scores32 = unitScores(6, 5, 3, "float32");
      // Scores up to ~6 at ε = 0.05: exp(120) overflows float32 without a max subtracted.
      const big = scores32.mul(6);
      // A prototype about 6 below the others (120 lower in the exponent): a global max would underflow its whole
      // row to 0 in float32 (then 0/0); the per-prototype max keeps it.
      const far = tensor([[1, 0.5, -5], [0.2, 1, -5.5], [0.9, 0.1, -6], [0.3, 0.4, -5.2]]);
      const cases = [
        { scores: scores32, iterations: 3, epsilon: 0.05 },
        { scores: scores32, iterations: 7, epsilon: 0.03 },
        { scores: big, iterations: 3, epsilon: 0.05 },
        { scores: far, iterations: 3, epsilon: 0.05 },
      ];
      const ref = runOracle(
        "ssl_losses.py",
        Object.fromEntries(cases.map((c, i) => [`scores${i}`, c.scores])),
        { mode: "sinkhorn", cases: cases.map(({ iterations, epsilon }) => ({ iterations, epsilon })) },
      );
      cases.slice(0, 2).forEach(({ scores, iterations, epsilon }, i) => {
        const what = `${iterations} iterations, ε ${epsilon}`;
        assertClose(sinkhorn(scores, { iterations, epsilon }), oracleTensor(ref, `official${i}`), { atol: 1e-6, rtol: 1e-5, what: `float32 vs swav, ${what}` });
        const ours64 = sinkhorn(scores.double(), { iterations, epsilon });
        assertClose(ours64, oracleTensor(ref, `official64_${i}`), { atol: 1e-13, rtol: 1e-12, what: `float64 vs swav, ${what}` });
        assertClose(ours64, oracleTensor(ref, `naive${i}`), { atol: 1e-13, rtol: 1e-12, what: `float64 vs pseudocode, ${what}` });
      });
      assert.equal(oracleTensor(ref, "official2").isfinite().all().item(), 0, "the official float32 code overflows on big scores");
      const ours = sinkhorn(big);
      assert.equal(ours.isfinite().all().item(), 1);
      assertClose(ours, oracleTensor(ref, "official64_2"), { atol: 1e-6, rtol: 1e-5, what: "big scores, float32 vs float64" });
      assertClose(sinkhorn(far), oracleTensor(ref, "official64_3"), { atol: 1e-6, rtol: 1e-5, what: "a far prototype, float32 vs float64" });
    }),
  );
});

test("sinkhorn: the allReduce hook makes the sums global (two workers holding the same batch)", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(9);
      const s = unitScores(5, 3);
      const calls: ReduceOp[] = [];
      // Two workers with identical local scores: a global sum is twice the local one, the global max the local one.
      const twoIdentical: AllReduce = (t, op) => {
        calls.push(op);
        return op === "sum" ? t.mul(2) : t;
      };
      const local = sinkhorn(s, { iterations: 4, allReduce: twoIdentical, worldSize: 2 }); // (5, 3)
      assert.deepEqual(calls, ["max", "sum", "sum", "sum", "sum", "sum"]);
      const global = sinkhorn(cat([s, s]), { iterations: 4 }); // (10, 3) on one worker
      assertClose(local, global.narrow(0, 0, 5), { atol: 1e-14, rtol: 1e-12, what: "worker 0's codes" });
      assertClose(sinkhorn(s, { iterations: 4, allReduce: (t) => t }), sinkhorn(s, { iterations: 4 }), { atol: 0, rtol: 0, what: "identity hook" });
    }),
  );
});

test("sinkhorn: G problems at once (G, B, K) give each problem's codes, with one collective per step for all", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(10);
      const problems = [unitScores(6, 4), unitScores(6, 4), unitScores(6, 4)];
      const calls: ReduceOp[] = [];
      const counting: AllReduce = (t, op) => {
        calls.push(op);
        return t;
      };
      const together = sinkhorn(stack(problems), { iterations: 3, allReduce: counting }); // (3, 6, 4)
      assert.deepEqual(together.shape, [3, 6, 4]);
      assert.deepEqual(calls, ["max", "sum", "sum", "sum", "sum"]); // 2 + iterations, not 3 times that
      problems.forEach((p, g) =>
        assertClose(together.select(0, g), sinkhorn(p, { iterations: 3 }), { atol: 1e-15, rtol: 1e-12, what: `problem ${g}` }),
      );
    }),
  );
});

test("sinkhorn: rejects bad options and shapes", () => {
  assertNoLeak(() =>
    tidy(() => {
      const s = randn([3, 2]);
      assert.throws(() => sinkhorn(s, { iterations: 0 }), /positive integer for iterations/);
      assert.throws(() => sinkhorn(s, { epsilon: 0 }), /positive number for epsilon/);
      assert.throws(() => sinkhorn(randn([3]), {}), /shape \(B, K\) or \(G, B, K\)/);
    }),
  );
});

// ---- SwAV loss ----

interface SwAVCase {
  name: string;
  opts: SwAVLossOptions;
  B: number;
  K: number;
  queueLength?: number;
}

const SWAV_CASES: SwAVCase[] = [
  { name: "2 large + 2 small crops, defaults", opts: { numCrops: 4 }, B: 3, K: 5 },
  { name: "5 crops, assign [1, 3], τ 0.2, ε 0.03, 5 iterations", opts: { numCrops: 5, cropsForAssign: [1, 3], temperature: 0.2, epsilon: 0.03, sinkhornIterations: 5 }, B: 4, K: 6 },
  { name: "3 crops with a queue of 6", opts: { numCrops: 3 }, B: 2, K: 4, queueLength: 6 },
  { name: "batch size 1, one assignment crop", opts: { numCrops: 2, cropsForAssign: [0] }, B: 1, K: 3 },
];

for (const c of SWAV_CASES) {
  test(`SwAV loss equals swav main_swav.py and the naive multi-crop reference: ${c.name}`, () => {
    assertNoLeak(() =>
      tidy(() => {
        manualSeed(21);
        const loss = new SwAVLoss(c.opts);
        const { numCrops, cropsForAssign, temperature, epsilon, sinkhornIterations } = loss.config;
        const scores = unitScores(numCrops * c.B, c.K).requiresGrad_(true);
        const queue = c.queueLength ? cropsForAssign.map(() => unitScores(c.queueLength!, c.K)) : undefined;
        const s32 = scores.detach().float(); // float32, as trained
        const inputs: Record<string, Tensor> = { scores, scores32: s32 };
        queue?.forEach((q, j) => {
          inputs[`queue${j}`] = q;
          inputs[`queue${j}_32`] = q.float();
        });
        const ref = runOracle("ssl_losses.py", inputs, {
          mode: "swav_loss", batchSize: c.B, numCrops, cropsForAssign, temperature, epsilon, iterations: sinkhornIterations,
        });
        const ours = loss.forward(scores, c.B, queue);
        ours.backward();
        assertClose(ours, oracleTensor(ref, "official"), { atol: 1e-12, rtol: 1e-12, what: "loss vs swav" });
        assertClose([value(ours)], oracleTensor(ref, "naive").reshape(1), { atol: 1e-10, rtol: 1e-10, what: "loss vs naive" });
        assertClose(scores.grad!, oracleTensor(ref, "grad"), { atol: 1e-12, rtol: 1e-10, what: "d loss / d scores vs torch autograd" });
        assertClose(loss.forward(s32, c.B, queue?.map((q) => q.float())), oracleTensor(ref, "official32"), { atol: 1e-5, rtol: 1e-5, what: "float32 loss vs swav" });
      }),
    );
  });
}

test("SwAV loss: codes are constants; finite differences agree with the gradient of the swapped prediction", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(22);
      const B = 2;
      const loss = new SwAVLoss({ numCrops: 3, temperature: 0.5, epsilon: 0.1 });
      const scores = unitScores(3 * B, 4);
      const codes = loss.assignments(scores, B); // fixed: SwAV does not differentiate through Sinkhorn
      assert.equal(codes.length, 2);
      for (const q of codes) assert.deepEqual(q.shape, [B, 4]);
      gradcheck((s) => loss.swappedPrediction(s, B, codes), [scores], { what: "SwAV swapped prediction" });
      // forward() differentiates exactly that: codes from the same scores, no gradient through them.
      const leaf = scores.clone().requiresGrad_(true);
      loss.forward(leaf, B).backward();
      const leaf2 = scores.clone().requiresGrad_(true);
      loss.swappedPrediction(leaf2, B, codes).backward();
      assertClose(leaf.grad!, leaf2.grad!, { atol: 0, rtol: 0, what: "forward gradient vs fixed-code gradient" });
    }),
  );
});

test("SwAV loss: the queue enlarges Sinkhorn's batch; its rows are dropped from the codes", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(23);
      const B = 3;
      const loss = new SwAVLoss({ numCrops: 2, cropsForAssign: [0] });
      const scores = unitScores(2 * B, 5);
      const queued = unitScores(6, 5);
      const [withQueue] = loss.assignments(scores, B, [queued]);
      const [without] = loss.assignments(scores, B);
      assertClose(withQueue!, sinkhorn(cat([scores.narrow(0, 0, B), queued])).narrow(0, 0, B), { atol: 0, rtol: 0, what: "codes with the queue" });
      assert.ok(withQueue!.sub(without!).abs().max().item() > 1e-3, "the queue should change the codes");
      assert.notEqual(value(loss.forward(scores, B, [queued])), value(loss.forward(scores, B)));
    }),
  );
});

test("SwAV loss: checks its configuration and shapes", () => {
  assertNoLeak(() =>
    tidy(() => {
      assert.throws(() => new SwAVLoss({ numCrops: 1 }), /integer >= 2 for numCrops/);
      assert.throws(() => new SwAVLoss({ numCrops: 3, cropsForAssign: [0, 3] }), /cropsForAssign entry 3/);
      assert.throws(() => new SwAVLoss({ numCrops: 3, cropsForAssign: [1, 1] }), /duplicates/);
      assert.throws(() => new SwAVLoss({ numCrops: 3, temperature: 0 }), /temperature/);
      const loss = new SwAVLoss({ numCrops: 3 });
      assert.ok(Object.isFrozen(loss.config) && Object.isFrozen(loss.config.cropsForAssign));
      assert.deepEqual({ ...loss.config, cropsForAssign: [...loss.config.cropsForAssign] }, {
        numCrops: 3, temperature: 0.1, sinkhornIterations: 3, epsilon: 0.05, cropsForAssign: [0, 1], worldSize: 1, allReduce: undefined,
      });
      assert.throws(() => loss.forward(randn([7, 4]), 2), /\(3·2, K\)/);
      assert.throws(() => loss.forward(randn([6, 4]), 2, [randn([5, 4])]), /2 queue score matrices/);
      assert.throws(() => loss.forward(randn([6, 4]), 2, [randn([5, 4]), randn([5, 3])]), /\(L, 4\)/);
    }),
  );
});

// ---- NT-Xent ----

for (const [B, D, temperature] of [[4, 5, 0.1], [3, 6, 0.5], [1, 3, 0.2]] as const) {
  test(`NT-Xent equals SimCLR's objective.py (halved) and the paper's formula: B=${B}, D=${D}, τ=${temperature}`, () => {
    assertNoLeak(() =>
      tidy(() => {
        manualSeed(31 + B);
        const z = randn([2 * B, D], F64).requiresGrad_(true);
        const z32 = z.detach().float();
        const ref = runOracle("ssl_losses.py", { z, z32 }, { mode: "ntxent", temperature });
        const loss = new NTXentLoss({ temperature }).forward(z);
        loss.backward();
        assertClose(loss, oracleTensor(ref, "simclr_tf").div(2), { atol: 1e-12, rtol: 1e-12, what: "loss vs SimCLR / 2" });
        assertClose([value(loss)], oracleTensor(ref, "naive").reshape(1), { atol: 1e-10, rtol: 1e-10, what: "loss vs naive" });
        assertClose(z.grad!, oracleTensor(ref, "grad_half"), { atol: 1e-12, rtol: 1e-10, what: "d loss / d z vs torch autograd" });
        assertClose(new NTXentLoss({ temperature }).forward(z32), oracleTensor(ref, "simclr_tf32").div(2), { atol: 1e-5, rtol: 1e-5, what: "float32" });
      }),
    );
  });
}

test("NT-Xent: closed form for orthogonal pairs; invariant to scale and to swapping the views", () => {
  assertNoLeak(() =>
    tidy(() => {
      const B = 3;
      const tau = 0.5;
      // Each image's two views are the same one-hot vector: positive similarity 1, all 2B-2 negatives 0.
      const e = eye(B, F64);
      const z = cat([e, e]); // (2B, B)
      const expected = -Math.log(Math.exp(1 / tau) / (Math.exp(1 / tau) + (2 * B - 2)));
      const loss = new NTXentLoss({ temperature: tau });
      assertClose([value(loss.forward(z))], [expected], { atol: 1e-12, rtol: 1e-12, what: "orthogonal pairs" });
      manualSeed(33);
      const r = randn([2 * B, 4], F64);
      const swapped = cat([r.narrow(0, B, B), r.narrow(0, 0, B)]);
      assertClose([value(loss.forward(swapped))], [value(loss.forward(r))], { atol: 1e-12, rtol: 1e-12, what: "views swapped" });
      assertClose([value(loss.forward(r.mul(7)))], [value(loss.forward(r))], { atol: 1e-12, rtol: 1e-12, what: "scaled" });
      assert.throws(() => loss.forward(randn([5, 4])), /\(2B, D\)/);
      assert.throws(() => new NTXentLoss({ temperature: -1 }), /temperature/);
    }),
  );
});

test("NT-Xent: finite differences agree with autograd (float64)", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(34);
      gradcheck((z) => new NTXentLoss({ temperature: 0.3 }).forward(z), [randn([6, 3], F64)], { what: "NT-Xent" });
    }),
  );
});

test("NT-Xent: with allGather, two workers' losses average to the global-batch loss, gradients included", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(35);
      const [B, D, world] = [2, 4, 2]; // B per worker, global batch 4
      const zGlobal = randn([2 * B * world, D], F64).requiresGrad_(true); // [view 1 of 4 images; view 2 of 4 images]
      // Worker r holds images 2r, 2r+1: rows [v1 of its images; v2 of its images].
      const local = (r: number): Tensor => cat([zGlobal.narrow(0, r * B, B), zGlobal.narrow(0, world * B + r * B, B)]);
      const zs = [local(0), local(1)];
      const hs = zs.map((z) => F.normalize(z, { dim: 1 }));
      // A differentiable all-gather: this worker's own tensor in its slot, the other's (same graph) elsewhere.
      const gatherFor = (r: number): AllGather => (t) => cat(hs.map((h, k) => (k === r ? t : h)));
      const losses = [0, 1].map((r) => new NTXentLoss({ temperature: 0.2, allGather: gatherFor(r), rank: r }).forward(zs[r]!));
      const mean = losses[0]!.add(losses[1]!).div(2);
      mean.backward();
      const gDistributed = zGlobal.grad!;
      zGlobal.grad = undefined;
      const single = new NTXentLoss({ temperature: 0.2 }).forward(zGlobal);
      single.backward();
      assertClose(mean, single, { atol: 1e-12, rtol: 1e-12, what: "mean of worker losses vs global loss" });
      assertClose(gDistributed, zGlobal.grad!, { atol: 1e-12, rtol: 1e-10, what: "gradient" });
      assert.throws(() => new NTXentLoss({ allGather: (t) => t, rank: 1 }).forward(zs[0]!), /rank 1/);
      assert.throws(() => new NTXentLoss({ allGather: (t) => t.narrow(0, 0, 3) }).forward(zs[0]!), /allGather returned/);
    }),
  );
});

test("SwAV loss and NT-Xent leave no tensors behind, forward and backward", () => {
  manualSeed(36);
  using scores = randn([8, 5]).requiresGrad_(true);
  using z = randn([6, 4]).requiresGrad_(true);
  const swav = new SwAVLoss({ numCrops: 4 });
  const nt = new NTXentLoss();
  assertNoLeak(() => tidy(() => swav.forward(scores, 2).backward()), "SwAV loss step");
  assertNoLeak(() => tidy(() => nt.forward(z).backward()), "NT-Xent step");
  assertNoLeak(() => swav.forward(scores, 2).dispose(), "SwAV loss outside tidy");
  assertNoLeak(() => nt.forward(z).dispose(), "NT-Xent outside tidy");
  assertNoLeak(() => sinkhorn(scores).dispose(), "sinkhorn outside tidy");
  assertNoLeak(() => swav.assignments(scores, 2).forEach((q) => q.dispose()), "assignments outside tidy");
  scores.grad = undefined;
  z.grad = undefined;
});
