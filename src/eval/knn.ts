// Weighted k-nearest-neighbour classification on frozen features, the kNN monitor of self-supervised learning:
// Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance Discrimination" (InstDisc, §3.4 and
// its lemniscate.pytorch `kNN`), as facebookresearch/dino eval_knn.py `knn_classifier` and solo-learn's
// WeightedKNNClassifier compute it:
//
//   f ← f / ||f||₂ (train and test)                 cosine similarity s_i = f_test · f_train,i
//   the k train rows with the largest s_i            (ties at the k-th: libtorch topk's choice)
//   vote_c = Σ_{i ∈ top-k, y_i = c} exp(s_i / T)     (T = 0.07 in InstDisc and DINO; 0.1 in Lightly's k=200)
//   prediction = argmax_c vote_c; top-5: the 5 classes with the largest votes
//
// with k = 20 (DINO reports 10/20/100/200, Lightly's Imagenette table k = 20; Lightly's CIFAR-10 and InstDisc use
// k = 200). `vote: "majority"` gives every neighbour weight 1 instead (plain kNN).
//
// Deterministic ranking where eval_knn.py leaves it to torch.sort: classes with equal votes rank by class index
// (lower first), and a class no neighbour voted for never counts as a top-5 hit (DINO counts the first min(5, k)
// sorted classes; with k ≥ 5 its top-5 can include a zero-vote class when fewer than 5 classes were voted for).
// Each row's votes are scaled by exp(-s_max / T) (s_max: its nearest neighbour's similarity) so that small T cannot
// overflow float32; the ranking is unchanged. Memory: test rows go in chunks (default about 2^24 similarity entries at a time), so a chunk's (B, N_train)
// similarity matrix and (B, k, C) one-hot votes bound the peak, not the test set's size.
import { normalize, oneHot } from "../nn/functional";
import { noGrad, onesLike, tidy, type Tensor } from "../tensor";

export interface KnnOptions {
  /** Neighbours (clamped to the number of train rows). Default 20. */
  k?: number;
  /** Temperature T of the exp(s / T) vote weights. Default 0.07. */
  temperature?: number;
  /** "weighted" (exp(s / T), the default) or "majority" (weight 1 each). */
  vote?: "weighted" | "majority";
  /** Number of classes. Default: largest label + 1. */
  numClasses?: number;
  /** Test rows per chunk. Default: about 2^24 / N_train, at least 1 and at most 1024. */
  chunkRows?: number;
}

/** Accuracy of a classifier on a test set. Percentages in [0, 100]. */
export interface ClassificationResult {
  top1: number;
  top5: number;
  /** Test rows whose label is the top prediction / among the top 5. */
  correct1: number;
  correct5: number;
  /** Test rows. */
  n: number;
  /** The top-1 class of each test row. */
  predictions: Int32Array;
}

/**
 * Ranks per-row class scores: scores (B·C values, row-major) against labels; counts top-1 and top-5 hits with ties
 * broken by lower class index. With `positiveOnly`, a class scoring <= 0 is never a hit (zero-vote kNN classes).
 */
export function rankScores(scores: ArrayLike<number>, labels: ArrayLike<number>, numClasses: number, positiveOnly = false): { correct1: number; correct5: number; predictions: Int32Array } {
  const B = labels.length;
  const C = numClasses;
  const predictions = new Int32Array(B);
  let correct1 = 0;
  let correct5 = 0;
  for (let b = 0; b < B; b++) {
    const row = b * C;
    const y = labels[b]!;
    const sy = scores[row + y]!;
    let best = 0;
    let rank = 0; // classes ranked before y
    for (let c = 0; c < C; c++) {
      const s = scores[row + c]!;
      if (s > scores[row + best]!) best = c;
      if (s > sy || (s === sy && c < y)) rank++;
    }
    predictions[b] = best;
    const hit = !positiveOnly || sy > 0;
    if (hit && rank === 0) correct1++;
    if (hit && rank < 5) correct5++;
  }
  return { correct1, correct5, predictions };
}

