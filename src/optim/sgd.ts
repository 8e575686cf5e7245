// Stochastic gradient descent with momentum, exactly as torch.optim.SGD (pytorch/pytorch v1.13:
// torch/optim/sgd.py, _single_tensor_sgd):
//
//   d = g + weight_decay * p                     (if weight_decay != 0)
//   buf = clone(d)                               (first step)
//   buf = momentum * buf + (1 - dampening) * d   (later steps)
//   d = nesterov ? d + momentum * buf : buf      (if momentum != 0)
//   p = p - lr * d
import { Tensor, zerosLike } from "../tensor";
import { type BaseHyperparams, checkNonNegative, Optimizer, type ParamsInput } from "./optimizer";

export interface SGDHyperparams extends BaseHyperparams {
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

/** Constructor options: lr is required (as in torch); the rest default to 0 / false, lrScale to 1. */
export type SGDOptions = Partial<SGDHyperparams> & { lr: number };

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

  applyUpdate(param: Tensor, grad: Tensor, index: number, h: SGDHyperparams): void {
    let d = h.weightDecay !== 0 ? grad.add(param, h.weightDecay) : grad;
    if (h.momentum !== 0) {
      let buf = this.getState(index, "momentum_buffer");
      if (buf === undefined) buf = this.setState(index, "momentum_buffer", d.clone());
      else buf.mul_(h.momentum).add_(d, 1 - h.dampening);
      d = h.nesterov ? d.add(buf, h.momentum) : buf;
    }
    param.add_(d, -h.lr);
  }

  /**
   * SimCLR-style momentum update used by LARC's "simclr" style (google-research/simclr lars_optimizer.py):
   * `v = momentum * v + scaledLr * d; p -= nesterov ? momentum * v + scaledLr * d : v`, with v starting at zero and
   * `scaledLr` the lr times the trust ratio (a 0-d tensor, or a number). Stored under the same "momentum_buffer" key.
   */
  applyScaledMomentumUpdate(param: Tensor, d: Tensor, scaledLr: Tensor | number, index: number, h: SGDHyperparams): void {
    let v = this.getState(index, "momentum_buffer");
    if (v === undefined) v = this.setState(index, "momentum_buffer", zerosLike(param));
    const step = d.mul(scaledLr);
    v.mul_(h.momentum).add_(step);
    if (h.nesterov) param.sub_(v.mul(h.momentum).add(step));
    else param.sub_(v);
  }
}
