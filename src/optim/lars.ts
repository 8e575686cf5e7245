// Layer-wise adaptive learning rates around SGD: LARC as SwAV and SEER use it, and SimCLR's LARS.
//
// style "larc" (default): NVIDIA apex apex/parallel/LARC.py, which facebookresearch/swav main_swav.py wraps
// around torch.optim.SGD and VISSL vissl/optimizers/larc_fsdp.py copies (You et al. 2017, arXiv:1708.03888).
// Per parameter p with gradient g, the group's weight decay wd and lr:
//
//   if ||p|| != 0 and ||g|| != 0:
//     trust = trust_coefficient * ||p|| / (||g|| + wd * ||p|| + eps)
//     adaptive = clip ? min(trust / lr, 1) : trust
//     g' = (g + wd * p) * adaptive
//   else:
//     g' = g                                   (and no weight decay at all for this step)
//   then the wrapped SGD step with weight decay 0 (momentum, dampening, nesterov as configured).
//
// SwAV/SEER: trust_coefficient 0.001, clip false, eps 1e-8, momentum 0.9, and *no* exclusions: weight decay and
// adaptation apply to biases and BN parameters too (VISSL regularize_bn / regularize_bias true). Unlike apex,
// p.grad itself is left unchanged: g' is never materialized, its factors go into the SGD update (see below).
//
// style "simclr": google-research/simclr lars_optimizer.py (classic momentum), momentum buffer v starting at 0:
//
//   d = g + wd * p                                     (unless excluded from weight decay)
//   trust = ||p|| > 0 and ||d|| > 0 ? eeta * ||p|| / ||d|| : 1     (1 if excluded from adaptation)
//   v = momentum * v + lr * trust * d
//   p = p - (nesterov ? momentum * v + lr * trust * d : v)
//
// with eeta = trustCoefficient (0.001 in SimCLR) and no eps, clip or dampening. SimCLR excludes BN parameters and
// biases from both weight decay and adaptation: use `excludeBiasAndNorm: true` for that.
//
// Both styles compute the trust ratios of a whole bucket of parameters at once, on the device: the norms with one
// multi-tensor op per list, the ratios as [n] vectors. The update is SGD.momentumUpdate() with the direction
// a_i * g_i + c_i * p_i, where a and c are those [n] vectors (the trust ratio, and weight decay times it). No
// host synchronisation and no per-parameter loop in JS; on CUDA, applying a per-parameter factor still costs a
// kernel per parameter (ATen has no multi-tensor kernel for lists of 0-d factors), about 2 per parameter in all.
import { foreach, keep, stack, type Tensor, tensor, tidy } from "../tensor";
import type { OptimizerLike, OptimizerStateDict, ParamBucket, ParamGroup } from "./optimizer";
import { SGD, type SGDHyperparams } from "./sgd";

/** Decides from a parameter's name and tensor whether a rule applies to it. */
export type ParamPredicate = (name: string, param: Tensor) => boolean;

/**
 * Biases and normalisation parameters: every 0-d/1-d tensor, and any parameter whose name mentions a bias or a
 * norm layer ("bias", "bn", "norm", "batch_normalization"). Parameters without names are judged by shape alone.
 */
export const isBiasOrNorm: ParamPredicate = (name, param) => param.ndim <= 1 || /bias|(^|[._/])bn\d*($|[._/])|norm/i.test(name);

export interface LARCOptions {
  /** "larc" (apex/SwAV/SEER, default) or "simclr" (Google's LARS with classic momentum). */
  style?: "larc" | "simclr";
  /** apex's trust_coefficient / SimCLR's eeta. Default 0.001 (SwAV, SEER and SimCLR; apex's own default is 0.02). */
  trustCoefficient?: number;
  /** "larc" only: clip mode, adaptive = min(trust / lr, 1). Default false, as SwAV/SEER. */
  clip?: boolean;
  /** "larc" only: added to the denominator. Default 1e-8. */
  eps?: number;
  /**
   * Shorthand that excludes biases and norm parameters (isBiasOrNorm) from both weight decay and adaptation, as
   * SimCLR does. Default false: SwAV/SEER adapt and decay every parameter.
   */
  excludeBiasAndNorm?: boolean;
  /** Parameters that skip the trust ratio (they get plain SGD, with weight decay unless excluded from it too). */
  excludeFromAdaptation?: ParamPredicate;
  /** Parameters that get no weight decay. */
  excludeFromWeightDecay?: ParamPredicate;
}

