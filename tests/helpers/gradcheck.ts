// A finite-difference gradient checker, in the spirit of torch.autograd.gradcheck.
//
// fn maps float64 input tensors to one or more float64 outputs. The outputs are projected onto fixed random
// vectors v (L = sum_k <out_k, v_k>), so one backward() gives dL/dx for every input; the same derivative is then
// estimated element by element with central differences, (L(x + eps e_i) - L(x - eps e_i)) / (2 eps), evaluated
// under noGrad. Every element of every checked input must agree within atol + rtol * |numeric|.
//
// The caller's tensors are never modified: the analytic pass runs on fresh leaf copies, the numeric passes on
// perturbed copies. Everything the check creates is freed (tidy), also when it fails.
import * as assert from "node:assert/strict";
import { noGrad, type Tensor, tensor, tidy } from "../../src/tensor";

export type GradFn = (...inputs: Tensor[]) => Tensor | Tensor[];

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Absolute tolerance (default 1e-6). */
  atol?: number;
  /** Relative tolerance, against the numeric gradient (default 1e-4). */
  rtol?: number;
  /** Indices of the inputs to differentiate (default: all). The others are passed through unchanged. */
  wrt?: number[];
  /** Seed of the projection vectors (default 1). */
  seed?: number;
  /** Named in failure messages. */
  what?: string;
  /**
   * Accept an input whose gradient is zero everywhere (default false: such a check could not fail, so it is
   * reported as a mistake in the test).
   */
  allowZeroGrad?: boolean;
}

export interface GradcheckReport {
  /** Per checked input: the analytic and numeric gradients, flattened. */
  analytic: Float64Array[];
  numeric: Float64Array[];
  /** Largest |analytic - numeric| over all checked elements. */
  maxAbsErr: number;
}

/** mulberry32: a small deterministic PRNG, independent of libtorch's generator (which tests seed themselves). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const asList = (r: Tensor | Tensor[]): Tensor[] => (Array.isArray(r) ? r : [r]);

/**
 * Checks fn's backward() against central differences for each input listed in `wrt`. Throws an
 * AssertionError naming the input, element and both values when they disagree. Inputs must be float64.
 */
export function gradcheck(fn: GradFn, inputs: Tensor[], o: GradcheckOptions = {}): GradcheckReport {
  const eps = o.eps ?? 1e-6;
  const atol = o.atol ?? 1e-6;
  const rtol = o.rtol ?? 1e-4;
  const what = o.what ?? "gradcheck";
  const wrt = o.wrt ?? inputs.map((_, i) => i);
  assert.ok(wrt.length > 0, `${what}: nothing to check`);
  for (const i of wrt) {
    const x = inputs[i];
    assert.ok(x !== undefined, `${what}: no input ${i}`);
    assert.equal(x.dtype, "float64", `${what}: input ${i} is ${x.dtype}; gradcheck needs float64`);
  }

  return tidy(() => {
    const shapes = inputs.map((x) => x.shape);
    const values = inputs.map((x) => (x.dtype === "float64" ? (x.data() as Float64Array) : undefined));

    // ---- analytic: one backward pass through L = sum_k <out_k, v_k> ----
    const leaves = inputs.map((x, i) => (wrt.includes(i) ? x.detach().clone().requiresGrad_(true) : x));
    const outs = asList(fn(...leaves));
    assert.ok(outs.length > 0, `${what}: fn returned no outputs`);
    const rand = prng(o.seed ?? 1);
    const projections: Float64Array[] = [];
    let loss: Tensor | undefined;
    for (const [k, y] of outs.entries()) {
      assert.equal(y.dtype, "float64", `${what}: output ${k} is ${y.dtype}; gradcheck needs float64`);
      // Entries in ±[0.5, 1.5]: no output element is projected (nearly) away.
      const v = Float64Array.from({ length: y.numel }, () => (rand() < 0.5 ? -1 : 1) * (0.5 + rand()));
      projections.push(v);
      const term = y.mul(tensor(v, { shape: y.shape })).sum();
      loss = loss === undefined ? term : loss.add(term);
    }
    assert.ok(loss!.requiresGrad, `${what}: the output does not depend on any checked input through autograd`);
    loss!.backward();
    const analytic = wrt.map((i) => {
      const g = leaves[i]!.grad;
      if (g === undefined) return new Float64Array(inputs[i]!.numel); // unused input: zero gradient
      assert.deepEqual(g.shape, shapes[i], `${what}: grad of input ${i} has the wrong shape`);
      return g.data() as Float64Array;
    });

    // ---- numeric: central differences, one element at a time ----
    const evaluate = (which: number, perturbed: Float64Array): number =>
      noGrad(() =>
        tidy(() => {
          const args = inputs.map((x, i) => (i === which ? tensor(perturbed, { shape: shapes[i] }) : x));
          const ys = asList(fn(...args));
          let total = 0;
          for (const [k, y] of ys.entries()) {
            const d = y.data() as Float64Array;
            const v = projections[k]!;
            for (let j = 0; j < d.length; j++) total += d[j]! * v[j]!;
          }
          return total;
        }),
      );
    const numeric = wrt.map((i) => {
      const base = values[i]!;
      const g = new Float64Array(base.length);
      const work = Float64Array.from(base);
      for (let j = 0; j < base.length; j++) {
        work[j] = base[j]! + eps;
        const plus = evaluate(i, work);
        work[j] = base[j]! - eps;
        const minus = evaluate(i, work);
        work[j] = base[j]!;
        g[j] = (plus - minus) / (2 * eps);
      }
      return g;
    });

    // ---- compare ----
    let maxAbsErr = 0;
    for (const [n, i] of wrt.entries()) {
      const a = analytic[n]!;
      const b = numeric[n]!;
      if (!o.allowZeroGrad && b.length > 0) {
        assert.ok(b.some((g) => Math.abs(g) > atol), `${what}: the numeric gradient of input ${i} is zero everywhere; the check is vacuous`);
      }
      for (let j = 0; j < a.length; j++) {
        const err = Math.abs(a[j]! - b[j]!);
        if (!(err <= atol + rtol * Math.abs(b[j]!))) {
          assert.fail(
            `${what}: d/d(input ${i})[${j}] of shape [${shapes[i]!.join(", ")}]: analytic ${a[j]} vs numeric ${b[j]} ` +
              `(|diff| ${err.toExponential(3)} > atol ${atol} + rtol ${rtol} * |numeric|)`,
          );
        }
        maxAbsErr = Math.max(maxAbsErr, err);
      }
    }
    return { analytic, numeric, maxAbsErr };
  });
}
