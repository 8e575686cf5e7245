// Adam with decoupled weight decay, exactly as torch.optim.AdamW (pytorch/pytorch v1.13: torch/optim/adamw.py,
// _single_tensor_adamw; Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019):
//
//   t += 1
//   p = p * (1 - lr * weight_decay)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   vmax = max(vmax, v)                                   (amsgrad only; then v := vmax below)
//   p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// Like torch, each parameter keeps its own step count t (a CPU scalar tensor under "<i>.step"), so a parameter
// that had no gradient on some steps gets its own bias correction.
import { scalar, type Tensor, tidy, zerosLike } from "../tensor";
import { type BaseHyperparams, checkNonNegative, Optimizer, type ParamBucket, type ParamsInput } from "./optimizer";

export interface AdamWHyperparams extends BaseHyperparams {
  betas: [number, number];
  eps: number;
  amsgrad: boolean;
}

/** Defaults as torch: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 1e-2, amsgrad false. */
export type AdamWOptions = Partial<AdamWHyperparams>;

export class AdamW extends Optimizer<AdamWHyperparams> {
  constructor(params: ParamsInput<AdamWHyperparams>, opts: AdamWOptions = {}) {
    super(params, {
      lr: opts.lr ?? 1e-3,
      lrScale: opts.lrScale ?? 1,
      weightDecay: opts.weightDecay ?? 1e-2,
      betas: opts.betas ?? [0.9, 0.999],
      eps: opts.eps ?? 1e-8,
      amsgrad: opts.amsgrad ?? false,
    });
  }

  protected validate(h: AdamWHyperparams, where: string): void {
    checkNonNegative(`${where}: lr`, h.lr);
    checkNonNegative(`${where}: lrScale`, h.lrScale);
    checkNonNegative(`${where}: weightDecay`, h.weightDecay);
    checkNonNegative(`${where}: eps`, h.eps);
    if (!Array.isArray(h.betas) || h.betas.length !== 2 || h.betas.some((b) => !(b >= 0 && b < 1))) {
      throw new RangeError(`${where}: betas must be two numbers in [0, 1), got ${JSON.stringify(h.betas)}`);
    }
  }

  protected override scalarStateKeys(): readonly string[] {
    return ["step"];
  }

  /** Parameter by parameter (each in its own tidy(), so temporaries never add up across a bucket). */
  protected updateBucket(bucket: ParamBucket, h: AdamWHyperparams): void {
    bucket.params.forEach((p, k) => tidy(() => this.updateOne(p, bucket.grads[k]!, bucket.indices[k]!, h)));
  }

  private updateOne(param: Tensor, grad: Tensor, index: number, h: AdamWHyperparams): void {
    const [beta1, beta2] = h.betas;
    let stepT = this.getState(index, "step");
    let expAvg = this.getState(index, "exp_avg");
    let expAvgSq = this.getState(index, "exp_avg_sq");
    if (stepT === undefined || expAvg === undefined || expAvgSq === undefined) {
      stepT = this.setState(index, "step", scalar(0, { dtype: "float64" }));
      expAvg = this.setState(index, "exp_avg", zerosLike(param));
      expAvgSq = this.setState(index, "exp_avg_sq", zerosLike(param));
    }
    stepT.add_(1);
    const step = stepT.item();

    param.mul_(1 - h.lr * h.weightDecay);
    expAvg.mul_(beta1).add_(grad, 1 - beta1);
    expAvgSq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);

    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const stepSize = h.lr / biasCorrection1;
    const biasCorrection2Sqrt = Math.sqrt(biasCorrection2);

    let second = expAvgSq;
    if (h.amsgrad) {
      let maxSq = this.getState(index, "max_exp_avg_sq");
      if (maxSq === undefined) maxSq = this.setState(index, "max_exp_avg_sq", zerosLike(param));
      maxSq.copy_(maxSq.maximum(expAvgSq));
      second = maxSq;
    }
    const denom = second.sqrt().div(biasCorrection2Sqrt).add_(h.eps);
    param.addcdiv_(expAvg, denom, -stepSize);
  }
}
