// The online kNN monitor of a pretraining run: how well the trunk's frozen features classify a labelled sample,
// before training (the random init) and as training goes.
//
// Weighted kNN as Wu et al. 2018 (InstDisc, lemniscate.pytorch `kNN`) and facebookresearch/dino eval_knn.py
// `knn_classifier` compute it: L2-normalized features, the k train rows of largest cosine similarity s, votes
// Σ exp(s / T) per class, argmax. Each row's weights are scaled by exp(-s_max / T), which leaves the argmax
// unchanged and keeps small T from overflowing. The full evaluation (top-5, linear probe, low-shot, caching) is
// src/eval/; this is the small version a training loop can afford to run every few hundred iterations.
//
// The sample (e.g. 1000 CIFAR-10 test images against 5000 train images) is a seeded subset of each labelled source,
// decoded once with the multi-crop loader in a deterministic configuration (one center crop of the whole image,
// resized to imageSize; no flip or colour changes; ImageNet mean/std) and kept in memory as tensors; each
// evaluation is then the trunk's forwardFeatures in eval mode under noGrad, plus one similarity product.
//
// Both the random init and the trained trunk are evaluated as they are, each with its own BatchNorm running
// statistics (the init's are (0, 1)), the usual protocol. NOTE: re-estimating the statistics on the monitor's images
// first was tried; it lowered the random init's accuracy (20.6% -> 15.4% on 500 CIFAR-10 test images) and would
// have flattered the gain.
import { MultiCropLoader } from "../data/loader";
import { DEFAULT_RATIO, SEER_MULTICROP, multiCropConfig } from "../data/multicrop";
import { Rng } from "../data/rng";
import { resolveSource } from "../data/scan";
import { isIndexed, type ImageRecord, type IndexedImageSource } from "../data/sources";
import { oneHot } from "../nn/functional";
import type { Backbone } from "../ssl/types";
import { cat, keep, noGrad, tensor, tidy, type Device, type Tensor } from "../tensor";

export interface KnnAccuracyOptions {
  /** Neighbours (clamped to the number of train rows). Default 20. */
  k?: number;
  /** T of the exp(s / T) vote weights. Default 0.07. */
  temperature?: number;
  /** Number of classes. Default: largest label + 1. */
  numClasses?: number;
  /** Test rows per similarity block (bounds memory). Default 256. */
  chunkRows?: number;
}

/**
 * Top-1 accuracy in [0, 1] of weighted cosine kNN. trainFeats (N, D), testFeats (M, D) float, any scale;
 * trainLabels (N), testLabels (M) int64.
 */
