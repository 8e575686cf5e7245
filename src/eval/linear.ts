// Linear evaluation ("linear probe") on frozen features: a logistic-regression layer trained on cached backbone
// features, as facebookresearch/swav eval_linear.py (`RegLog` on the global-average-pooled trunk, the trunk in eval
// mode under no_grad):
//
//   Linear(numFeatures → classes), weight ~ N(0, 0.01²), bias 0
//   SGD(lr 0.3, momentum 0.9, weight_decay 1e-6, nesterov False), cross-entropy, 100 epochs
//   CosineAnnealingLR(T_max = epochs, eta_min = final_lr = 0), stepped once per epoch
//
// Optional BatchNorm1d(affine=False, eps=1e-6) on the features before the linear layer, as MoCo v3 / MAE linear
// probing (`torch.nn.Sequential(BatchNorm1d(affine=False, eps=1e-6), head)`); on by default here because the
// scale of features differs a lot between checkpoints (and random init), and a fixed lr works across them only on
// normalized inputs. It is a re-parametrization of the same linear classifier (no extra capacity).
//
// What differs from eval_linear.py: the features are computed once with the test transform (Resize → CenterCrop)
// and cached, so training sees no RandomResizedCrop/flip augmentation (the cheap protocol of solo-learn's and
// Lightly's offline linear eval on stored features); the batch is global (256 = SwAV's 32 × 8 GPUs). Shuffling is
// seeded (data/rng.ts), as is the init (manualSeed), so a run is repeatable bit for bit on the same machine.
// With BN, a final batch of a single row is dropped (BN needs two rows for batch statistics).
import { BatchNorm1d, Linear, Module } from "../nn";
import { crossEntropy } from "../nn/functional";
import { normal_, zeros_ } from "../nn/init";
import { SGD, warmupCosine } from "../optim";
import { Rng } from "../data/rng";
import { Progress } from "../cli/progress";
import { manualSeed, noGrad, tensor, tidy, type Tensor } from "../tensor";
import { type ClassificationResult, checkFeatures, inferNumClasses, rankScores } from "./knn";

export interface LinearClassifierOptions {
  /** BatchNorm1d(affine=False, eps=1e-6) before the linear layer. Default true. */
  batchNorm?: boolean;
}

/** (N, numFeatures) → [BN without affine] → Linear → (N, numClasses) logits. */
export class LinearClassifier extends Module {
  readonly bn: BatchNorm1d | undefined;
  readonly linear: Linear;

  constructor(readonly numFeatures: number, readonly numClasses: number, o: LinearClassifierOptions = {}) {
    super();
    this.bn = (o.batchNorm ?? true) ? this.registerModule("bn", new BatchNorm1d(numFeatures, { affine: false, eps: 1e-6 })) : undefined;
    this.linear = this.registerModule("linear", new Linear(numFeatures, numClasses));
    normal_(this.linear.weight, 0, 0.01); // swav RegLog
    zeros_(this.linear.bias!);
  }

  forward(x: Tensor): Tensor {
    if (!this.bn) return this.linear.forward(x); // (N, C)
    using h = this.bn.forward(x); // (N, D)
    return this.linear.forward(h); // (N, C)
  }
}

export interface LinearProbeOptions extends LinearClassifierOptions {
  /** Default 100. */
  epochs?: number;
  /** Default 256. */
  batchSize?: number;
  /** Peak learning rate (epoch 0). Default 0.3. */
  lr?: number;
  /** Where the cosine ends. Default 0. */
  finalLr?: number;
  /** Default 0.9. */
  momentum?: number;
  /** Default 1e-6. */
  weightDecay?: number;
  /** Default false. */
  nesterov?: boolean;
  /** Seeds the init and the shuffling. Default 0. */
  seed?: number;
  /** Default: largest label + 1. */
  numClasses?: number;
  /** A progress bar on stderr with this label; false for none. Default false. */
  progress?: string | false;
  /** Called after each epoch with the mean training loss and the epoch's lr. */
  onEpoch?: (epoch: number, meanLoss: number, lr: number) => void;
}

export interface LinearProbeResult extends ClassificationResult {
  /** Mean cross-entropy of the last epoch. */
  finalTrainLoss: number;
  epochs: number;
  /** Optimizer steps taken. */
  steps: number;
}

/** Int64 row indices [start, start + n) of a permutation, as a tensor (n). */
function indexTensor(perm: Int32Array): Tensor {
  return tensor(BigInt64Array.from(perm, (i) => BigInt(i)), { shape: [perm.length] });
}

