// Multi-tensor ops: one call over a list of tensors, as torch.optim's foreach implementations use (ATen's
// _foreach_* ops). On CUDA, lists of one device and dtype whose shapes and strides match pairwise run as a few
// multi-tensor kernels instead of one kernel per tensor; anywhere else ATen loops over the list in C++, a kernel
// per tensor. Lists of 0-d factors (PerTensor below) always take that loop: they broadcast, and ATen has no
// multi-tensor kernel for them. Either way the list crosses into native code once, so an optimizer step over
// hundreds of parameters pays the binding's per-call cost a handful of times instead of a few times per parameter.
//
// A per-tensor factor is a number (the same for every tensor) or a list of 0-d tensors, one per tensor (for
// instance a [n] vector's unbind(), computed on the device without reading it on the host).
import { torch } from "../native/load";
import { Tensor } from "./tensor";

/** One number for every tensor, or one 0-d tensor per tensor. */
export type PerTensor = number | readonly Tensor[];

const ids = (ts: readonly Tensor[]): number[] => ts.map((t) => t.id);
const wrap = (list: number[]): Tensor[] => list.map((id) => new Tensor(id));

function check(what: string, xs: readonly Tensor[], ...others: (readonly Tensor[] | number)[]): void {
  if (xs.length === 0) throw new RangeError(`foreach.${what}: empty tensor list`);
  for (const o of others) {
    if (typeof o !== "number" && o.length !== xs.length) throw new RangeError(`foreach.${what}: lists of ${xs.length} and ${o.length} tensors`);
  }
}

export const foreach = {
  /** xs[i] += alpha * ys[i], in place. */
  add_(xs: readonly Tensor[], ys: readonly Tensor[], alpha = 1): void {
    check("add_", xs, ys);
    torch.foreachAdd_(ids(xs), ids(ys), alpha);
  },

  /** xs[i] *= s[i], in place. */
  mul_(xs: readonly Tensor[], s: PerTensor): void {
    check("mul_", xs, s);
    if (typeof s === "number") torch.foreachMulScalar_(ids(xs), s);
    else torch.foreachMul_(ids(xs), ids(s));
  },

  /** xs[i] * s[i], as new tensors. */
  mul(xs: readonly Tensor[], s: PerTensor): Tensor[] {
    check("mul", xs, s);
    return wrap(typeof s === "number" ? torch.foreachMulScalar(ids(xs), s) : torch.foreachMul(ids(xs), ids(s)));
  },

  /** xs[i] += alpha * s[i] * ys[i], in place (an add for a number, an addcmul for 0-d tensors). */
  addScaled_(xs: readonly Tensor[], ys: readonly Tensor[], s: PerTensor, alpha = 1): void {
    check("addScaled_", xs, ys, s);
    if (typeof s === "number") torch.foreachAdd_(ids(xs), ids(ys), alpha * s);
    else torch.foreachAddcmul_(ids(xs), ids(ys), ids(s), alpha);
  },

  /** The L2 norm of each tensor, as 0-d tensors. */
  norm(xs: readonly Tensor[]): Tensor[] {
    check("norm", xs);
    return wrap(torch.foreachNorm(ids(xs)));
  },
};
