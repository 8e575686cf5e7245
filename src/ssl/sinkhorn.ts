// Sinkhorn-Knopp: SwAV's equipartitioned soft assignment of samples to prototypes.
//
// Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments" (SwAV), §3.1:
// the codes Q maximize Tr(Qᵀ Cᵀ Z) + ε H(Q) over the transportation polytope (every prototype gets B/K samples),
// solved by "a few iterations" of Sinkhorn-Knopp. Follows facebookresearch/swav main_swav.py
// `distributed_sinkhorn` step for step. What differs:
//   - NOTE: a max is subtracted from scores/ε before exp(), as VISSL's distributed_sinkhornknopp does, because
//     exp(scores/ε) overflows float32 once a score exceeds ε·88.7 (4.4 at ε = 0.05). Unit-norm embeddings and
//     prototypes keep |scores| <= 1, but nothing else guarantees that. VISSL subtracts the global max; we subtract
//     each prototype's max over the (global) batch. The first row normalization divides every prototype's row by
//     its sum, so any per-prototype factor exp(-max_k) cancels exactly: the result is the official one up to
//     rounding, as with VISSL's global max, and in addition every row keeps an entry equal to 1, so no row sum
//     underflows to 0 (what VISSL's "+1e-12 if a row sum is 0" guard is for). Under distributed training the
//     maxima are reduced across workers too (ReduceOp MAX).
//   - VISSL's other guards (inf replacement, double precision) are not copied: after the subtraction nothing
//     overflows, and the computation runs in the scores' own dtype.
import { noGrad } from "../tensor/grad";
import { tidy } from "../tensor/scope";
import type { Tensor } from "../tensor/tensor";
import type { AllReduce } from "./types";

export interface SinkhornOptions {
  /** Sinkhorn-Knopp iterations (swav's sinkhorn_iterations: 3; SEER's VISSL config: 10). */
  iterations?: number;
  /** Entropic regularization ε (swav's epsilon: 0.05; SEER-10B: 0.03). */
  epsilon?: number;
  /** Sums (and the max) across workers, so that Q is equipartitioned over the global batch. Identity by default. */
  allReduce?: AllReduce;
  /** Workers taking part in allReduce: B becomes B_local · worldSize, as swav's `B = Q.shape[1] * world_size`. */
  worldSize?: number;
}

const identity: AllReduce = (t) => t;

/**
 * scores (B, K) -> codes Q (B, K), without gradient. After the last iteration each row (sample) sums to 1; each
 * column (prototype) sums to B/K once the iterations have converged.
 *
 * scores (G, B, K) solves G independent problems at once (SwAV's assignment crops): the same arithmetic per
 * problem, but one all-reduce per step for all of them, so 2 + iterations collectives instead of G times that.
 */
export function sinkhorn(scores: Tensor, o: SinkhornOptions = {}): Tensor {
  const iterations = o.iterations ?? 3;
  const epsilon = o.epsilon ?? 0.05;
  const worldSize = o.worldSize ?? 1;
  const allReduce = o.allReduce ?? identity;
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError(`sinkhorn: expected a positive integer for iterations but received ${iterations}`);
  if (!(epsilon > 0)) throw new RangeError(`sinkhorn: expected a positive number for epsilon but received ${epsilon}`);
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`sinkhorn: expected a positive integer for worldSize but received ${worldSize}`);
  if (scores.ndim !== 2 && scores.ndim !== 3) throw new RangeError(`sinkhorn: expected scores of shape (B, K) or (G, B, K), got [${scores.shape.join(", ")}]`);
  const [bLocal, K] = scores.shape.slice(-2) as [number, number];
  const B = bLocal * worldSize; // global number of samples

  return noGrad(() =>
    tidy(() => {
      const grouped = scores.ndim === 3 ? scores.detach() : scores.detach().unsqueeze(0); // (G, B_local, K)
      const A = grouped.div(epsilon).transpose(1, 2); // (G, K, B_local)
      const M = allReduce(A.amax(2, true), "max"); // (G, K, 1) each prototype's max over the global batch
      const Q = A.sub(M).exp(); // (G, K, B_local), values in [0, 1], each row's max is 1
      Q.div_(allReduce(Q.sum([1, 2], true), "sum")); // each problem's matrix sums to 1
      for (let it = 0; it < iterations; it++) {
        // Rows: every prototype gets total mass 1/K (summed over the global batch).
        using rowSums = allReduce(Q.sum(2, true), "sum"); // (G, K, 1)
        Q.div_(rowSums).div_(K);
        // Columns: every sample gets total mass 1/B (local: a sample's column lives on one worker).
        using colSums = Q.sum(1, true); // (G, 1, B_local)
        Q.div_(colSums).div_(B);
      }
      const codes = Q.mul_(B).transpose(1, 2); // (G, B_local, K): each row sums to 1
      return scores.ndim === 3 ? codes : codes.squeeze(0);
    }),
  );
}