export function checkFeatures(features: Tensor, labels: Tensor, what: string): void {
  if (features.ndim !== 2) throw new RangeError(`${what}: expected features (N, D) but received shape [${features.shape.join(", ")}]`);
  if (labels.ndim !== 1 || labels.shape[0] !== features.shape[0]) {
    throw new RangeError(`${what}: expected ${features.shape[0]} labels (N) but received shape [${labels.shape.join(", ")}]`);
  }
  if (labels.dtype !== "int64") throw new TypeError(`${what}: expected int64 labels but received ${labels.dtype}`);
}

/** Largest label + 1 over some label tensors. */
export function inferNumClasses(...labels: Tensor[]): number {
  let n = 0;
  for (const l of labels) {
    if (l.numel === 0) continue;
    using m = l.max(); // ()
    n = Math.max(n, m.item() + 1);
  }
  return n;
}

/**
 * kNN accuracy of test rows against train rows (see the header). Features are (N, D) float (any scale: they are
 * L2-normalized here), labels (N) int64.
 */
export function knnClassify(trainFeatures: Tensor, trainLabels: Tensor, testFeatures: Tensor, testLabels: Tensor, o: KnnOptions = {}): ClassificationResult {
  checkFeatures(trainFeatures, trainLabels, "knnClassify train");
  checkFeatures(testFeatures, testLabels, "knnClassify test");
  if (trainFeatures.shape[1] !== testFeatures.shape[1]) {
    throw new RangeError(`knnClassify: train features have ${trainFeatures.shape[1]} dims, test features ${testFeatures.shape[1]}`);
  }
  const nTrain = trainFeatures.shape[0]!;
  const nTest = testFeatures.shape[0]!;
  const T = o.temperature ?? 0.07;
  if (!(T > 0)) throw new RangeError(`Expected a positive temperature but received ${T}`);
  const kWanted = o.k ?? 20;
  if (!Number.isInteger(kWanted) || kWanted < 1) throw new RangeError(`Expected a positive integer for k but received ${kWanted}`);
  if (nTrain === 0) throw new RangeError("knnClassify: no train rows");
  const k = Math.min(kWanted, nTrain);
  const C = o.numClasses ?? inferNumClasses(trainLabels, testLabels);
  const chunk = o.chunkRows ?? Math.max(1, Math.min(1024, Math.floor(2 ** 24 / Math.max(nTrain, k * C))));
  const weighted = (o.vote ?? "weighted") === "weighted";

  const predictions = new Int32Array(nTest);
  let correct1 = 0;
  let correct5 = 0;
  noGrad(() => {
    using trainT = tidy(() => normalize(trainFeatures, { dim: 1 }).t().contiguous()); // (D, N_train)
    for (let start = 0; start < nTest; start += chunk) {
      const B = Math.min(chunk, nTest - start);
      const votes = tidy(() => {
        const q = normalize(testFeatures.narrow(0, start, B), { dim: 1 }); // (B, D)
        const sim = q.mm(trainT); // (B, N_train) cosine similarities
        const { values, indices } = sim.topk(k, 1); // (B, k), (B, k)
        const neighbourLabels = trainLabels.indexSelect(0, indices.flatten()).view(B, k); // (B, k)
        // exp(s / T) scaled by exp(-s_max / T) per row (same ranking; exp(1 / T) overflows float32 below T ≈ 0.0114).
        const w = weighted ? values.sub(values.narrow(1, 0, 1)).div(T).exp() : onesLike(values); // (B, k) vote weights
        const onehot = oneHot(neighbourLabels, C).to(w.dtype); // (B, k, C)
        return w.unsqueeze(1).bmm(onehot).squeeze(1).to("float64"); // (B, C) votes per class
      });
      const scores = votes.data() as Float64Array;
      votes.dispose();
      using y = testLabels.narrow(0, start, B); // (B)
      const r = rankScores(scores, Int32Array.from(y.toArray()), C, true);
      predictions.set(r.predictions, start);
      correct1 += r.correct1;
      correct5 += r.correct5;
    }
  });
  return { top1: (100 * correct1) / Math.max(nTest, 1), top5: (100 * correct5) / Math.max(nTest, 1), correct1, correct5, n: nTest, predictions };
}
