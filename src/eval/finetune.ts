// Full fine-tuning: the trunk and a new linear head trained end to end on labelled images, then top-1 / top-5 on a
// held-out set. The protocol of SwAV eval_semisup.py and VISSL's semi-supervised / fulltune benchmarks
// (/work/shared/docs/seer-facts.md §2.3, §3.7), on a small scale:
//
//   model      trunk → global average pool → BatchNorm1d(affine=False) → Linear(W → classes), weight ~ N(0, 0.01²),
//              bias 0 (linear.ts LinearClassifier); every BatchNorm in train mode (batch statistics, running statistics
//              updated). The BN before the head is not in the references: the scale of pooled features differs by
//              orders of magnitude between checkpoints and random inits, and without it the head's first steps blow
//              up the loss (2.3 → 6-23 on Imagenette 10% at lr 0.02-0.1 / head 0.2-1) and 40 steps from scratch end at
//              13% top-1 instead of 30%. It re-parametrizes the same linear head (no extra capacity);
//              headBatchNorm: false drops it.
//   data       RandomResizedCrop(size, scale (0.08, 1), ratio (3/4, 4/3)) + horizontal flip (p 0.5), ImageNet
//              normalization; no colour distortion ("light augmentation"); the multi-crop loader with one crop
//              group (data/loader.ts: Pillow-exact crops, seeded by (seed, epoch, image)); the last partial batch
//              of an epoch is dropped
//   optimizer  SGD, momentum 0.9, Nesterov (VISSL), weight decay 1e-4 on every parameter (SEER's fine-tuning); the
//              head's learning rate may differ from the trunk's (eval_semisup.py: lr 0.01 trunk / 0.2 head on 10%)
//   schedule   per-iteration cosine from lr to 0 (VISSL cosine_schedule.yaml), after an optional linear warmup
//   test       the held-out images decoded once with the eval transform (features.ts decodeLabelledImages),
//              forwarded in eval mode (running statistics), ranked as every classifier here (knn.ts rankScores)
//
// Differences from the references, on purpose: a fixed number of iterations can replace epochs (small budgets),
// and one process (no SyncBN). A "scratch twin" is the same call on the same architecture at its random init
// (loadBackbone("random:<arch>")): SEER's pretrained-versus-scratch comparison, same schedule.
//
// The trunk is trained in place: the caller owns it and disposes it; the head is created and freed here.
import { Progress } from "../cli/progress";
import { MultiCropLoader } from "../data/loader";
import { DEFAULT_RATIO, SEER_MULTICROP, multiCropConfig, type MultiCropConfig } from "../data/multicrop";
import type { ImageRecord, IndexedImageSource } from "../data/sources";
import { Module } from "../nn/module";
import { crossEntropy } from "../nn/functional";
import { SGD, warmupCosine } from "../optim";
import { manualSeed, tensor, tidy, type Tensor } from "../tensor";
import type { FeatureExtractor, LabelledImages } from "./features";
import { type ClassificationResult, inferNumClasses } from "./knn";
import { LinearClassifier, evaluateClassifier } from "./linear";

/** Trunk → pooled features → linear head: (N, 3, H, W) → (N, classes) logits. */
export class FinetuneModel extends Module {
  readonly head: LinearClassifier;

  constructor(readonly backbone: FeatureExtractor, numClasses: number, o: { headBatchNorm?: boolean } = {}) {
    super();
    this.registerModule("backbone", backbone);
    this.head = this.registerModule("head", new LinearClassifier(backbone.numFeatures, numClasses, { batchNorm: o.headBatchNorm ?? true }));
  }

  forward(x: Tensor): Tensor {
    using f = this.backbone.forwardFeatures(x); // (N, W)
    return this.head.forward(f); // (N, C)
  }

  /** Frees the head only: the trunk is the caller's. */
  disposeHead(): void {
    this.head.dispose();
  }
}

