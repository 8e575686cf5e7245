// Leak test: 1,000 training steps of a small CNN leave the live-tensor count unchanged and RSS flat.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, ReLU, Sequential } from "../src/nn";
import { crossEntropy } from "../src/nn/functional";
import { SGD } from "../src/optim";
import { manualSeed, memory, randint, randn, tidy } from "../src/tensor";

test("1,000 training steps leak no tensors and keep RSS flat", () => {
  manualSeed(0);
  const model = new Sequential(
    new Conv2d(3, 8, 3, { padding: 1, bias: false }), new BatchNorm2d(8), new ReLU(),
    new Conv2d(8, 16, 3, { stride: 2, padding: 1 }), new BatchNorm2d(16), new ReLU(),
    new AdaptiveAvgPool2d(1), new Flatten(), new Linear(16, 4),
  );
  const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 });
  const images = randn([8, 3, 12, 12]);
  const labels = randint(0, 4, [8]);
  const step = (): number =>
    tidy(() => {
      const loss = crossEntropy(model.forward(images), labels);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss.item();
    });

  const gcFreedBefore = memory().leakedViaGc;
  // Warm-up: the optimizer creates its momentum buffers on the first step; allocator pools fill up.
  for (let i = 0; i < 100; i++) step();
  const tensorsAfterWarmup = memory().numTensors;
  const rssAfterWarmup = process.memoryUsage().rss;
  let last = NaN;
  for (let i = 0; i < 1000; i++) last = step();
  const rssGrowthMiB = (process.memoryUsage().rss - rssAfterWarmup) / 2 ** 20;

  assert.ok(Number.isFinite(last), "loss stays finite");
  assert.equal(memory().numTensors, tensorsAfterWarmup, "live tensor count unchanged over 1,000 steps");
  assert.ok(rssGrowthMiB < 16, `RSS grew ${rssGrowthMiB.toFixed(1)} MiB over 1,000 steps`);
  assert.equal(memory().leakedViaGc, gcFreedBefore, "nothing was left for the GC safety net");

  opt.dispose();
  model.dispose();
  images.dispose();
  labels.dispose();
});
