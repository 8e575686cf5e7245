// NT-Xent, SimCLR's contrastive loss.
//
// Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations", eq. (1): for a
// positive pair (i, j), ℓ(i, j) = -log exp(sim(z_i, z_j)/τ) / Σ_{k≠i} exp(sim(z_i, z_k)/τ), with sim the cosine
// similarity, and L = 1/(2N) Σ_k [ℓ(2k-1, 2k) + ℓ(2k, 2k-1)]. Computed as google-research/simclr objective.py
// `add_contrastive_loss` does: h = l2_normalize(z) split into the two views; for each view, logits against the
// other view [ab] and against its own view with self-similarity masked [aa]; cross-entropy with the positive at
// the same index of the other view (i ± B in the stacked 2B batch). Under distributed training the candidates are
// the global batch (an allGather hook, SimCLR's tpu_cross_replica_concat) and the positives sit at rank·B + i.
// What differs: SimCLR's code sums the two directions' batch means; we average them, i.e. the paper's 1/(2N)
// normalization (half of SimCLR's number; lightly's NTXentLoss gives the same value as ours). Self-similarity is
// masked by filling -1e9 (SimCLR subtracts LARGE_NUM = 1e9).
//
// Layout: z (2B, D) with rows [0, B) the first view of each image and [B, 2B) the second, in the same order.
import { arange, cat } from "../tensor/creation";
import { tidy } from "../tensor/scope";
import type { Tensor } from "../tensor/tensor";
import * as F from "../nn/functional";
import type { AllGather } from "./types";

/** SimCLR's LARGE_NUM: a logit that exp() turns into 0. */
const MASKED_LOGIT = -1e9;

export interface NTXentLossOptions {
  /** τ (SimCLR's flag default 0.1; 0.5 in the paper's small-batch ablations). */
  temperature?: number;
  /**
   * Gathers the normalized embeddings (2B_local, D) of every worker, in rank order -> (worldSize·2B_local, D);
   * identity by default. See types.ts for what it means for gradients.
   */
  allGather?: AllGather;
  /** This worker's rank, locating its own rows in the gathered batch (default 0). */
  rank?: number;
}

export class NTXentLoss {
  readonly temperature: number;
  readonly rank: number;
  private readonly allGather?: AllGather;

  constructor(o: NTXentLossOptions = {}) {
    this.temperature = o.temperature ?? 0.1;
    this.rank = o.rank ?? 0;
    this.allGather = o.allGather;
    if (!(this.temperature > 0)) throw new RangeError(`NTXentLoss: expected a positive number for temperature but received ${this.temperature}`);
    if (!Number.isInteger(this.rank) || this.rank < 0) throw new RangeError(`NTXentLoss: expected a non-negative integer for rank but received ${this.rank}`);
  }

  /** z (2B, D), two views stacked -> the NT-Xent loss (a scalar), averaged over the 2B anchors. */
  forward(z: Tensor): Tensor {
    const s = z.shape;
    if (s.length !== 2 || s[0]! < 2 || s[0]! % 2 !== 0) throw new RangeError(`NTXentLoss: expected z of shape (2B, D) but received [${s.join(", ")}]`);
    const B = s[0]! / 2;
    const tau = this.temperature;
    return tidy(() => {
      const h = F.normalize(z, { dim: 1 }); // (2B, D), unit rows
      const [h1, h2] = [h.narrow(0, 0, B), h.narrow(0, B, B)]; // (B, D) each
      // Candidates: both views of every image in the global batch.
      let h1All = h1; // (N, D), N = worldSize·B
      let h2All = h2;
      if (this.allGather) {
        const g = this.allGather(h); // (worldSize·2B, D): per rank [view 1; view 2]
        const world = g.shape[0]! / (2 * B);
        if (!Number.isInteger(world) || g.ndim !== 2 || g.shape[1] !== s[1]) {
          throw new RangeError(`NTXentLoss: allGather returned [${g.shape.join(", ")}], expected (worldSize·${2 * B}, ${s[1]})`);
        }
        if (this.rank >= world) throw new RangeError(`NTXentLoss: rank ${this.rank} is not below the ${world} gathered workers`);
        const perRank = g.reshape(world, 2, B, s[1]!); // (world, 2, B, D)
        h1All = perRank.select(1, 0).reshape(world * B, s[1]!);
        h2All = perRank.select(1, 1).reshape(world * B, s[1]!);
      }
      const N = h1All.shape[0]!;
      const labels = arange(0, B, 1, { device: h1.device }).add(this.rank * B); // (B) int64: the positive's (and self's) global index
      const self = F.oneHot(labels, N).gt(0); // (B, N) bool
      const logitsAA = h1.mm(h1All.t()).div(tau).maskedFill(self, MASKED_LOGIT); // (B, N)
      const logitsBB = h2.mm(h2All.t()).div(tau).maskedFill(self, MASKED_LOGIT); // (B, N)
      const logitsAB = h1.mm(h2All.t()).div(tau); // (B, N)
      const logitsBA = h2.mm(h1All.t()).div(tau); // (B, N)
      const lossA = F.crossEntropy(cat([logitsAB, logitsAA], 1), labels); // () view-1 anchors, positive in the first half
      const lossB = F.crossEntropy(cat([logitsBA, logitsBB], 1), labels); // () view-2 anchors
      return lossA.add(lossB).div(2);
    });
  }
}