export interface FinetuneOptions {
  /** Side of the training crops (the test images come as decoded by the caller). */
  imageSize: number;
  /** Optimizer steps; when set (> 0) it wins over epochs. */
  iterations?: number;
  /** Passes over the train set (of floor(N / batchSize) steps each) when iterations is not set. Default 20. */
  epochs?: number;
  /** Images per step; at most the train set's size. Default 64. */
  batchSize?: number;
  /** Peak learning rate of the trunk. Default 0.05. */
  lr?: number;
  /** Peak learning rate of the head. Default: lr. */
  headLr?: number;
  /** Default 1e-4. */
  weightDecay?: number;
  /** Default 0.9. */
  momentum?: number;
  /** Default true (VISSL). */
  nesterov?: boolean;
  /** Linear warmup from 0 over this many steps. Default 0. */
  warmupIters?: number;
  /** RandomResizedCrop area range. Default [0.08, 1] (torchvision). */
  cropScale?: readonly [number, number];
  /**
   * BatchNorm1d without affine parameters between the pooled features and the head (see the header). Default true.
   */
  headBatchNorm?: boolean;
  /** Horizontal flip probability. Default 0.5. */
  flipProb?: number;
  /** Seeds the head's init, the image order and the crops. Default 0. */
  seed?: number;
  /** Default: the train source's class count, else the largest label + 1. */
  numClasses?: number;
  /** Decode worker threads (0: sharp's own pool, in process). Default 0. */
  workers?: number;
  /** Test images per forward pass. Default 128. */
  evalBatchSize?: number;
  /** A progress bar on stderr with this label; false for none. Default false. */
  progress?: string | false;
  /** After each step (0-based) with its loss and learning rate. */
  onStep?: (step: number, loss: number, lr: number) => void;
}

export interface FinetuneResult extends ClassificationResult {
  /** Mean training loss of the first and of the last tenth of the steps (at least one step each). */
  firstTrainLoss: number;
  finalTrainLoss: number;
  iterations: number;
  /** Passes over the train set the iterations made. */
  epochs: number;
  /** Train images (records of the source). */
  nTrain: number;
  seconds: number;
}

/** The training augmentation: one RandomResizedCrop of `size` + flip, nothing photometric, ImageNet mean/std. */
export function finetuneAugment(size: number, scale: readonly [number, number] = [0.08, 1], flipProb = 0.5): MultiCropConfig {
  return multiCropConfig(
    { crops: [{ count: 1, size, scale: [scale[0], scale[1]], ratio: DEFAULT_RATIO }], flipProb, colorJitter: { prob: 0 }, grayscaleProb: 0, blur: { prob: 0 }, solarize: { prob: 0 } },
    SEER_MULTICROP,
  );
}

/** The records `indices` of an indexed source (a low-shot subset, a seeded sample), as an indexed source. */
export function recordSubset(source: IndexedImageSource, indices: readonly number[], description: string): IndexedImageSource {
  const records: ImageRecord[] = indices.map((i) => {
    if (!Number.isInteger(i) || i < 0 || i >= source.length) throw new RangeError(`${description}: record index ${i} out of range [0, ${source.length}) of ${source.description}`);
    return source.at(i);
  });
  return {
    description,
    classes: source.classes,
    length: records.length,
    at: (i: number) => records[i]!,
    [Symbol.asyncIterator]: async function* () {
      yield* records;
    },
  };
}

function positive(name: string, v: number, integer: boolean): void {
  if (!(v > 0) || (integer && !Number.isInteger(v))) throw new RangeError(`finetune: expected a positive ${integer ? "integer" : "number"} for ${name} but received ${v}`);
}

/**
 * Fine-tunes `backbone` (in place) with a new linear head on `train` and reports top-1 / top-5 on `test` (see the
 * header). Labels come from the train records; `test` holds images the size the trunk expects.
 */
