// The tiny CNN, data and training loop that the SyncBatchNorm test runs both in one process (whole batch, plain
// BatchNorm) and in two (half the batch each, SyncBatchNorm, averaged gradients). Shared so both run the same code.
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, F, Flatten, Linear, ReLU, Sequential } from "../../src/nn";
import { SGD } from "../../src/optim";
import { type DType, keep, manualSeed, randint, randn, type Tensor, tidy } from "../../src/tensor";

export const BATCH = 8;
export const STEPS = 3;

export function buildTinyCnn(dtype: DType, seed: number): Sequential {
  manualSeed(seed);
  const net = new Sequential(
    new Conv2d(3, 4, 3, { padding: 1, bias: false }), new BatchNorm2d(4), new ReLU(),
    new Conv2d(4, 6, 3, { stride: 2, bias: false }), new BatchNorm2d(6, { momentum: null }), new ReLU(),
    new AdaptiveAvgPool2d(1), new Flatten(), new Linear(6, 3),
  );
  return net.to(dtype);
}

/** The whole batch: BATCH images (3, 8, 8) and class labels, the same on every process. */
export function makeBatch(dtype: DType): { x: Tensor; y: Tensor } {
  manualSeed(99);
  return tidy(() => ({ x: keep(randn([BATCH, 3, 8, 8]).to(dtype)), y: keep(randint(0, 3, [BATCH])) }));
}

/**
 * STEPS steps of SGD (momentum, weight decay) on (x, y); `afterBackward` runs between backward and the step
 * (the gradient all-reduce in the distributed run).
 */
export function train(net: Sequential, x: Tensor, y: Tensor, hooks: { beforeBackward?: () => void; afterBackward?: () => void } = {}): void {
  const opt = new SGD(net.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
  net.train();
  for (let step = 0; step < STEPS; step++) {
    tidy(() => {
      opt.zeroGrad();
      const loss = F.crossEntropy(net.forward(x), y);
      hooks.beforeBackward?.();
      loss.backward();
      hooks.afterBackward?.();
      opt.step();
    });
  }
  opt.dispose();
}
