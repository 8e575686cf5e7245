// Gradients of the ops models and losses compose, checked against central differences in float64
// (tests/helpers/gradcheck.ts). Sizes are tiny: each check costs two forward passes per input element.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { addmm, cat, einsum, manualSeed, rand, randn, stack, type Tensor, tensor, tidy, where } from "../src/tensor";
import * as F from "../src/nn/functional";
import { assertNoLeak } from "./helpers/assert";
import { type GradFn, type GradcheckOptions, gradcheck } from "./helpers/gradcheck";

const F64 = { dtype: "float64" } as const;
const r = (...shape: number[]): Tensor => randn(shape, F64);
/** Values in [0.5, ~3.5): inside the domain of log, sqrt and fractional powers. */
const positive = (...shape: number[]): Tensor => randn(shape, F64).abs().add(0.5);
/** |x| >= 0.2: away from the kinks of relu, abs and the p=1 norm. */
const awayFromZero = (...shape: number[]): Tensor => {
  const x = randn(shape, F64);
  return x.sign().mul(x.abs().add(0.2));
};
/** Uniform in [lo, hi). */
const uniform = (lo: number, hi: number, ...shape: number[]): Tensor => rand(shape, F64).mul(hi - lo).add(lo);
const long = (values: number[]): Tensor => tensor(values, { dtype: "int64" });

interface Case {
  fn: GradFn;
  inputs: Tensor[];
  opts?: GradcheckOptions;
}

/** One test per case: seeded inputs, the check, and no native tensor left behind. */
function check(name: string, build: () => Case): void {
  test(`gradcheck: ${name}`, () => {
    assertNoLeak(() =>
      tidy(() => {
        manualSeed(1234);
        const c = build();
        gradcheck(c.fn, c.inputs, { what: name, ...c.opts });
      }),
    );
  });
}

// ---- the checker itself ----

test("gradcheck catches a wrong gradient, frees everything when it does, and leaves the inputs alone", () => {
  assertNoLeak(() => {
    using x = tensor([0.5, -1.5, 2], F64);
    // x * detach(x): the value is x², autograd sees only one factor, so its gradient is x instead of 2x.
    assert.throws(() => gradcheck((a) => a.mul(a.detach()), [x]), /analytic .* vs numeric/);
    // The correct composition passes, and the report carries both gradients.
    const rep = gradcheck((a) => a.mul(a), [x]);
    assert.deepEqual(Array.from(rep.analytic[0]!).map((g) => Math.sign(g)), Array.from(rep.numeric[0]!).map((g) => Math.sign(g)));
    assert.ok(rep.maxAbsErr < 1e-8, `maxAbsErr ${rep.maxAbsErr}`);
    assert.equal(x.requiresGrad, false);
    assert.equal(x.grad, undefined);
    assert.deepEqual(x.toArray(), [0.5, -1.5, 2]);
  });
});

test("gradcheck rejects float32 inputs and vacuous checks", () => {
  assertNoLeak(() => {
    using x32 = tensor([1, 2, 3]);
    assert.throws(() => gradcheck((a) => a.exp(), [x32]), /float64/);
    using x = tensor([1, 2, 3], F64);
    assert.throws(() => gradcheck((a) => a.mul(0), [x]), /zero everywhere/);
    assert.throws(() => gradcheck((a) => a.detach(), [x]), /does not depend/);
    // A wrong rule in only one input of several is found, and named.
    using y = tensor([0.3, 0.7, -0.2], F64);
    assert.throws(() => gradcheck((a, b) => a.mul(b.detach()).add(b.mul(b)), [x, y]), /input 1\)/);
  });
});

// ---- elementwise, with broadcasting ----