export function knnAccuracy(trainFeats: Tensor, trainLabels: Tensor, testFeats: Tensor, testLabels: Tensor, o: KnnAccuracyOptions = {}): number {
  const N = trainFeats.shape[0]!;
  const M = testFeats.shape[0]!;
  if (trainFeats.ndim !== 2 || testFeats.ndim !== 2 || trainFeats.shape[1] !== testFeats.shape[1]) {
    throw new RangeError(`knnAccuracy: expected features (N, D) and (M, D) but received [${trainFeats.shape.join(", ")}] and [${testFeats.shape.join(", ")}]`);
  }
  if (trainLabels.shape[0] !== N || testLabels.shape[0] !== M) throw new RangeError("knnAccuracy: one label per feature row is needed");
  if (N === 0 || M === 0) throw new RangeError("knnAccuracy: no rows");
  const T = o.temperature ?? 0.07;
  const k = Math.min(o.k ?? 20, N);
  if (!(T > 0) || !Number.isInteger(k) || k < 1) throw new RangeError(`knnAccuracy: expected k >= 1 and T > 0 but received k ${o.k}, T ${T}`);
  const C = o.numClasses ?? Math.max(...trainLabels.toArray(), ...testLabels.toArray()) + 1;
  const chunk = o.chunkRows ?? 256;
  return noGrad(() =>
    tidy(() => {
      const train = trainFeats.float().div(trainFeats.float().norm(2, 1, true).clampMin(1e-12)); // (N, D) unit rows
      const test = testFeats.float().div(testFeats.float().norm(2, 1, true).clampMin(1e-12)); // (M, D)
      // Labels live in host memory; the features where the trunk ran.
      const bankLabels = trainLabels.device === train.device ? trainLabels : trainLabels.to(train.device); // (N)
      const evalLabels = testLabels.device === train.device ? testLabels : testLabels.to(train.device); // (M)
      let correct = 0;
      for (let start = 0; start < M; start += chunk) {
        const n = Math.min(chunk, M - start);
        correct += tidy(() => {
          const sims = test.narrow(0, start, n).mm(train.t()); // (n, N)
          const { values, indices } = sims.topk(k, 1); // (n, k) each, largest first
          const weights = values.sub(values.narrow(1, 0, 1)).div(T).exp(); // (n, k) exp((s - s_max) / T)
          const neighbourLabels = bankLabels.indexSelect(0, indices.flatten()).reshape(n, k); // (n, k)
          const votes = oneHot(neighbourLabels, C).float().mul(weights.unsqueeze(2)).sum(1); // (n, C)
          const predicted = votes.argmax(1); // (n)
          return predicted.eq(evalLabels.narrow(0, start, n)).sum().item();
        });
      }
      return correct / M;
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// The labelled sample

export interface KnnMonitorOptions {
  /** Labelled source specs (resolveSource, with folder labels on). */
  trainSource: string;
  testSource: string;
  /** Seeded subset sizes (0: the whole source). */
  trainSamples: number;
  testSamples: number;
  /** Side of the evaluation images. */
  imageSize: number;
  k: number;
  temperature: number;
  /** Images per forward pass. */
  batchSize: number;
  /** Seed of the subsets. */
  seed: number;
  /** The evaluated trunk's device: images stay in host memory and go there a batch at a time (default cpu). */
  device?: Device;
}

/** Images of a labelled sample, decoded once: (n, 3, S, S) normalized float, (n) int64 labels. */
interface LabelledImages {
  images: Tensor;
  labels: Tensor;
}

/** A seeded subset of `n` records of a labelled indexed source (all of them when n is 0 or too large). */
function labelledSubset(source: IndexedImageSource, n: number, seed: number, what: string): IndexedImageSource {
  const count = n > 0 ? Math.min(n, source.length) : source.length;
  const picked = Array.from(Rng.forKey(seed, "knn-monitor", what).permutation(source.length).subarray(0, count));
  const records: ImageRecord[] = picked.map((i) => source.at(i));
  const unlabelled = records.find((r) => r.label === undefined);
  if (unlabelled) throw new Error(`knn monitor: ${source.description} has an image without a label (${unlabelled.key}); it needs a labelled source (builtin:NAME/SPLIT or a folder of class folders)`);
  return {
    description: `${source.description} (${count} of ${source.length})`,
    classes: source.classes,
    length: records.length,
    at: (i: number) => records[i]!,
    [Symbol.asyncIterator]: async function* () {
      for (const r of records) yield r;
    },
  };
}

async function decodeLabelled(spec: string, n: number, o: KnnMonitorOptions, what: string): Promise<LabelledImages> {
  const source = await resolveSource(spec, { labels: true });
  if (!isIndexed(source)) throw new Error(`knn monitor: ${spec} is a stream; the monitor needs an indexed labelled source (a folder, a list or builtin:NAME/SPLIT)`);
  const subset = labelledSubset(source, n, o.seed, what);
  // One crop of the whole image (scale 1, square: a center crop of the short side), resized; no photometric change.
  const augment = multiCropConfig(
    { crops: [{ count: 1, size: o.imageSize, scale: [1, 1], ratio: [1, 1] }], flipProb: 0, colorJitter: { prob: 0 }, grayscaleProb: 0, blur: { prob: 0 }, solarize: { prob: 0 } },
    { ...SEER_MULTICROP, crops: [{ count: 1, size: o.imageSize, scale: [1, 1], ratio: DEFAULT_RATIO }] },
  );
  const loader = new MultiCropLoader(subset, { batchSize: subset.length, augment, shuffle: false, seed: o.seed, prefetch: 1 });
  try {
    for await (const batch of loader) {
      using b = batch;
      const images = keep(b.crops[0]!.clone()); // (n, 3, S, S): the loader reuses its buffers
      const labels = keep(tensor(b.samples.map((s) => s.label ?? 0), { dtype: "int64" })); // (n)
      return { images, labels };
    }
  } finally {
    await loader.close();
  }
  throw new Error(`knn monitor: no images decoded from ${spec}`);
}

/** The online kNN monitor: a labelled sample held in memory, and evaluate(backbone) -> top-1 accuracy. */
export class KnnMonitor implements Disposable {
  private constructor(
    readonly options: KnnMonitorOptions,
    private readonly train: LabelledImages,
    private readonly test: LabelledImages,
    readonly numClasses: number,
  ) {}

  /** Decodes both samples (once). */
  static async open(o: KnnMonitorOptions): Promise<KnnMonitor> {
    const train = await decodeLabelled(o.trainSource, o.trainSamples, o, "train");
    try {
      const test = await decodeLabelled(o.testSource, o.testSamples, o, "test");
      const numClasses = Math.max(...train.labels.toArray(), ...test.labels.toArray()) + 1;
      return new KnnMonitor(o, train, test, numClasses);
    } catch (e) {
      train.images.dispose();
      train.labels.dispose();
      throw e;
    }
  }

  get trainSize(): number {
    return this.train.labels.shape[0]!;
  }
  get testSize(): number {
    return this.test.labels.shape[0]!;
  }

  /** Top-1 kNN accuracy in [0, 1] of the backbone's pooled features (eval mode during, training mode restored). */
  evaluate(backbone: Backbone): number {
    const wasTraining = backbone.training;
    backbone.eval();
    try {
      return tidy(() => {
        const trainFeats = this.features(backbone, this.train.images); // (N, W)
        const testFeats = this.features(backbone, this.test.images); // (M, W)
        return knnAccuracy(trainFeats, this.train.labels, testFeats, this.test.labels, {
          k: this.options.k, temperature: this.options.temperature, numClasses: this.numClasses,
        });
      });
    } finally {
      backbone.train(wasTraining);
    }
  }

  private features(backbone: Backbone, images: Tensor): Tensor {
    const n = images.shape[0]!;
    const B = this.options.batchSize;
    return noGrad(() =>
      tidy(() => {
        const parts: Tensor[] = [];
        const device = this.options.device ?? "cpu";
        for (let s = 0; s < n; s += B) {
          const chunk = images.narrow(0, s, Math.min(B, n - s)); // (b, 3, S, S)
          parts.push(backbone.forwardFeatures(device === "cpu" ? chunk : chunk.to(device))); // (b, W)
        }
        return cat(parts); // (n, W)
      }),
    );
  }

  dispose(): void {
    for (const t of [this.train.images, this.train.labels, this.test.images, this.test.labels]) t.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