/**
 * LARC/LARS around an SGD optimizer, which it owns (dispose() disposes it). The state (momentum buffers), groups,
 * learning rates and state dict are the wrapped SGD's.
 */
export class LARC implements OptimizerLike<SGDHyperparams> {
  readonly style: "larc" | "simclr";
  readonly trustCoefficient: number;
  readonly clip: boolean;
  readonly eps: number;
  /** Per global parameter index: whether the trust ratio applies / whether weight decay applies. */
  private readonly adapt: boolean[] = [];
  private readonly decay: boolean[] = [];
  /** The same as [n] tensors for the last bucket of each group, device and dtype (see masks()). */
  private readonly maskCache = new Map<string, BucketMasks>();

  constructor(readonly optimizer: SGD, opts: LARCOptions = {}) {
    this.style = opts.style ?? "larc";
    this.trustCoefficient = opts.trustCoefficient ?? 0.001;
    this.clip = opts.clip ?? false;
    this.eps = opts.eps ?? 1e-8;
    if (this.style !== "larc" && this.style !== "simclr") throw new RangeError(`LARC: unknown style '${String(this.style)}'`);
    if (!(this.trustCoefficient > 0)) throw new RangeError(`LARC: trustCoefficient must be > 0, got ${this.trustCoefficient}`);
    if (!(this.eps >= 0)) throw new RangeError(`LARC: eps must be >= 0, got ${this.eps}`);
    if (this.style === "simclr" && opts.clip) throw new RangeError("LARC: clip applies to style 'larc' only");
    if (this.style === "simclr" && optimizer.groups.some((g) => g.hyper.dampening !== 0)) {
      throw new RangeError("LARC: style 'simclr' has no dampening (its momentum is v = momentum * v + lr * trust * d); give the SGD dampening 0");
    }
    const fallback: ParamPredicate | undefined = opts.excludeBiasAndNorm ? isBiasOrNorm : undefined;
    const noAdapt = opts.excludeFromAdaptation ?? fallback;
    const noDecay = opts.excludeFromWeightDecay ?? fallback;
    for (const g of optimizer.groups) {
      g.params.forEach((p, j) => {
        const index = g.indices[j]!;
        this.adapt[index] = !(noAdapt?.(g.names[j]!, p) ?? false);
        this.decay[index] = !(noDecay?.(g.names[j]!, p) ?? false);
      });
    }
  }

  get groups(): readonly ParamGroup<SGDHyperparams>[] {
    return this.optimizer.groups;
  }
  get stepCount(): number {
    return this.optimizer.stepCount;
  }
  get lr(): number {
    return this.optimizer.lr;
  }
  /** Whether the parameter with this global index gets the trust ratio / weight decay. */
  isAdapted(index: number): boolean {
    return this.adapt[index]!;
  }
  isDecayed(index: number): boolean {
    return this.decay[index]!;
  }

  step(): void {
    this.optimizer.stepBuckets((bucket, group, gi) => {
      const h = group.hyper;
      const { adapt, decay } = this.masks(bucket, gi);
      const wd = decay.mul(h.weightDecay); // [n] each parameter's weight decay
      const pNorm = stack(foreach.norm(bucket.params)); // [n]
      if (this.style === "simclr") this.simclrUpdate(bucket, h, adapt, wd, pNorm);
      else this.larcUpdate(bucket, h, adapt, wd, pNorm);
    });
  }

  /**
   * apex LARC: d = (g + wd*p) * adaptive where both norms are non-zero, else g unchanged; then SGD without weight
   * decay. As SGD's factors: a = adaptive (or 1), c = wd * adaptive (or 0 where a norm is zero).
   */
  private larcUpdate(bucket: ParamBucket, h: SGDHyperparams, adapt: Tensor, wd: Tensor, pNorm: Tensor): void {
    const gNorm = stack(foreach.norm(bucket.grads));
    let adaptive = pNorm.mul(this.trustCoefficient).div(gNorm.add(pNorm.mul(wd)).add(this.eps));
    if (this.clip) adaptive = adaptive.div(h.lr).clamp(null, 1);
    const skip = pNorm.eq(0).logicalOr(gNorm.eq(0));
    const scale = adaptive.maskedFill(adapt.logicalAnd(skip.logicalNot()).logicalNot(), 1);
    const decay = wd.maskedFill(adapt.logicalAnd(skip), 0); // skipped: no weight decay either
    this.optimizer.momentumUpdate(bucket, scale, h.weightDecay === 0 ? 0 : decay.mul(scale), h);
  }