check("add (broadcast [2,3,4] + [3,4], alpha 0.5)", () => ({ fn: (a, b) => a.add(b, 0.5), inputs: [r(2, 3, 4), r(3, 4)] }));
check("add scalar", () => ({ fn: (a) => a.add(2.5), inputs: [r(3, 2)] }));
check("sub (broadcast [2,1,3] - [4,1])", () => ({ fn: (a, b) => a.sub(b), inputs: [r(2, 1, 3), r(4, 1)] }));
check("rsub", () => ({ fn: (a) => a.rsub(1.5), inputs: [r(5)] }));
check("mul (broadcast [2,3] * [2,1])", () => ({ fn: (a, b) => a.mul(b), inputs: [r(2, 3), r(2, 1)] }));
check("mul scalar", () => ({ fn: (a) => a.mul(-3), inputs: [r(4)] }));
check("div (broadcast [3,1] / [1,4])", () => ({ fn: (a, b) => a.div(b), inputs: [r(3, 1), awayFromZero(1, 4)] }));
check("div scalar", () => ({ fn: (a) => a.div(0.7), inputs: [r(4)] }));
check("pow (integer exponent, negative bases)", () => ({ fn: (a) => a.pow(3), inputs: [r(2, 3)] }));
check("pow (fractional exponent)", () => ({ fn: (a) => a.pow(2.5), inputs: [positive(2, 3)] }));
check("pow (tensor ** tensor, broadcast)", () => ({ fn: (a, b) => a.pow(b), inputs: [positive(2, 3), r(3)] }));
check("exp", () => ({ fn: (a) => a.exp(), inputs: [r(2, 3)] }));
check("log", () => ({ fn: (a) => a.log(), inputs: [positive(2, 3)] }));
check("sqrt", () => ({ fn: (a) => a.sqrt(), inputs: [positive(2, 3)] }));
check("sigmoid", () => ({ fn: (a) => a.sigmoid(), inputs: [r(2, 3).mul(2)] }));
check("tanh", () => ({ fn: (a) => a.tanh(), inputs: [r(2, 3)] }));
check("relu", () => ({ fn: (a) => a.relu(), inputs: [awayFromZero(3, 4)] }));

// ---- softmax family and reductions ----

check("softmax over dim 1", () => ({ fn: (a) => F.softmax(a, 1), inputs: [r(3, 5)] }));
check("softmax over dim 0 of a 3-d tensor", () => ({ fn: (a) => F.softmax(a, 0), inputs: [r(3, 2, 2)] }));
check("logSoftmax", () => ({ fn: (a) => F.logSoftmax(a, -1), inputs: [r(3, 5)] }));
check("logsumexp over one dim", () => ({ fn: (a) => a.logsumexp(1), inputs: [r(3, 4)] }));
check("logsumexp over two dims, keepdim", () => ({ fn: (a) => a.logsumexp([0, 2], true), inputs: [r(2, 3, 2)] }));
check("sum over everything", () => ({ fn: (a) => a.sum(), inputs: [r(2, 3)] }));
check("sum over dims [0, 2], keepdim", () => ({ fn: (a) => a.sum([0, 2], true), inputs: [r(2, 3, 2)] }));
check("mean over everything", () => ({ fn: (a) => a.mean(), inputs: [r(2, 3)] }));
check("mean over dim -1", () => ({ fn: (a) => a.mean(-1), inputs: [r(2, 3, 2)] }));
check("norm (p=2, everything)", () => ({ fn: (a) => a.norm(), inputs: [r(2, 3)] }));
check("norm (p=2 over dim 1, keepdim)", () => ({ fn: (a) => a.norm(2, 1, true), inputs: [r(3, 4)] }));
check("norm (p=1 over dim 0)", () => ({ fn: (a) => a.norm(1, 0), inputs: [awayFromZero(3, 4)] }));
check("norm (p=3 over dims [0, 1])", () => ({ fn: (a) => a.norm(3, [0, 1]), inputs: [r(2, 3, 2)] }));
check("F.normalize (dim 1)", () => ({ fn: (a) => F.normalize(a), inputs: [r(3, 4)] }));
check("F.normalize (dim 0, p=1)", () => ({ fn: (a) => F.normalize(a, { dim: 0, p: 1 }), inputs: [awayFromZero(3, 4)] }));

// ---- linear algebra ----

check("matmul 2-d @ 2-d", () => ({ fn: (a, b) => a.matmul(b), inputs: [r(3, 4), r(4, 2)] }));
check("matmul batched @ 2-d (broadcast)", () => ({ fn: (a, b) => a.matmul(b), inputs: [r(2, 3, 4), r(4, 2)] }));
check("matmul 1-d @ 2-d", () => ({ fn: (a, b) => a.matmul(b), inputs: [r(4), r(4, 3)] }));
check("mm", () => ({ fn: (a, b) => a.mm(b), inputs: [r(2, 5), r(5, 3)] }));
check("linear with bias", () => ({ fn: (x, w, b) => F.linear(x, w, b), inputs: [r(3, 4), r(2, 4), r(2)] }));
check("linear without bias, 3-d input", () => ({ fn: (x, w) => F.linear(x, w), inputs: [r(2, 2, 4), r(3, 4)] }));

// ---- convolution ----

check("conv2d groups=2, stride 2, padding 1, dilation 2, bias", () => ({
  fn: (x, w, b) => F.conv2d(x, w, b, { stride: 2, padding: 1, dilation: 2, groups: 2 }),
  inputs: [r(1, 4, 6, 6), r(4, 2, 2, 2), r(4)],
}));
check("conv2d depthwise, asymmetric stride and padding", () => ({
  fn: (x, w) => F.conv2d(x, w, null, { stride: [2, 1], padding: [1, 0], groups: 3 }),
  inputs: [r(2, 3, 4, 4), r(3, 1, 3, 3)],
}));
check("conv2d plain 3x3", () => ({
  fn: (x, w, b) => F.conv2d(x, w, b, { padding: 1 }),
  inputs: [r(1, 2, 4, 4), r(3, 2, 3, 3), r(3)],
}));

