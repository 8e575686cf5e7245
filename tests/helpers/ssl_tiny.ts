// The tiny SwAV model the SSL tests share with their oracles (tests/oracle/ssl_models.py): a one-conv trunk, a
// BN head and prototypes, with non-trivial BatchNorm parameters and statistics so that comparisons cover them.
import { BatchNorm2d, Conv2d, Module, init } from "../../src/nn";
import { ProjectionHead, SwAVPrototypes } from "../../src/ssl/heads";
import { SwAV } from "../../src/ssl/methods/swav";
import type { SwAVQueue } from "../../src/ssl/swav_loss";
import type { Backbone } from "../../src/ssl/types";
import { type DType, noGrad, type Tensor, tidy } from "../../src/tensor";

/** conv 3x3 -> BN -> ReLU -> global average pool: (N, 3, S, S) -> (N, 6). Keep in step with Tiny in the oracle. */
export class Tiny extends Module implements Backbone {
  readonly numFeatures = 6;
  readonly conv = this.registerModule("conv", new Conv2d(3, 6, 3, { padding: 1, bias: false }));
  readonly bn = this.registerModule("bn", new BatchNorm2d(6));
  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => this.bn.forward(this.conv.forward(x)).relu().mean([2, 3])); // (N, 6)
  }
  forward(x: Tensor): Tensor {
    return this.forwardFeatures(x);
  }
}

export const HEAD_DIMS = [6, 8, 5];

/** Non-trivial BN affine parameters and running statistics, so that the comparison covers them. */
export function perturbBatchNorms(m: Module): void {
  noGrad(() => {
    for (const [name, t] of m.stateDict()) {
      if (/bn\.weight$|^head\.1\.weight$/.test(name)) init.uniform_(t, 0.5, 1.5);
      else if (/bn\.bias$|^head\.1\.bias$|running_mean$/.test(name)) init.normal_(t, 0, 0.3);
      else if (name.endsWith("running_var")) init.uniform_(t, 0.5, 2);
    }
  });
}

/** SwAV on Tiny: 2 large + 3 small crops, head HEAD_DIMS with BN, codes from crops 0 and 1, τ 0.1, ε 0.05. */
export function buildTinySwav(dtype: DType, prototypes: number[], o: { queue?: SwAVQueue; frozenUntilStep?: number } = {}): SwAV {
  const swav = new SwAV(new Tiny(), {
    numCrops: [2, 3],
    head: new ProjectionHead(HEAD_DIMS, { batchNorm: true }),
    prototypes: new SwAVPrototypes(5, prototypes, { frozenUntilStep: o.frozenUntilStep ?? 1 }),
    loss: { temperature: 0.1, epsilon: 0.05, sinkhornIterations: 3, cropsForAssign: [0, 1] },
    queue: o.queue,
  }).to(dtype);
  perturbBatchNorms(swav);
  return swav;
}
