// SwAV as one module: backbone -> projection head -> L2 normalize -> prototypes -> swapped prediction loss.
//
// Caron et al. 2020 (SwAV); the forward of facebookresearch/swav src/resnet50.py (crops grouped by resolution,
// one trunk pass per group, features concatenated, one head pass) and the loss part of main_swav.py `train()`,
// queue included. As VISSL's swav_loss, the loss is averaged over prototype sets when there are several.
// What stays with the trainer, as named steps (swav's train loop, VISSL hooks): prototypes.normalize() (swav:
// before each forward; VISSL: after each step), prototypes.cancelGradIfFrozen(step) between backward and the
// optimizer step, and the queue's creation (length rounding, world size).
//
// Layout: crop-major throughout. cropsByResolution[r] is (numCrops[r]·B, 3, S_r, S_r): crop 0 of every image,
// then crop 1, ...; groups in crop order (large crops first), so the concatenated features are (V·B, W) with crop
// v in rows [v·B, (v+1)·B).
import { cat } from "../../tensor/creation";
import { noGrad } from "../../tensor/grad";
import { tidy } from "../../tensor/scope";
import { Tensor } from "../../tensor/tensor";
import { Module } from "../../nn/module";
import * as F from "../../nn/functional";
import { ProjectionHead, SwAVPrototypes } from "../heads";
import { SwAVLoss, type SwAVLossOptions, type SwAVQueue } from "../swav_loss";
import type { Backbone } from "../types";

export interface SwAVOptions {
  /** Crops per image in each resolution group, in the order forward() receives them (swav's nmb_crops, e.g. [2, 6]). */
  numCrops: readonly number[];
  /** Projection head (default as smallSwavHead: W -> 2048 -> BN -> ReLU -> 128). */
  head?: ProjectionHead;
  /** Prototypes over the head's output (default as smallSwavHead: 3000, frozen for 313 iterations). */
  prototypes?: SwAVPrototypes;
  /** Loss settings; numCrops is the sum of this.numCrops. */
  loss?: Omit<SwAVLossOptions, "numCrops">;
  /** Embedding queue, one per assignment crop (optional; owned by the caller, who disposes it). */
  queue?: SwAVQueue;
}

export interface SwAVForwardOptions {
  /** The current epoch (0-based): decides whether the queue is filled and used. Required when a queue is set. */
  epoch?: number;
  /** Also return the prototype scores (the caller disposes them). */
  returnScores?: boolean;
}

export interface SwAVOutput {
  /** The SwAV loss, a scalar with autograd history. */
  loss: Tensor;
  /** Per prototype set, the scores (V·B, K_h), crop-major; only with returnScores. */
  scores?: Tensor[];
}

export class SwAV extends Module {
  readonly backbone: Backbone;
  readonly head: ProjectionHead;
  readonly prototypes: SwAVPrototypes;
  readonly criterion: SwAVLoss;
  readonly numCrops: readonly number[];
  readonly queue?: SwAVQueue;

  constructor(backbone: Backbone, o: SwAVOptions) {
    super();
    if (o.numCrops.length === 0 || o.numCrops.some((n) => !Number.isInteger(n) || n < 1)) {
      throw new RangeError(`SwAV: expected positive integer crop counts for numCrops but received [${o.numCrops.join(", ")}]`);
    }
    this.numCrops = Object.freeze([...o.numCrops]);
    this.criterion = new SwAVLoss({ ...o.loss, numCrops: this.numCrops.reduce((a, b) => a + b, 0) });
    // Everything is checked before the default parts are built, so that a refused configuration allocates nothing.
    // Defaults: smallSwavHead's parts (SwAV's ResNet-50 head), the prototypes sized to whichever head is used.
    const W = backbone.numFeatures;
    const D = o.head?.outDim ?? 128;
    if (o.head && o.head.inDim !== W) throw new RangeError(`SwAV: the head takes ${o.head.inDim} features, the backbone gives ${W}`);
    if (o.prototypes && o.prototypes.dim !== D) throw new RangeError(`SwAV: the prototypes take ${o.prototypes.dim}-dim embeddings, the head gives ${D}`);
    if (o.queue) {
      const nAssign = this.criterion.config.cropsForAssign.length;
      if (o.queue.numQueues !== nAssign) throw new RangeError(`SwAV: the queue has ${o.queue.numQueues} queues, cropsForAssign has ${nAssign} crops`);
      if (o.queue.dim !== D) throw new RangeError(`SwAV: the queue holds ${o.queue.dim}-dim embeddings, the head gives ${D}`);
    }
    this.queue = o.queue;
    this.backbone = this.registerModule("backbone", backbone);
    this.head = this.registerModule("head", o.head ?? new ProjectionHead([W, 2048, D], { batchNorm: true }));
    this.prototypes = this.registerModule("prototypes", o.prototypes ?? new SwAVPrototypes(D, 3000, { frozenUntilStep: 313 }));
  }