export async function finetune(backbone: FeatureExtractor, train: IndexedImageSource, test: LabelledImages, o: FinetuneOptions): Promise<FinetuneResult> {
  const started = performance.now();
  positive("imageSize", o.imageSize, true);
  const N = train.length;
  const batchSize = o.batchSize ?? 64;
  positive("batchSize", batchSize, true);
  if (batchSize < 2) throw new RangeError("finetune: batchSize must be at least 2 (BatchNorm in train mode needs two images)");
  if (N < batchSize) throw new RangeError(`finetune: ${train.description} has ${N} images, fewer than one batch of ${batchSize}; lower batchSize`);
  const stepsPerEpoch = Math.floor(N / batchSize);
  const iterations = o.iterations !== undefined && o.iterations > 0 ? o.iterations : stepsPerEpoch * (o.epochs ?? 20);
  positive("iterations", iterations, true);
  const lr = o.lr ?? 0.05;
  const headLr = o.headLr ?? lr;
  positive("lr", lr, false);
  positive("headLr", headLr, false);
  const seed = o.seed ?? 0;
  const missing = Array.from({ length: Math.min(N, 10_000) }, (_, i) => train.at(i)).find((r) => r.label === undefined);
  if (missing) throw new Error(`finetune: ${train.description}: record ${missing.key} has no label (fine-tuning needs a labelled source)`);
  const numClasses = o.numClasses ?? Math.max(train.classes?.length ?? 0, test.classes?.length ?? 0, inferNumClasses(test.labels));
  const testImages = test.images;
  if (testImages.ndim !== 4 || testImages.shape[1] !== 3) throw new RangeError(`finetune: expected test images (N, 3, H, W) but received shape [${testImages.shape.join(", ")}]`);

  manualSeed(seed); // the head's init
  const model = new FinetuneModel(backbone, numClasses, { headBatchNorm: o.headBatchNorm });
  const trunkParams = backbone.parameters();
  const headParams = model.head.parameters();
  const opt = new SGD(
    [{ params: trunkParams }, { params: headParams, lrScale: headLr / lr }],
    { lr, momentum: o.momentum ?? 0.9, nesterov: o.nesterov ?? true, weightDecay: o.weightDecay ?? 1e-4 },
  );
  const schedule = warmupCosine({ baseLr: lr, totalIters: iterations, warmupIters: o.warmupIters ?? 0, finalLr: 0 });
  const loader = new MultiCropLoader(train, { batchSize, augment: finetuneAugment(o.imageSize, o.cropScale, o.flipProb), seed, workers: o.workers ?? 0, prefetch: 2 });
  const bar = o.progress ? new Progress(o.progress, iterations, "it") : undefined;
  const losses: number[] = [];
  const wasTraining = backbone.training;
  try {
    model.train();
    let step = 0;
    while (step < iterations) {
      let batches = 0;
      for await (const batch of loader) {
        using b = batch;
        batches++;
        const stepLr = schedule(step);
        opt.setLr(stepLr);
        const loss = tidy(() => {
          const y = tensor(BigInt64Array.from(b.samples, (s) => BigInt(s.label!)), { shape: [b.batchSize] }); // (B)
          const l = crossEntropy(model.forward(b.crops[0]!), y); // (): mean over the batch
          opt.zeroGrad();
          l.backward();
          opt.step();
          return l.item();
        });
        if (!Number.isFinite(loss)) throw new Error(`finetune: the loss is ${loss} at step ${step + 1}; lower lr (${lr}) or headLr (${headLr})`);
        losses.push(loss);
        o.onStep?.(step, loss, stepLr);
        step++;
        bar?.update(step, `loss ${loss.toFixed(3)} lr ${stepLr.toPrecision(3)}`);
        if (step >= iterations) break;
      }
      if (batches === 0) throw new Error(`finetune: ${train.description}: an epoch gave no batch`);
    }
    const r = evaluateClassifier(model, testImages, test.labels, numClasses, o.evalBatchSize ?? 128);
    const tenth = Math.max(1, Math.floor(losses.length / 10));
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    return {
      ...r,
      firstTrainLoss: mean(losses.slice(0, tenth)),
      finalTrainLoss: mean(losses.slice(-tenth)),
      iterations,
      epochs: (iterations * batchSize) / N,
      nTrain: N,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    backbone.train(wasTraining);
    opt.dispose();
    model.disposeHead();
    await loader.close();
  }
}
