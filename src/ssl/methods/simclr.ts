// SimCLR as one module: backbone -> projection head -> NT-Xent over the two views.
//
// Chen et al. 2020 (SimCLR), §2.1: "a small neural network projection head g(·) that maps representations to the
// space where contrastive loss is applied", then NT-Xent (ntxent_loss.ts), with both views of the batch in one
// trunk pass (as lightly's examples; VISSL concatenates them too).
// What differs from google-research/simclr: the default head is [W, W, 128] with BN and ReLU between layers and a
// plain last Linear (SimCLR v1's "FCN+BN+ReLU+FCN" reading); SimCLR's code drops the Linear biases, puts a BN
// without β after the last layer too, and v2 uses 3 layers. Pass a head to get another shape.
//
// Layout: views (2B, 3, S, S) with rows [0, B) the first view of each image and [B, 2B) the second.
import { tidy } from "../../tensor/scope";
import type { Tensor } from "../../tensor/tensor";
import { Module } from "../../nn/module";
import { ProjectionHead } from "../heads";
import { NTXentLoss, type NTXentLossOptions } from "../ntxent_loss";
import type { Backbone } from "../types";

export interface SimCLROptions {
  /** Projection head (default [W, W, 128] with BN between layers). */
  head?: ProjectionHead;
  /** Loss settings (temperature 0.1 by default, allGather for global negatives). */
  loss?: NTXentLossOptions;
}

export class SimCLR extends Module {
  readonly backbone: Backbone;
  readonly head: ProjectionHead;
  readonly criterion: NTXentLoss;

  constructor(backbone: Backbone, o: SimCLROptions = {}) {
    super();
    const W = backbone.numFeatures;
    this.backbone = this.registerModule("backbone", backbone);
    this.head = this.registerModule("head", o.head ?? new ProjectionHead([W, W, 128], { batchNorm: true }));
    if (this.head.inDim !== W) throw new RangeError(`SimCLR: the head takes ${this.head.inDim} features, the backbone gives ${W}`);
    this.criterion = new NTXentLoss(o.loss);
  }

  /** views (2B, 3, S, S), two views stacked -> the NT-Xent loss (a scalar). */
  forward(views: Tensor): Tensor {
    return tidy(() => {
      const features = this.backbone.forwardFeatures(views); // (2B, W)
      const z = this.head.forward(features); // (2B, D), normalized inside the loss
      return this.criterion.forward(z);
    });
  }
}
