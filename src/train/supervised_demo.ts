// The demo that `seer demo` runs until pretraining lands: a small CNN trained with labels on real images
// (Fashion-MNIST from Debian's dataset-fashion-mnist), test accuracy before and after. It exercises the whole
// engine path a pretraining run uses: data to tensors, conv/BN forward, cross-entropy, backward, SGD, schedules.
import type { Sequential } from "../nn";
import { smallCnn } from "../models/small_cnn";
import { crossEntropy } from "../nn/functional";
import { SGD, warmupCosine } from "../optim";
import { loadFashionMnist, type LabelledImages } from "../data/idx";
import { manualSeed, noGrad, randperm, setNumThreads, type Tensor, tensor, tidy } from "../tensor";
import { Progress } from "../cli/progress";

export interface DemoOptions {
  steps: number;
  batch: number;
  lr: number;
  threads: number;
  seed: number;
}

export interface DemoResult {
  steps: number;
  seconds: number;
  imagesPerSecond: number;
  accuracyAtInit: number;
  accuracyTrained: number;
  finalLoss: number;
}

// Fashion-MNIST pixel mean and std over the train split (of x/255).
const MEAN = 0.286;
const STD = 0.353;

/** uint8 (N, 28, 28) pixels and labels as tensors: images (N, 1, 28, 28) uint8, labels (N) int64. */
function toTensors(set: LabelledImages): { images: Tensor; labels: Tensor } {
  const [n, h, w] = set.images.shape as [number, number, number];
  return {
    images: tensor(set.images.data, { shape: [n, 1, h, w] }),
    labels: tensor(set.labels, { dtype: "int64" }),
  };
}

/** uint8 batch (B, 1, 28, 28) -> normalized float32 */
const normalizeBatch = (x: Tensor): Tensor => x.float().div(255).sub(MEAN).div(STD);

function accuracy(model: Sequential, images: Tensor, labels: Tensor, batch = 1000): number {
  model.eval();
  let correct = 0;
  const n = images.size(0);
  for (let i = 0; i < n; i += batch) {
    correct += tidy(() =>
      noGrad(() => {
        const logits = model.forward(normalizeBatch(images.slice(0, i, i + batch))); // (B, 10)
        return logits.argmax(1).eq(labels.slice(0, i, i + batch)).sum().item();
      }),
    );
  }
  model.train();
  return correct / n;
}

export function runSupervisedDemo(o: DemoOptions, log: (s: string) => void = console.log): DemoResult {
  setNumThreads(o.threads);
  manualSeed(o.seed);
  const train = toTensors(loadFashionMnist("train"));
  const test = toTensors(loadFashionMnist("test"));
  const model = smallCnn(1);
  const opt = new SGD(model.namedParameters(), { lr: o.lr, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
  const lrAt = warmupCosine({ baseLr: o.lr, warmupIters: Math.round(o.steps * 0.05), totalIters: o.steps, startLr: o.lr * 0.1, finalLr: 0 });

  const accuracyAtInit = accuracy(model, test.images, test.labels);
  log(`accuracy of the untrained network on Fashion-MNIST test: ${(accuracyAtInit * 100).toFixed(2)}%`);

  const n = train.images.size(0);
  let order = randperm(n);
  let cursor = 0;
  let finalLoss = NaN;
  const progress = new Progress("train", o.steps, "steps");
  const t0 = Date.now();
  for (let step = 0; step < o.steps; step++) {
    if (cursor + o.batch > n) {
      order.dispose();
      order = randperm(n); // a new epoch
      cursor = 0;
    }
    opt.setLr(lrAt(step));
    finalLoss = tidy(() => {
      const idx = order.slice(0, cursor, cursor + o.batch);
      const x = normalizeBatch(train.images.indexSelect(0, idx)); // (B, 1, 28, 28)
      const y = train.labels.indexSelect(0, idx); // (B)
      const loss = crossEntropy(model.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss.item(); // sync point
    });
    cursor += o.batch;
    progress.update(step + 1, `loss ${finalLoss.toFixed(3)}`);
  }
  const seconds = (Date.now() - t0) / 1000;
  order.dispose();

  const accuracyTrained = accuracy(model, test.images, test.labels);
  log(`accuracy after ${o.steps} steps: ${(accuracyTrained * 100).toFixed(2)}%  (${seconds.toFixed(1)} s, ${((o.steps * o.batch) / seconds).toFixed(0)} images/s)`);

  opt.dispose();
  model.dispose();
  for (const t of [train.images, train.labels, test.images, test.labels]) t.dispose();
  return { steps: o.steps, seconds, imagesPerSecond: (o.steps * o.batch) / seconds, accuracyAtInit, accuracyTrained, finalLoss };
}