  /**
   * SimCLR LARS: d = g + wd*p, trust = eeta * ||p|| / ||d|| where both are non-zero (else 1), and the classic
   * momentum v = momentum * v + lr * trust * d; p -= v (nesterov: momentum * v + lr * trust * d). That is SGD with
   * lr 1 and no dampening on the direction a*g + c*p with a = lr * trust and c = lr * trust * wd.
   */
  private simclrUpdate(bucket: ParamBucket, h: SGDHyperparams, adapt: Tensor, wd: Tensor, pNorm: Tensor): void {
    const dNorm = h.weightDecay === 0 ? stack(foreach.norm(bucket.grads)) : decayedGradNorms(bucket, wd);
    const skip = pNorm.eq(0).logicalOr(dNorm.eq(0));
    const trust = pNorm.mul(this.trustCoefficient).div(dNorm).maskedFill(adapt.logicalAnd(skip.logicalNot()).logicalNot(), 1);
    const a = trust.mul(h.lr); // [n]
    this.optimizer.momentumUpdate(bucket, a, h.weightDecay === 0 ? 0 : a.mul(wd), { lr: 1, momentum: h.momentum, dampening: 0, nesterov: h.nesterov });
  }

  /**
   * A bucket's [n] masks on its device: adapt (bool, the trust ratio applies) and decay (1 or 0, weight decay
   * applies). Kept per group, device and dtype until the bucket's parameters change (prototypes unfreezing), so
   * that a step uploads nothing.
   */
  private masks(bucket: ParamBucket, groupIndex: number): { adapt: Tensor; decay: Tensor } {
    const p0 = bucket.params[0]!;
    const kind = `${groupIndex}|${p0.device}|${p0.dtype}`;
    const members = bucket.indices.join(",");
    let m = this.maskCache.get(kind);
    if (m?.members !== members) {
      if (m !== undefined) disposeMasks(m);
      const device = p0.device;
      m = {
        members,
        adapt: keep(tensor(bucket.indices.map((i) => (this.adapt[i] ? 1 : 0)), { dtype: "bool", device })),
        decay: keep(tensor(bucket.indices.map((i) => (this.decay[i] ? 1 : 0)), { dtype: p0.dtype, device })),
      };
      this.maskCache.set(kind, m);
    }
    return m;
  }

  zeroGrad(): void {
    this.optimizer.zeroGrad();
  }
  setLr(lr: number): void {
    this.optimizer.setLr(lr);
  }
  stateDict(): OptimizerStateDict<SGDHyperparams> {
    return this.optimizer.stateDict();
  }
  loadStateDict(sd: OptimizerStateDict<SGDHyperparams>): void {
    this.optimizer.loadStateDict(sd);
  }
  dispose(): void {
    for (const m of this.maskCache.values()) disposeMasks(m);
    this.maskCache.clear();
    this.optimizer.dispose();
  }
}

/** A bucket's masks and the global indices they were made for ("3,4,7"). */
interface BucketMasks {
  members: string;
  adapt: Tensor;
  decay: Tensor;
}

function disposeMasks(m: BucketMasks): void {
  m.adapt.dispose();
  m.decay.dispose();
}

/** Bytes of d = g + wd*p that decayedGradNorms() holds at a time (one tensor when a single one is larger). */
const DECAYED_GRAD_CHUNK_BYTES = 64 * 2 ** 20;

/**
 * ||g_i + wd_i * p_i|| for each parameter of the bucket, as an [n] vector. d is materialized a few tensors at a
 * time, so that the step never holds a copy of every gradient at once.
 */
function decayedGradNorms(bucket: ParamBucket, wd: Tensor): Tensor {
  const wds = wd.unbind();
  const norms: Tensor[] = [];
  let start = 0;
  while (start < bucket.params.length) {
    let end = start + 1;
    let bytes = bucket.params[start]!.nbytes;
    while (end < bucket.params.length && bytes + bucket.params[end]!.nbytes <= DECAYED_GRAD_CHUNK_BYTES) bytes += bucket.params[end++]!.nbytes;
    const [s, e] = [start, end];
    norms.push(...tidy(() => {
      const d = foreach.mul(bucket.grads.slice(s, e), 1);
      foreach.addScaled_(d, bucket.params.slice(s, e), wds.slice(s, e));
      return foreach.norm(d);
    }));
    start = end;
  }
  return stack(norms);
}
