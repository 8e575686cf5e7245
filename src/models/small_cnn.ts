// A small CNN (conv-BN-ReLU x3, global pool, linear): the network of `seer demo` and of `seer bench ops`, where
// bench/pytorch_ops.py builds the same layers in PyTorch.
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, ReLU, Sequential } from "../nn";

/** (N, inChannels, H, W) -> (N, numClasses) logits. */
export function smallCnn(inChannels = 3, numClasses = 10): Sequential {
  return new Sequential(
    new Conv2d(inChannels, 32, 3, { padding: 1, bias: false }), new BatchNorm2d(32), new ReLU(),
    new Conv2d(32, 64, 3, { stride: 2, padding: 1, bias: false }), new BatchNorm2d(64), new ReLU(),
    new Conv2d(64, 128, 3, { stride: 2, padding: 1, bias: false }), new BatchNorm2d(128), new ReLU(),
    new AdaptiveAvgPool2d(1), new Flatten(), new Linear(128, numClasses),
  );
}