// ---- normalization ----

check("batchNorm, training mode (input, weight, bias)", () => ({
  fn: (x, w, b) => F.batchNorm(x, { weight: w, bias: b, training: true }),
  inputs: [r(3, 2, 2, 2), positive(2), r(2)],
}));
check("batchNorm, training mode with running statistics, 2-d input", () => {
  const runningMean = tensor([0, 0, 0], F64);
  const runningVar = tensor([1, 1, 1], F64);
  return {
    fn: (x, w, b) => F.batchNorm(x, { weight: w, bias: b, runningMean, runningVar, training: true, momentum: 0.2 }),
    inputs: [r(4, 3), positive(3), r(3)],
  };
});
check("batchNorm, eval mode", () => {
  const runningMean = r(2);
  const runningVar = positive(2);
  return {
    fn: (x, w, b) => F.batchNorm(x, { weight: w, bias: b, runningMean, runningVar, training: false }),
    inputs: [r(2, 2, 3, 3), positive(2), r(2)],
  };
});

// ---- pooling ----

check("avgPool2d 2x2 stride 2", () => ({ fn: (x) => F.avgPool2d(x, 2), inputs: [r(1, 2, 4, 4)] }));
check("avgPool2d 3x3 stride 2 padding 1, countIncludePad false, ceilMode", () => ({
  fn: (x) => F.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false, ceilMode: true }),
  inputs: [r(1, 2, 5, 5)],
}));
check("maxPool2d 2x2 stride 2", () => ({ fn: (x) => F.maxPool2d(x, 2), inputs: [r(1, 2, 4, 4)] }));
check("maxPool2d 3x3 stride 2 padding 1 (overlapping windows)", () => ({
  fn: (x) => F.maxPool2d(x, 3, { stride: 2, padding: 1 }),
  inputs: [r(2, 1, 5, 5)],
}));
check("adaptiveAvgPool2d to 1x1", () => ({ fn: (x) => F.adaptiveAvgPool2d(x, 1), inputs: [r(2, 2, 3, 3)] }));
check("adaptiveAvgPool2d 5x5 to 2x3 (uneven windows)", () => ({ fn: (x) => F.adaptiveAvgPool2d(x, [2, 3]), inputs: [r(1, 2, 5, 5)] }));

// ---- losses ----

check("crossEntropy, index targets, mean", () => {
  const target = long([0, 2, 1, 2]);
  return { fn: (x) => F.crossEntropy(x, target), inputs: [r(4, 3)] };
});
check("crossEntropy, index targets, class weights, sum, ignoreIndex", () => {
  const target = long([0, 2, -100, 1]);
  const weight = tensor([0.2, 1, 3], F64);
  return { fn: (x) => F.crossEntropy(x, target, { weight, reduction: "sum" }), inputs: [r(4, 3)] };
});
check("crossEntropy, index targets, label smoothing 0.1", () => {
  const target = long([1, 0, 3]);
  return { fn: (x) => F.crossEntropy(x, target, { labelSmoothing: 0.1 }), inputs: [r(3, 4)] };
});
check("crossEntropy, probability targets (logits and targets)", () => ({
  fn: (x, p) => F.crossEntropy(x, p),
  inputs: [r(3, 4), F.softmax(r(3, 4), 1)],
}));
check("crossEntropy, probability targets, label smoothing, reduction none", () => ({
  fn: (x, p) => F.crossEntropy(x, p, { labelSmoothing: 0.2, reduction: "none" }),
  inputs: [r(3, 4), F.softmax(r(3, 4), 1)],
}));

// ---- resampling ----

check("interpolate bilinear, upsampling", () => ({ fn: (x) => F.interpolate(x, [5, 4], { mode: "bilinear" }), inputs: [r(1, 2, 3, 3)] }));
check("interpolate bilinear, alignCorners, downsampling", () => ({
  fn: (x) => F.interpolate(x, [3, 2], { mode: "bilinear", alignCorners: true }),
  inputs: [r(1, 2, 5, 4)],
}));
check("gridSample bilinear, zeros padding (input and grid)", () => ({
  fn: (x, g) => F.gridSample(x, g),
  inputs: [r(1, 2, 4, 4), uniform(-0.95, 0.95, 1, 3, 2, 2)],
}));
check("gridSample bilinear, border padding, alignCorners (input and grid)", () => ({
  fn: (x, g) => F.gridSample(x, g, { paddingMode: "border", alignCorners: true }),
  inputs: [r(2, 1, 3, 4), uniform(-0.9, 0.9, 2, 2, 3, 2)],
}));
check("affineGrid (theta)", () => ({ fn: (th) => F.affineGrid(th, [1, 1, 3, 4]), inputs: [r(1, 2, 3)] }));

