// Types shared by the self-supervised methods: what a backbone must offer, and the hooks through which losses
// become global under distributed training (both identity by default, so single-process code needs nothing).
import type { Module } from "../nn/module";
import type { Tensor } from "../tensor/tensor";

/**
 * A trunk the SSL methods can train: a Module (so its parameters and BN buffers join the method's) that maps an
 * image batch (N, 3, S, S) to pooled features (N, numFeatures), as timm's forward_features + global pooling.
 */
export type Backbone = Module & {
  /** Width of the pooled features forwardFeatures returns. */
  readonly numFeatures: number;
  /** (N, 3, S, S) -> (N, numFeatures) */
  forwardFeatures(x: Tensor): Tensor;
};

/** The reduction an all-reduce applies across workers (torch.distributed.ReduceOp.SUM / MAX). */
export type ReduceOp = "sum" | "max";

/**
 * Reduces t elementwise over all workers and returns the result (a new tensor or t itself), as
 * torch.distributed.all_reduce. Called under noGrad, with every worker calling in the same order.
 */
export type AllReduce = (t: Tensor, op: ReduceOp) => Tensor;

/**
 * Concatenates t (n, ...) from every worker along dim 0 in rank order -> (worldSize·n, ...), as
 * torch.distributed.all_gather + cat. Gradients flow into the remote slices only if the hook makes them (e.g. a
 * GatherLayer); keeping `t` itself as this rank's slice keeps the local gradient exact.
 */
export type AllGather = (t: Tensor) => Tensor;