/** Top-1 / top-5 of a classifier on features, in eval mode, chunked. */
export function evaluateClassifier(clf: Module, features: Tensor, labels: Tensor, numClasses: number, chunkRows = 4096): ClassificationResult {
  const n = features.shape[0]!;
  const wasTraining = clf.training;
  clf.eval();
  const predictions = new Int32Array(n);
  let correct1 = 0;
  let correct5 = 0;
  try {
    noGrad(() => {
      for (let start = 0; start < n; start += chunkRows) {
        const B = Math.min(chunkRows, n - start);
        const scores = tidy(() => clf.forward(features.narrow(0, start, B)).to("float64").data() as Float64Array); // (B, C)
        const y = tidy(() => Int32Array.from(labels.narrow(0, start, B).toArray())); // (B)
        const r = rankScores(scores, y, numClasses);
        predictions.set(r.predictions, start);
        correct1 += r.correct1;
        correct5 += r.correct5;
      }
    });
  } finally {
    clf.train(wasTraining);
  }
  return { top1: (100 * correct1) / Math.max(n, 1), top5: (100 * correct5) / Math.max(n, 1), correct1, correct5, n, predictions };
}

/**
 * Trains a linear classifier on frozen train features and reports top-1 / top-5 on the test features (see the
 * header for the protocol). Features (N, D) float32, labels (N) int64.
 */
export function linearProbe(trainFeatures: Tensor, trainLabels: Tensor, testFeatures: Tensor, testLabels: Tensor, o: LinearProbeOptions = {}): LinearProbeResult {
  checkFeatures(trainFeatures, trainLabels, "linearProbe train");
  checkFeatures(testFeatures, testLabels, "linearProbe test");
  const [N, D] = trainFeatures.shape as [number, number];
  if (testFeatures.shape[1] !== D) throw new RangeError(`linearProbe: train features have ${D} dims, test features ${testFeatures.shape[1]}`);
  if (N === 0) throw new RangeError("linearProbe: no train rows");
  const epochs = o.epochs ?? 100;
  const batchSize = o.batchSize ?? 256;
  for (const [name, v] of [["epochs", epochs], ["batchSize", batchSize]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`Expected a positive integer for ${name} but received ${v}`);
  }
  const seed = o.seed ?? 0;
  const C = o.numClasses ?? inferNumClasses(trainLabels, testLabels);
  const useBn = o.batchNorm ?? true;

  manualSeed(seed);
  using clf = new LinearClassifier(D, C, { batchNorm: useBn });
  const lr = o.lr ?? 0.3;
  const opt = new SGD(clf.parameters(), { lr, momentum: o.momentum ?? 0.9, weightDecay: o.weightDecay ?? 1e-6, nesterov: o.nesterov ?? false });
  // torch CosineAnnealingLR stepped per epoch: lr_e = final + (lr - final)(1 + cos(pi e / epochs)) / 2.
  const schedule = warmupCosine({ baseLr: lr, totalIters: epochs, finalLr: o.finalLr ?? 0 });
  const bar = o.progress ? new Progress(o.progress, epochs, "epoch") : undefined;
  let steps = 0;
  let finalTrainLoss = NaN;
  try {
    clf.train();
    for (let epoch = 0; epoch < epochs; epoch++) {
      const epochLr = schedule(epoch);
      opt.setLr(epochLr);
      const perm = Rng.forKey("linear-probe", seed, epoch).permutation(N);
      // One shuffled copy per epoch, then contiguous batches of it.
      const [x, y] = tidy((): [Tensor, Tensor] => {
        const idx = indexTensor(perm);
        return [trainFeatures.indexSelect(0, idx), trainLabels.indexSelect(0, idx)]; // (N, D), (N)
      });
      let lossSum = 0;
      let seen = 0;
      try {
        for (let start = 0; start < N; start += batchSize) {
          const B = Math.min(batchSize, N - start);
          if (useBn && B < 2) continue; // see the header
          const loss = tidy(() => crossEntropy(clf.forward(x.narrow(0, start, B)), y.narrow(0, start, B))); // ()
          loss.backward();
          opt.step();
          opt.zeroGrad();
          lossSum += loss.item() * B; // a device sync point; features live on the CPU anyway
          seen += B;
          loss.dispose();
          steps++;
        }
      } finally {
        x.dispose();
        y.dispose();
      }
      finalTrainLoss = lossSum / Math.max(seen, 1);
      o.onEpoch?.(epoch, finalTrainLoss, epochLr);
      bar?.update(epoch + 1, `loss ${finalTrainLoss.toFixed(4)}`);
    }
    const r = evaluateClassifier(clf, testFeatures, testLabels, C);
    return { ...r, finalTrainLoss, epochs, steps };
  } finally {
    opt.dispose();
  }
}
