// SwAV and SimCLR as whole modules on a tiny conv backbone, against torch.nn given the same weights (a
// safetensors file) and inputs (tests/oracle/ssl_swav_step.py): loss, every parameter gradient, BN running
// statistics, normalized prototypes and the queue after the step. Plus queue timing, freezing, and leaks.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { type DType, manualSeed, memory, randn, type Tensor, tidy } from "../src/tensor";
import * as F from "../src/nn/functional";
import { saveSafetensors } from "../src/io/safetensors";
import { ProjectionHead, SwAVPrototypes } from "../src/ssl/heads";
import { SwAVQueue } from "../src/ssl/swav_loss";
import { SwAV } from "../src/ssl/methods/swav";
import { SimCLR } from "../src/ssl/methods/simclr";
import { assertClose, assertNoLeak } from "./helpers/assert";
import { HEAD_DIMS, Tiny, buildTinySwav, perturbBatchNorms } from "./helpers/ssl_tiny";
import { oracleTensor, runOracle } from "./helpers/oracle";

const tmpFile = (name: string): string => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-ssl-")), name);

interface StepCase {
  dtype: DType;
  prototypes: number[];
  queue: boolean;
}

for (const c of [
  { dtype: "float32", prototypes: [7], queue: false },
  { dtype: "float64", prototypes: [7], queue: false },
  { dtype: "float64", prototypes: [7, 4], queue: true },
  { dtype: "float32", prototypes: [7, 4], queue: true },
] as StepCase[]) {
  test(`SwAV forward/backward matches torch.nn + main_swav.py: ${c.dtype}, prototypes [${c.prototypes}]${c.queue ? ", full queue" : ""}`, () => {
    const tol = c.dtype === "float64" ? { atol: 1e-10, rtol: 1e-10 } : { atol: 1e-5, rtol: 1e-5 };
    manualSeed(11);
    const B = 3;
    using queue = c.queue ? new SwAVQueue(2 * B, 5, 0, { numQueues: 2, dtype: c.dtype }) : undefined;
    using swav = buildTinySwav(c.dtype, c.prototypes, { queue });
    if (queue) tidy(() => queue.loadState({ embeddings: F.normalize(randn([2, 2 * B, 5], { dtype: c.dtype }), { dim: 2 }), filled: [2 * B, 2 * B] }));
    using queueBefore = queue?.state().embeddings.clone();
    const file = tmpFile("swav.safetensors");
    saveSafetensors(file, swav.stateDict()); // prototypes not yet normalized: the oracle normalizes them as swav does
    using crops0 = randn([2 * B, 3, 8, 8], { dtype: c.dtype }); // 2 large crops, crop-major
    using crops1 = randn([3 * B, 3, 5, 5], { dtype: c.dtype }); // 3 small crops
    const before = memory().numTensors;

    swav.prototypes.normalize();
    using loss = tidy(() => {
      const { loss } = swav.forward([crops0, crops1], { epoch: 0 });
      loss.backward();
      return loss;
    });
    assert.equal(memory().numTensors, before + 1, "the step left only the loss behind");

    const inputs: Record<string, Tensor> = { crops0, crops1 };
    if (queueBefore) inputs["queue"] = queueBefore;
    const ref = runOracle("ssl_swav_step.py", inputs, {
      mode: "swav", file, dims: HEAD_DIMS, bn: true, prototypes: c.prototypes, nmbCrops: [2, 3], batchSize: B,
      temperature: 0.1, epsilon: 0.05, iterations: 3, cropsForAssign: [0, 1],
    });
    fs.rmSync(path.dirname(file), { recursive: true });
    tidy(() => {
      assertClose(loss, oracleTensor(ref, "loss"), { ...tol, what: "loss" });
      const names = swav.namedParameters().map(([n]) => n);
      assert.deepEqual(names, Object.keys(ref).filter((k) => k.startsWith("grad.")).map((k) => k.slice(5)), "parameter names as in torch");
      for (const [name, p] of swav.namedParameters()) {
        assertClose(p.grad!, oracleTensor(ref, `grad.${name}`), { ...tol, what: `grad of ${name}` });
        assertClose(p, oracleTensor(ref, `param.${name}`), { ...tol, what: name }); // the normalized prototypes
      }
      for (const [name, b] of swav.namedBuffers()) assertClose(b, oracleTensor(ref, `buffer.${name}`), { ...tol, what: name });
      if (queue) assertClose(queue.state().embeddings, oracleTensor(ref, "queue"), { ...tol, what: "queue after the step" });
    });
    // Iteration 0 < frozenUntilStep 1: the trainer drops the prototype gradients, the rest stay.
    assert.ok(swav.prototypes.cancelGradIfFrozen(0));
    for (const [name, p] of swav.namedParameters()) {
      const g = p.grad;
      assert.equal(g !== undefined, !name.startsWith("prototypes."), name);
      g?.dispose();
    }
  });
}