// ---- joining, views and indexing ----

check("cat along dim 1", () => ({ fn: (a, b) => cat([a, b], 1), inputs: [r(2, 2), r(2, 3)] }));
check("stack along dim 1", () => ({ fn: (a, b) => stack([a, b], 1), inputs: [r(2, 3), r(2, 3)] }));
check("slice with a step, and a negative start", () => ({ fn: (a) => [a.slice(1, 0, 5, 2), a.slice(0, -1)], inputs: [r(3, 5)] }));
check("select", () => ({ fn: (a) => a.select(1, 2), inputs: [r(2, 4, 2)] }));
check("indexSelect with repeated indices (gradients accumulate)", () => {
  const idx = long([2, 0, 2, 2]);
  return { fn: (a) => a.indexSelect(0, idx), inputs: [r(3, 2)] };
});
check("transpose", () => ({ fn: (a) => a.transpose(0, 2), inputs: [r(2, 3, 2)] }));
check("reshape of a transposed (non-contiguous) tensor", () => ({ fn: (a) => a.t().reshape(2, 3), inputs: [r(2, 3)] }));
check("expand (broadcast a [1,2,1] to [3,2,4])", () => ({ fn: (a) => a.expand(3, 2, 4), inputs: [r(1, 2, 1)] }));

// ---- beyond the core list: more ops the models use ----

check("gelu", () => ({ fn: (a) => a.gelu(), inputs: [r(3, 4)] }));
check("silu", () => ({ fn: (a) => a.silu(), inputs: [r(3, 4)] }));
check("clamp (values away from the bounds)", () => ({
  fn: (a) => a.clamp(-0.5, 0.5),
  inputs: [tensor([-1.2, -0.3, 0.1, 0.45, 0.9, -0.7], F64)],
}));
check("maximum (distinct values)", () => ({ fn: (a, b) => a.maximum(b), inputs: [r(2, 3), r(2, 3).add(0.05)] }));
check("where", () => {
  const cond = tensor([[true, false, true], [false, false, true]]);
  return { fn: (a, b) => where(cond, a, b), inputs: [r(2, 3), r(3)] };
});
check("gather with repeated indices", () => {
  const idx = long([0, 0, 2, 1, 1, 1]).reshape(2, 3);
  return { fn: (a) => a.gather(1, idx), inputs: [r(2, 3)] };
});
check("maskedFill", () => {
  const mask = tensor([[true, false, false], [false, true, false]]);
  return { fn: (a) => a.maskedFill(mask, 2), inputs: [r(2, 3)] };
});
check("permute, flip and roll", () => ({ fn: (a) => a.permute(2, 0, 1).flip(0).roll([1], [2]), inputs: [r(2, 3, 2)] }));
check("F.pad", () => ({ fn: (a) => F.pad(a, [1, 2, 0, 1], 0.5), inputs: [r(2, 2, 3)] }));
check("addmm", () => ({ fn: (c, a, b) => addmm(c, a, b, 0.5, 2), inputs: [r(2, 3), r(2, 4), r(4, 3)] }));
check("bmm", () => ({ fn: (a, b) => a.bmm(b), inputs: [r(2, 2, 3), r(2, 3, 2)] }));
check("einsum", () => ({ fn: (a, b) => einsum("bij,jk->bik", a, b), inputs: [r(2, 2, 3), r(3, 2)] }));
check("mseLoss", () => ({ fn: (a, b) => F.mseLoss(a, b), inputs: [r(3, 2), r(3, 2)] }));
check("nllLoss", () => {
  const target = long([1, 0, 2]);
  return { fn: (a) => F.nllLoss(a, target), inputs: [r(3, 3)] };
});
check("abs, neg, reciprocal, rsqrt", () => ({
  fn: (a, p) => [a.abs().neg(), p.reciprocal(), p.rsqrt()],
  inputs: [awayFromZero(2, 3), positive(2, 3)],
}));

// ---- a composition, as the SwAV head uses them ----

check("normalize -> linear -> softmax / temperature -> crossEntropy with soft targets", () => ({
  fn: (x, w, q) => F.crossEntropy(F.linear(F.normalize(x), F.normalize(w)).div(0.1), q),
  inputs: [r(3, 4), r(5, 4), F.softmax(r(3, 5), 1)],
}));
