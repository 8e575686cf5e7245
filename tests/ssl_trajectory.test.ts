// A few SwAV training iterations of a tiny model against PyTorch given the same weights and inputs
// (tests/oracle/ssl_swav_trajectory.py, main_swav.py's loop): per-iteration learning rates, prototypes frozen for
// the first iterations, apex LARC around SGD with momentum and weight decay, prototypes re-normalized after each
// update, and a queue that fills and then joins Sinkhorn. Every loss on the way and the final weights, BatchNorm
// statistics and queue must agree in float64 — the order of operations is the trainer's (src/train/trainer.ts).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { saveSafetensors } from "../src/io/safetensors";
import { LARC, SGD } from "../src/optim";
import { SwAVQueue } from "../src/ssl/swav_loss";
import { manualSeed, memory, randn, type Tensor, tidy } from "../src/tensor";
import { assertClose } from "./helpers/assert";
import { oracleTensor, runOracle } from "./helpers/oracle";
import { HEAD_DIMS, buildTinySwav } from "./helpers/ssl_tiny";

test("SwAV: 5 iterations with LARC, momentum, frozen prototypes and a queue follow PyTorch's trajectory (float64)", () => {
  manualSeed(21);
  const B = 3;
  const steps = 5;
  const freeze = 2;
  const lrs = [0.2, 0.5, 0.4, 0.3, 0.1];
  const hyper = { momentum: 0.9, weightDecay: 1e-4, trust: 0.05, eps: 1e-8 };
  using queue = new SwAVQueue(2 * B, 5, 0, { numQueues: 2, dtype: "float64" }); // full after 2 iterations
  using swav = buildTinySwav("float64", [7], { queue, frozenUntilStep: freeze });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-traj-"));
  const file = path.join(dir, "swav.safetensors");
  saveSafetensors(file, swav.stateDict());
  const inputs: Record<string, Tensor> = {};
  for (let k = 0; k < steps; k++) {
    inputs[`s${k}_crops0`] = randn([2 * B, 3, 8, 8], { dtype: "float64" }); // 2 large crops, crop-major
    inputs[`s${k}_crops1`] = randn([3 * B, 3, 5, 5], { dtype: "float64" }); // 3 small crops
  }

  const optimizer = new LARC(new SGD(swav.namedParameters(), { lr: lrs[0]!, momentum: hyper.momentum, weightDecay: hyper.weightDecay }), {
    trustCoefficient: hyper.trust, eps: hyper.eps, clip: false,
  });
  const losses: number[] = [];
  swav.prototypes.normalize(); // the trainer starts on the unit sphere
  const before = memory().numTensors;
  for (let k = 0; k < steps; k++) {
    // The body of the trainer's iteration(), on one process.
    optimizer.setLr(lrs[k]!);
    losses.push(tidy(() => {
      const loss = swav.forward([inputs[`s${k}_crops0`]!, inputs[`s${k}_crops1`]!], { epoch: 0 }).loss;
      optimizer.zeroGrad();
      loss.backward();
      swav.prototypes.cancelGradIfFrozen(k);
      optimizer.step();
      swav.prototypes.normalize();
      return loss.item();
    }));
  }
  // What stays behind is the optimizer's state: one momentum buffer per parameter, and LARC's two masks (which
  // parameters adapt, which decay) for its one bucket of float64 parameters.
  assert.equal(memory().numTensors - before, swav.parameters().length + 2, "live tensors after the iterations");

  const ref = runOracle("ssl_swav_trajectory.py", inputs, {
    file, dims: HEAD_DIMS, bn: true, prototypes: [7], nmbCrops: [2, 3], batchSize: B, temperature: 0.1, epsilon: 0.05,
    iterations: 3, cropsForAssign: [0, 1], steps, lrs, momentum: hyper.momentum, weightDecay: hyper.weightDecay,
    trust: hyper.trust, eps: hyper.eps, freeze, queueLength: 2 * B,
  });
  fs.rmSync(dir, { recursive: true });
  const tol = { atol: 1e-10, rtol: 1e-9 };
  tidy(() => {
    losses.forEach((l, k) => assertClose([l], oracleTensor(ref, `loss${k}`).reshape(1), { ...tol, what: `loss of iteration ${k}` }));
    for (const [name, p] of swav.namedParameters()) assertClose(p, oracleTensor(ref, `param.${name}`), { ...tol, what: name });
    for (const [name, b] of swav.namedBuffers()) assertClose(b, oracleTensor(ref, `buffer.${name}`), { ...tol, what: name });
    assertClose(queue.state().embeddings, oracleTensor(ref, "queue"), { ...tol, what: "queue" });
  });
  // The run moved: the losses differ from step to step, and the queue changed the codes once full (iteration 2 on).
  assert.ok(new Set(losses.map((l) => l.toFixed(6))).size === steps, `losses ${losses}`);
  optimizer.dispose();
  for (const t of Object.values(inputs)) t.dispose();
});
