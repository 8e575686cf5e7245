// Stochastic gradient descent with momentum, as torch.optim.SGD (pytorch/pytorch v1.13: torch/optim/sgd.py):
//
//   d = g + weight_decay * p                     (if weight_decay != 0)
//   buf = clone(d)                               (first step)
//   buf = momentum * buf + (1 - dampening) * d   (later steps)
//   d = nesterov ? d + momentum * buf : buf      (if momentum != 0)
//   p = p - lr * d
//
// Each bucket of parameters is updated with multi-tensor ops, as torch's _multi_tensor_sgd, but without
// materializing d: the weight-decay term goes straight into the buffer and the parameter, so plain SGD allocates
// nothing once the buffers exist (on the CPU, a fresh temporary the size of a large weight costs more in page
// faults than the arithmetic; LARC's per-parameter factors add only [n]-sized vectors). The order of the
// additions differs from torch's, so results agree to rounding.
import { foreach, type PerTensor, type Tensor } from "../tensor";
import { type BaseHyperparams, checkNonNegative, Optimizer, type ParamBucket, type ParamsInput } from "./optimizer";

export interface SGDHyperparams extends BaseHyperparams {
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

/** Constructor options: lr is required (as in torch); the rest default to 0 / false, lrScale to 1. */
export type SGDOptions = Partial<SGDHyperparams> & { lr: number };

/**
 * A factor with one value per parameter of a bucket: a number for all of them, or a 1-D tensor of n values on the
 * bucket's device (computed there, never read on the host). momentumUpdate() turns the vector into foreach's
 * PerTensor form (n 0-d tensors) with unbind().
 */
export type BucketFactor = number | Tensor;

/** What momentumUpdate() needs from the hyperparameters. */
export type MomentumSettings = Pick<SGDHyperparams, "lr" | "momentum" | "dampening" | "nesterov">;

export class SGD extends Optimizer<SGDHyperparams> {
  constructor(params: ParamsInput<SGDHyperparams>, opts: SGDOptions) {
    super(params, { lr: opts.lr, lrScale: opts.lrScale ?? 1, weightDecay: opts.weightDecay ?? 0, momentum: opts.momentum ?? 0, dampening: opts.dampening ?? 0, nesterov: opts.nesterov ?? false });
  }

  protected validate(h: SGDHyperparams, where: string): void {
    checkNonNegative(`${where}: lr`, h.lr);
    checkNonNegative(`${where}: lrScale`, h.lrScale);
    checkNonNegative(`${where}: weightDecay`, h.weightDecay);
    checkNonNegative(`${where}: momentum`, h.momentum);
    checkNonNegative(`${where}: dampening`, h.dampening);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) throw new RangeError(`${where}: nesterov needs momentum > 0 and dampening 0`);
  }

  /** The momentum buffer of the parameter with this global index, if a step has created it (not a copy). */
  momentumBuffer(index: number): Tensor | undefined {
    return this.getState(index, "momentum_buffer");
  }

  protected updateBucket(bucket: ParamBucket, h: SGDHyperparams): void {
    this.momentumUpdate(bucket, 1, h.weightDecay, h);
  }

  /**
   * The SGD step above for one bucket, with the descent direction d_i = a_i * g_i + c_i * p_i: plain SGD has a = 1
   * and c = weight decay; LARC passes its trust ratios. A parameter's first step stores d as its momentum buffer.
   */
  momentumUpdate(bucket: ParamBucket, a: BucketFactor, c: BucketFactor, h: MomentumSettings): void {
    const { params: ps, grads: gs, indices } = bucket;
    const A = perTensor(a);
    const C = perTensor(c);
    const noDecay = c === 0;
    // p -= lr * (a*g + c*p), as p *= 1 - lr*c, then p -= lr * a*g (the decay term first: it reads the old p).
    const descend = (): void => {
      if (!noDecay) foreach.mul_(ps, typeof c === "number" ? 1 - h.lr * c : c.mul(-h.lr).add(1).unbind());
      foreach.addScaled_(ps, gs, A, -h.lr);
    };
    if (h.momentum === 0) return descend();

    const old: number[] = [];
    const first: number[] = [];
    indices.forEach((index, k) => (this.getState(index, "momentum_buffer") !== undefined ? old : first).push(k));
    if (old.length > 0) {
      // buf = momentum * buf + (1 - dampening) * d
      const bufs = old.map((k) => this.getState(indices[k]!, "momentum_buffer")!);
      foreach.mul_(bufs, h.momentum);
      foreach.addScaled_(bufs, pick(gs, old), pick(A, old), 1 - h.dampening);
      if (!noDecay) foreach.addScaled_(bufs, pick(ps, old), pick(C, old), 1 - h.dampening);
    }
    if (first.length > 0) {
      const bufs = foreach.mul(pick(gs, first), pick(A, first)); // buf = d
      if (!noDecay) foreach.addScaled_(bufs, pick(ps, first), pick(C, first));
      bufs.forEach((b, j) => this.setState(indices[first[j]!]!, "momentum_buffer", b));
    }
    const bufs = indices.map((index) => this.getState(index, "momentum_buffer")!);
    if (h.nesterov) {
      descend(); // p -= lr * d ...
      foreach.add_(ps, bufs, -h.lr * h.momentum); // ... and lr * momentum * buf
    } else {
      foreach.add_(ps, bufs, -h.lr);
    }
  }
}

/** A bucket factor as foreach takes it: the number, or the vector's n values as 0-d tensors. */
function perTensor(f: BucketFactor): PerTensor {
  return typeof f === "number" ? f : f.unbind();
}

/** The entries of a per-tensor list at positions `at` (a number stands for every entry). */
function pick<T extends PerTensor>(f: T, at: readonly number[]): T {
  return (typeof f === "number" ? f : at.map((k) => (f as readonly Tensor[])[k]!)) as T;
}