  /** Training: crops grouped by resolution, each (numCrops[r]·B, 3, S_r, S_r) crop-major -> { loss, scores? }. */
  forward(cropsByResolution: Tensor[], o?: SwAVForwardOptions): SwAVOutput;
  /** One batch (N, 3, S, S) -> its L2-normalized embeddings (N, D), e.g. for monitoring or retrieval. */
  forward(x: Tensor): Tensor;
  forward(input: Tensor | Tensor[], o: SwAVForwardOptions = {}): SwAVOutput | Tensor {
    if (input instanceof Tensor) return tidy(() => this.embed(this.backbone.forwardFeatures(input)));
    return this.trainStep(input, o);
  }

  /** features (N, W) -> z (N, D), unit rows. */
  private embed(features: Tensor): Tensor {
    return F.normalize(this.head.forward(features), { dim: 1 });
  }

  private trainStep(crops: Tensor[], o: SwAVForwardOptions): SwAVOutput {
    const B = this.batchSize(crops);
    const queue = this.queue;
    if (queue && o.epoch === undefined) throw new TypeError("SwAV.forward: pass { epoch } when a queue is set (it decides when the queue starts)");
    const useQueue = queue !== undefined && queue.isActive(o.epoch!);
    const { cropsForAssign } = this.criterion.config;
    return tidy(() => {
      const features = cat(crops.map((x) => this.backbone.forwardFeatures(x))); // (V·B, W)
      const z = this.embed(features); // (V·B, D)
      const scores = this.prototypes.forwardAll(z); // per set h: (V·B, K_h)
      // The queue joins Sinkhorn once full (swav's use_the_queue), scored with the current prototypes.
      const queueReady = useQueue && cropsForAssign.every((_, j) => queue.isFull(j));
      const losses = scores.map((s, h) => {
        const queueScores = queueReady ? cropsForAssign.map((_, j) => queue.scores(j, this.prototypes.weights[h]!)) : undefined; // each (L, K_h)
        return this.criterion.forward(s, B, queueScores); // ()
      });
      // Several prototype sets: the mean of their losses (VISSL).
      const loss = losses.length === 1 ? losses[0]! : losses.reduce((a, b) => a.add(b)).div(losses.length);
      // Fill the queue with this batch's embeddings of the assignment crops, after they were used (swav's order).
      if (useQueue) noGrad(() => cropsForAssign.forEach((a, j) => queue.push(j, z.narrow(0, a * B, B))));
      return o.returnScores ? { loss, scores } : { loss };
    });
  }

  private batchSize(crops: Tensor[]): number {
    if (crops.length !== this.numCrops.length) throw new RangeError(`SwAV.forward: expected ${this.numCrops.length} resolution groups but received ${crops.length}`);
    const B = crops[0]!.shape[0]! / this.numCrops[0]!;
    crops.forEach((x, r) => {
      if (x.ndim !== 4 || x.shape[0] !== this.numCrops[r]! * B || !Number.isInteger(B) || B < 1) {
        throw new RangeError(`SwAV.forward: group ${r} has shape [${x.shape.join(", ")}]; expected (${this.numCrops[r]}·B, C, S, S) with the same B as group 0`);
      }
    });
    return B;
  }
}