test("SwAV: the queue fills from startEpoch on, joins Sinkhorn once full, and changes the loss only then", () => {
  manualSeed(12);
  const B = 2;
  using queue = new SwAVQueue(2 * B, 5, 1, { numQueues: 2, dtype: "float64" });
  using swav = buildTinySwav("float64", [7], { queue });
  using plain = buildTinySwav("float64", [7]);
  plain.loadStateDict(swav.stateDict());
  swav.eval(); // BN on running statistics: every call sees the same numbers
  plain.eval();
  // A fresh batch per step (a queue holding copies of the current batch would not change the codes: Sinkhorn
  // gives duplicated columns the same codes).
  const batches = Array.from({ length: 5 }, () => [randn([2 * B, 3, 6, 6], { dtype: "float64" }), randn([3 * B, 3, 4, 4], { dtype: "float64" })]);
  const lossAt = (m: SwAV, epoch: number, step: number): number => tidy(() => m.forward(batches[step]!, { epoch }).loss.item());
  assertNoLeak(() => {
    assert.equal(lossAt(swav, 0, 0), lossAt(plain, 0, 0), "epoch 0: queue not started");
    assert.deepEqual(queue.state().filled, [0, 0], "nothing pushed before startEpoch");
    assert.equal(lossAt(swav, 1, 1), lossAt(plain, 1, 1), "epoch 1: filling, not yet full");
    assert.deepEqual(queue.state().filled, [2, 2]);
    assert.equal(lossAt(swav, 1, 2), lossAt(plain, 1, 2), "full only after this step's push");
    assert.ok(queue.isFull(0) && queue.isFull(1));
    assert.notEqual(lossAt(swav, 1, 3), lossAt(plain, 1, 3), "full: the queue joins Sinkhorn");
  }, "queue steps");
  // The queue holds the last batch's embeddings of the assignment crops (crops 0 and 1), newest first.
  tidy(() => {
    const z = swav.forward(batches[3]![0]!); // (2B, 5): crop 0 then crop 1 of every image
    assertClose(queue.embeddings(0).narrow(0, 0, B), z.narrow(0, 0, B), { atol: 1e-12, what: "queue 0 head" });
    assertClose(queue.embeddings(1).narrow(0, 0, B), z.narrow(0, B, B), { atol: 1e-12, what: "queue 1 head" });
    assertClose(z.norm(2, 1), Array(2 * B).fill(1), { atol: 1e-12, what: "unit embeddings" });
  });
  assert.throws(() => swav.forward(batches[4]!), /pass \{ epoch \}/);
  batches.flat().forEach((t) => t.dispose());
});

test("SwAV: checks crops and parts; default head and prototypes as smallSwavHead", () => {
  assertNoLeak(() => {
    using swav = buildTinySwav("float32", [7]);
    tidy(() => {
      assert.throws(() => swav.forward([randn([6, 3, 4, 4])]), /2 resolution groups/);
      assert.throws(() => swav.forward([randn([6, 3, 4, 4]), randn([8, 3, 4, 4])]), /group 1 has shape \[8, 3, 4, 4\]/);
      assert.throws(() => swav.forward([randn([5, 3, 4, 4]), randn([6, 3, 4, 4])]), /group 0/);
      const out = swav.forward([randn([4, 3, 4, 4]), randn([6, 3, 4, 4])], { returnScores: true }); // B = 2, V = 5
      assert.deepEqual(out.loss.shape, []);
      assert.deepEqual(out.scores!.map((t) => t.shape), [[10, 7]]);
      assert.equal(swav.forward([randn([4, 3, 4, 4]), randn([6, 3, 4, 4])]).scores, undefined);
    });
    using tiny = new Tiny();
    using wrongHead = new ProjectionHead([7, 5]);
    assert.throws(() => new SwAV(tiny, { numCrops: [2], head: wrongHead }), /head takes 7 features/);
    using protos = new SwAVPrototypes(4, 3);
    assert.throws(() => new SwAV(tiny, { numCrops: [2], prototypes: protos }), /take 4-dim embeddings, the head gives 128/);
    using q = new SwAVQueue(4, 128, 0, { numQueues: 1 });
    assert.throws(() => new SwAV(tiny, { numCrops: [2], queue: q }), /1 queues, cropsForAssign has 2/);
    assert.throws(() => new SwAV(tiny, { numCrops: [2, 0] }), /positive integer crop counts/);
    assert.throws(() => new SwAV(tiny, { numCrops: [1] }), /numCrops/);
    using d = new SwAV(new Tiny(), { numCrops: [2, 4] });
    assert.deepEqual(d.head.dims, [6, 2048, 128]);
    assert.ok(d.head.batchNorm);
    assert.deepEqual(d.prototypes.numPrototypes, [3000]);
    assert.equal(d.prototypes.frozenUntilStep, 313);
    assert.equal(d.criterion.config.numCrops, 6);
    assert.deepEqual(d.namedParameters().map(([n]) => n.split(".")[0]), [...Array(3).fill("backbone"), ...Array(6).fill("head"), "prototypes"]);
  });
});

test("SimCLR forward/backward matches torch.nn + simclr objective.py", () => {
  manualSeed(13);
  const dims = [6, 6, 4];
  using simclr = new SimCLR(new Tiny(), { head: new ProjectionHead(dims, { batchNorm: true }), loss: { temperature: 0.2 } }).to("float64");
  perturbBatchNorms(simclr);
  const file = tmpFile("simclr.safetensors");
  saveSafetensors(file, simclr.stateDict());
  using views = randn([2 * 4, 3, 7, 7], { dtype: "float64" });
  const before = memory().numTensors;
  using loss = tidy(() => {
    const l = simclr.forward(views);
    l.backward();
    return l;
  });
  assert.equal(memory().numTensors, before + 1);
  const ref = runOracle("ssl_swav_step.py", { views }, { mode: "simclr", file, dims, temperature: 0.2 });
  fs.rmSync(path.dirname(file), { recursive: true });
  tidy(() => {
    assertClose(loss, oracleTensor(ref, "loss"), { atol: 1e-10, rtol: 1e-10, what: "loss" });
    for (const [name, p] of simclr.namedParameters()) assertClose(p.grad!, oracleTensor(ref, `grad.${name}`), { atol: 1e-10, rtol: 1e-10, what: `grad of ${name}` });
  });
  using d = new SimCLR(new Tiny());
  assert.deepEqual(d.head.dims, [6, 6, 128]);
});
