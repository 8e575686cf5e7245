// Numerics of the tensor ops against PyTorch on the same inputs (tests/oracle/ops_*.py under Debian's python3-torch),
// statistics of the random ops, and how bad arguments fail.
//
// Two oracle runs cover everything (each Python start costs ~1.5 s): ops_forward.py mirrors the FORWARD table
// below in float64 and float32; ops_extra.py mirrors the remaining tests step by step.
import { after, before, test } from "node:test";
import * as assert from "node:assert/strict";
import {
  type DType,
  bernoulli,
  full,
  manualSeed,
  multinomial,
  ones,
  rand,
  randint,
  randn,
  randperm,
  setNumThreads,
  type Tensor,
  tensor,
  tidy,
  zeros,
  cat,
  stack,
  arange,
  memory,
  where,
  addmm,
  einsum,
} from "../src/tensor";
import * as F from "../src/nn/functional";
import { assertClose, assertNoLeak } from "./helpers/assert";
import { type OracleResult, oracleTensor, runOracle } from "./helpers/oracle";

const F64 = { dtype: "float64" } as const;
const TOL: Record<"float32" | "float64", { atol: number; rtol: number }> = {
  float64: { atol: 1e-12, rtol: 1e-10 },
  float32: { atol: 1e-5, rtol: 1e-5 },
};
const PREFIX = { float64: "f64", float32: "f32" } as const;
type FloatDType = keyof typeof PREFIX;

const r = (...shape: number[]): Tensor => randn(shape, F64);
const positive = (...shape: number[]): Tensor => randn(shape, F64).abs().add(0.5);
const awayFromZero = (...shape: number[]): Tensor => {
  const x = randn(shape, F64);
  return x.sign().mul(x.abs().add(0.2));
};
const long = (values: number[]): Tensor => tensor(values, { dtype: "int64" });

/** Every float input converted to dtype (as the oracle does with .to(dtype)); integer inputs unchanged. */
function convert<T extends Record<string, Tensor>>(inputs: T, dtype: FloatDType): T {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(inputs)) out[k] = v.dtype === "float64" ? v.to(dtype) : v;
  return out as T;
}

/** Exact equality with the oracle: shape, dtype and every element (NaN and ±0 are told apart by Object.is). */
function assertSame(actual: Tensor, expected: Tensor, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  assert.deepEqual(actual.toArray(), expected.toArray(), what);
}

function compare(res: OracleResult, name: string, actual: Tensor, dtype: FloatDType): void {
  const expected = oracleTensor(res, name);
  assert.equal(actual.dtype, dtype, `${name}: dtype`);
  assertClose(actual, expected, { ...TOL[dtype], what: name });
}

// ---- inputs, made once (seeded) and shared by the tests; freed after the last one ----

function forwardInputs() {
  manualSeed(20240601);
  return tidy(() => ({
    a: r(2, 3, 4), b: r(3, 4), c: r(2, 1, 4), e: r(3, 1), nzb: awayFromZero(3, 4), pos: positive(2, 3, 4),
    m1: r(3, 5), m2: r(5, 4), m3: r(2, 3, 5), v: r(5), wl: r(4, 5), bl: r(4),
    xc: r(2, 4, 7, 7), wc: r(6, 2, 3, 3), bc: r(6), wdw: r(4, 1, 3, 3), wp: r(3, 4, 3, 3), bp: r(3),
    xb: r(4, 3, 3, 3), gb: positive(3), bb: r(3),
    img: r(2, 3, 6, 6),
    logits: r(5, 4), target: long([0, 3, 1, 1, 2]), probs: F.softmax(r(5, 4), 1),
    grid: rand([2, 4, 5, 2], F64).mul(2.4).sub(1.2),
    idx: long([2, 0, 2]),
    gidx: randint(0, 4, [2, 3, 2]),
  }));
}
type ForwardInputs = ReturnType<typeof forwardInputs>;

/** Mirrors FORWARD in tests/oracle/ops_forward.py, name for name. */
const FORWARD: Record<string, (x: ForwardInputs) => Tensor> = {
  // elementwise, with broadcasting
  add: (x) => x.a.add(x.b),
  add_alpha: (x) => x.a.add(x.b, 0.5),
  add_scalar: (x) => x.a.add(2.5),
  sub: (x) => x.c.sub(x.e),
  rsub: (x) => x.a.rsub(1.5),
  mul: (x) => x.a.mul(x.c),
  mul_scalar: (x) => x.a.mul(-3),
  div: (x) => x.a.div(x.nzb),
  div_scalar: (x) => x.a.div(0.7),
  pow_int: (x) => x.a.pow(3),
  pow_frac: (x) => x.pos.pow(2.5),
  pow_tensor: (x) => x.pos.pow(x.b),
  exp: (x) => x.a.exp(),
  log: (x) => x.pos.log(),
  sqrt: (x) => x.pos.sqrt(),
  sigmoid: (x) => x.a.sigmoid(),
  tanh: (x) => x.a.tanh(),
  relu: (x) => x.a.relu(),
  // softmax family and reductions
  softmax1: (x) => F.softmax(x.a, 1),
  softmax0: (x) => F.softmax(x.a, 0),
  log_softmax: (x) => F.logSoftmax(x.a, -1),
  logsumexp: (x) => x.a.logsumexp(1),
  logsumexp_keep: (x) => x.a.logsumexp([0, 2], true),
  sum_all: (x) => x.a.sum(),
  sum_dims_keep: (x) => x.a.sum([0, 2], true),
  mean_all: (x) => x.a.mean(),
  mean_dim: (x) => x.a.mean(-1),
  norm_all: (x) => x.a.norm(),
  norm_dim_keep: (x) => x.a.norm(2, 1, true),
  norm_p1: (x) => x.a.norm(1, 0),
  norm_p3: (x) => x.a.norm(3, [0, 1]),
  normalize: (x) => F.normalize(x.m1),
  normalize_p1_dim0: (x) => F.normalize(x.m1, { p: 1, dim: 0 }),
  // linear algebra
  matmul: (x) => x.m1.matmul(x.m2),
  matmul_batched: (x) => x.m3.matmul(x.m2),
  matmul_vec: (x) => x.v.matmul(x.m2),
  mm: (x) => x.m1.mm(x.m2),
  linear: (x) => F.linear(x.m1, x.wl, x.bl),
  linear_nobias_3d: (x) => F.linear(x.m3, x.wl),
  // convolution
  conv_groups: (x) => F.conv2d(x.xc, x.wc, x.bc, { stride: 2, padding: 1, dilation: 2, groups: 2 }),
  conv_depthwise: (x) => F.conv2d(x.xc, x.wdw, null, { stride: [2, 1], padding: [1, 0], groups: 4 }),
  conv_plain: (x) => F.conv2d(x.xc, x.wp, x.bp, { padding: 1 }),
  // normalization
  bn_train: (x) => F.batchNorm(x.xb, { weight: x.gb, bias: x.bb, training: true }),
  // pooling
  avgpool: (x) => F.avgPool2d(x.img, 2),
  avgpool_pad: (x) => F.avgPool2d(x.img, 3, { stride: 2, padding: 1, ceilMode: true, countIncludePad: false }),
  maxpool: (x) => F.maxPool2d(x.img, 2),
  maxpool_pad: (x) => F.maxPool2d(x.img, 3, { stride: 2, padding: 1 }),
  maxpool_dil_ceil: (x) => F.maxPool2d(x.img, 2, { stride: 2, dilation: 2, ceilMode: true }),
  adaptive_1: (x) => F.adaptiveAvgPool2d(x.img, 1),
  adaptive_4x5: (x) => F.adaptiveAvgPool2d(x.img, [4, 5]),
  // losses
  ce: (x) => F.crossEntropy(x.logits, x.target),
  ce_smooth: (x) => F.crossEntropy(x.logits, x.target, { labelSmoothing: 0.1 }),
  ce_probs: (x) => F.crossEntropy(x.logits, x.probs),
  // resampling
  interp_bilinear: (x) => F.interpolate(x.img, [9, 7], { mode: "bilinear" }),
  interp_bilinear_ac: (x) => F.interpolate(x.img, [4, 5], { mode: "bilinear", alignCorners: true }),
  grid_bilinear: (x) => F.gridSample(x.img, x.grid),
  // joining, views and indexing
  cat: (x) => cat([x.a, x.a.mul(2)], 1),
  stack: (x) => stack([x.a, x.a.neg()], 2),
  slice: (x) => x.a.slice(2, 1, 4, 2),
  select: (x) => x.a.select(1, -1),
  index_select: (x) => x.a.indexSelect(1, x.idx),
  transpose: (x) => x.a.transpose(0, 2),
  reshape: (x) => x.a.reshape(4, 6),
  expand: (x) => x.c.expand(2, 3, 4),
  // beyond the core list: more ops the models use
  gelu: (x) => x.a.gelu(),
  silu: (x) => x.a.silu(),
  clamp: (x) => x.a.clamp(-0.5, 0.7),
  maximum: (x) => x.a.maximum(x.c),
  where: (x) => where(x.a.gt(0), x.a, x.c.mul(2)),
  gather: (x) => x.a.gather(2, x.gidx),
  masked_fill: (x) => x.a.maskedFill(x.a.lt(0), -1),
  permute: (x) => x.a.permute(2, 0, 1),
  flip: (x) => x.a.flip(0, 2),
  roll: (x) => x.a.roll([1, -2], [1, 2]),
  pad: (x) => F.pad(x.a, [1, 2, 0, 1], 0.5),
  addmm: (x) => addmm(x.b.narrow(0, 0, 3), x.m1, x.m2, 0.5, 2),
  bmm: (x) => x.m3.bmm(x.m3.transpose(1, 2)),
  einsum: (x) => einsum("bij,jk->bik", x.m3, x.m2),
  mse_loss: (x) => F.mseLoss(x.a, x.pos),
  nll_loss: (x) => F.nllLoss(F.logSoftmax(x.logits, 1), x.target),
};

function extraInputs() {
  manualSeed(7);
  return tidy(() => ({
    bn_x1: r(4, 3, 2, 2), bn_x2: r(4, 3, 2, 2).mul(2).add(1), bn_x3: r(2, 3, 2, 2), bn_w: positive(3), bn_b: r(3),
    // distinct values, also after rounding to float32: a permutation of 0..23 plus a fraction below 0.5
    sel: randperm(24).double().add(rand([24], F64).mul(0.5)).reshape(4, 6),
    img: r(2, 2, 5, 6),
    theta: tensor([[[1.2, -0.5, 0.3], [0.4, 1.1, -0.2]], [[0.8, 0.3, -0.5], [-0.6, 1.4, 0.4]]], F64),
    logits: r(6, 4), target: long([0, 3, 1, 2, 3, 1]), target_ign: long([0, -100, 1, 2, -100, 3]),
    cw: tensor([0.5, 2, 1, 1.5], F64), probs: F.softmax(r(6, 4), 1),
    conv_values: tensor(CONV_VALUES, F64),
  }));
}
type ExtraInputs = ReturnType<typeof extraInputs>;

/** Values whose conversions are exact to test: halfway cases, overflow, subnormals, negative zero. */
const CONV_VALUES = [
  0, -0, 1, -1, 1 / 3, -2 / 3, Math.PI, 0.1, 1e-3, -7.9, 7.5, -7.5, 254.5, 123456.789,
  1.00390625, 1.01171875, 1.0078125, // bf16 halfway cases (ties to even) and an exact one
  2049, 2051, -2049, 65504, 65519, 65520, 1e5, // f16 halfway cases, max, and overflow to infinity
  6e-5, 1e-7, 3e-8, 1e-40, 1e38, 3.3e38, 3.4e38, -3.4e38, // subnormals and the edges of both ranges
];

let fwd: ForwardInputs;
let fwdRef: OracleResult;
let extra: ExtraInputs;
let extraRef: OracleResult;

before(() => {
  setNumThreads(1);
  fwd = forwardInputs();
  fwdRef = runOracle("ops_forward.py", fwd);
  extra = extraInputs();
  extraRef = runOracle("ops_extra.py", extra);
});

after(() => {
  // (either may be unset when before() failed)
  for (const set of [fwd as ForwardInputs | undefined, extra as ExtraInputs | undefined]) for (const t of Object.values(set ?? {})) t.dispose();
});

// ---- the forward table ----

test("the forward table and ops_forward.py cover the same ops", () => {
  for (const p of ["f64", "f32"]) {
    const fromOracle = Object.keys(fwdRef).filter((k) => k.startsWith(`${p}_`)).map((k) => k.slice(4)).sort();
    assert.deepEqual(fromOracle, Object.keys(FORWARD).sort());
  }
});

for (const dtype of ["float64", "float32"] as const) {
  test(`forward ops match PyTorch in ${dtype}`, () => {
    assertNoLeak(() =>
      tidy(() => {
        const x = convert(fwd, dtype);
        for (const [name, fn] of Object.entries(FORWARD)) tidy(() => compare(fwdRef, `${PREFIX[dtype]}_${name}`, fn(x), dtype));
      }),
    );
  });
}

test("the comparison is not vacuous: a perturbed result fails it", () => {
  assertNoLeak(() =>
    tidy(() => {
      const y = FORWARD.softmax1!(fwd).add(1e-9);
      assert.throws(() => compare(fwdRef, "f64_softmax1", y, "float64"), /element/);
      assert.throws(() => compare(fwdRef, "f64_softmax1", FORWARD.softmax0!(fwd), "float64"), /element/);
    }),
  );
});

// ---- batch norm: running statistics and eval mode ----

for (const dtype of ["float64", "float32"] as const) {
  test(`batchNorm train updates running statistics as PyTorch does, and eval uses them (${dtype})`, () => {
    assertNoLeak(() =>
      tidy(() => {
        const x = convert(extra, dtype);
        const p = PREFIX[dtype];
        const rm = zeros([3], { dtype });
        const rv = ones([3], { dtype });
        const opts = { weight: x.bn_w, bias: x.bn_b, runningMean: rm, runningVar: rv };
        compare(extraRef, `${p}_bn_y1`, F.batchNorm(x.bn_x1, { ...opts, training: true, momentum: 0.1, eps: 1e-5 }), dtype);
        compare(extraRef, `${p}_bn_rm1`, rm.clone(), dtype);
        compare(extraRef, `${p}_bn_rv1`, rv.clone(), dtype);
        // The update rule itself: r <- (1 - m) r + m * batch statistic (variance unbiased).
        assertClose(rm, x.bn_x1.mean([0, 2, 3]).mul(0.1), TOL[dtype]);
        assertClose(rv, x.bn_x1.var([0, 2, 3]).mul(0.1).add(0.9), TOL[dtype]);
        compare(extraRef, `${p}_bn_y2`, F.batchNorm(x.bn_x2, { ...opts, training: true, momentum: 0.3, eps: 1e-3 }), dtype);
        compare(extraRef, `${p}_bn_rm2`, rm, dtype);
        compare(extraRef, `${p}_bn_rv2`, rv, dtype);
        const evalOut = F.batchNorm(x.bn_x3, { ...opts, training: false });
        compare(extraRef, `${p}_bn_eval`, evalOut, dtype);
        compare(extraRef, `${p}_bn_eval_noaffine`, F.batchNorm(x.bn_x3, { runningMean: rm, runningVar: rv, training: false }), dtype);
        const trainOut = F.batchNorm(x.bn_x3, { weight: x.bn_w, bias: x.bn_b, training: true });
        compare(extraRef, `${p}_bn_train_x3`, trainOut, dtype);
        // Eval mode left the statistics alone, and its output differs from batch-statistics normalization.
        compare(extraRef, `${p}_bn_rm2`, rm, dtype);
        assert.ok(evalOut.sub(trainOut).abs().max().item() > 0.05, "eval and train outputs should differ");
      }),
    );
  });
}

// ---- selection, scans, variance ----

for (const dtype of ["float64", "float32"] as const) {
  test(`max/min/topk/sort/argmax values and indices, cumsum, var/std match PyTorch (${dtype})`, () => {
    assertNoLeak(() =>
      tidy(() => {
        const s = extra.sel.to(dtype);
        const p = PREFIX[dtype];
        const same = (name: string, t: Tensor): void => assertSame(t, oracleTensor(extraRef, `${p}_${name}`), name);
        const pair = (name: string, vi: { values: Tensor; indices: Tensor }): void => {
          same(`${name}_v`, vi.values);
          same(`${name}_i`, vi.indices);
        };
        pair("max1", s.maxDim(1));
        pair("min0", s.minDim(0));
        pair("max0k", s.maxDim(0, true));
        pair("topk3", s.topk(3, 1));
        pair("topk2s", s.topk(2, 0, { largest: false }));
        pair("sort1", s.sort(1));
        pair("sort0d", s.sort(0, true));
        same("argmax1", s.argmax(1));
        same("argmin0", s.argmin(0));
        same("argmax0k", s.argmax(0, true));
        same("max_all", s.max());
        same("min_all", s.min());
        same("amax1", s.amax(1));
        same("amin01", s.amin([0, 1]));
        // Indices are int64 and point at the values they come with.
        const top = s.topk(3, 1);
        assert.equal(top.indices.dtype, "int64");
        assertSame(s.gather(1, top.indices), top.values, "gather(topk.indices) == topk.values");

        compare(extraRef, `${p}_cumsum0`, s.cumsum(0), dtype);
        compare(extraRef, `${p}_cumsum1`, s.cumsum(1), dtype);
        compare(extraRef, `${p}_var1`, s.var(1), dtype);
        compare(extraRef, `${p}_std0`, s.std(0), dtype);
        compare(extraRef, `${p}_var_all`, s.var(), dtype);
        compare(extraRef, `${p}_std_all`, s.std(), dtype);
        compare(extraRef, `${p}_var1_biased`, s.var(1, { unbiased: false }), dtype);
        compare(extraRef, `${p}_std0_keep`, s.std(0, { keepdim: true }), dtype);
        // Unbiased is the default and differs from the biased estimate by n / (n - 1).
        assertClose(s.var(1), s.var(1, { unbiased: false }).mul(6 / 5), TOL[dtype]);
      }),
    );
  });
}

// ---- resampling ----

for (const dtype of ["float64", "float32"] as const) {
  test(`interpolate nearest/bilinear/bicubic (alignCorners both ways, antialias) matches PyTorch (${dtype})`, () => {
    assertNoLeak(() =>
      tidy(() => {
        const img = extra.img.to(dtype);
        const p = PREFIX[dtype];
        compare(extraRef, `${p}_near_up`, F.interpolate(img, [8, 9]), dtype);
        compare(extraRef, `${p}_near_down`, F.interpolate(img, [3, 4], { mode: "nearest" }), dtype);
        for (const mode of ["bilinear", "bicubic"] as const) {
          for (const ac of [false, true]) {
            const tag = `${mode}_%_ac${Number(ac)}`;
            compare(extraRef, `${p}_${tag.replace("%", "up")}`, F.interpolate(img, [8, 9], { mode, alignCorners: ac }), dtype);
            compare(extraRef, `${p}_${tag.replace("%", "down")}`, F.interpolate(img, [3, 4], { mode, alignCorners: ac }), dtype);
            compare(extraRef, `${p}_${tag.replace("%", "aa")}`, F.interpolate(img, [3, 4], { mode, alignCorners: ac, antialias: true }), dtype);
          }
        }
        // Antialiasing changes a downsample (else the flag would be ignored unnoticed).
        const plain = F.interpolate(img, [3, 4], { mode: "bilinear" });
        const aa = F.interpolate(img, [3, 4], { mode: "bilinear", antialias: true });
        assert.ok(plain.sub(aa).abs().max().item() > 1e-3, "antialias had no effect");
        assert.throws(() => F.interpolate(img, [3, 4], { mode: "nearest", alignCorners: true }), TypeError);
        assert.throws(() => F.interpolate(img, [3, 4], { mode: "nearest", antialias: true }), TypeError);
      }),
    );
  });

  test(`affineGrid + gridSample with zeros/border/reflection padding match PyTorch (${dtype})`, () => {
    assertNoLeak(() =>
      tidy(() => {
        const img = extra.img.to(dtype);
        const theta = extra.theta.to(dtype);
        const p = PREFIX[dtype];
        for (const ac of [false, true]) {
          const grid = F.affineGrid(theta, [2, 2, 4, 5], ac);
          compare(extraRef, `${p}_agrid_ac${Number(ac)}`, grid, dtype);
          // The grid reaches outside [-1, 1], so the padding modes give different results.
          assert.ok(grid.abs().max().item() > 1.1);
          const byPad: Tensor[] = [];
          for (const pad of ["zeros", "border", "reflection"] as const) {
            for (const mode of ["bilinear", "nearest"] as const) {
              const y = F.gridSample(img, grid, { mode, paddingMode: pad, alignCorners: ac });
              compare(extraRef, `${p}_gs_${mode}_${pad}_ac${Number(ac)}`, y, dtype);
              if (mode === "bilinear") byPad.push(y);
            }
          }
          assert.ok(byPad[0]!.sub(byPad[1]!).abs().max().item() > 1e-3, "zeros and border padding agree");
          assert.ok(byPad[1]!.sub(byPad[2]!).abs().max().item() > 1e-3, "border and reflection padding agree");
        }
      }),
    );
  });
}

// ---- cross entropy ----

for (const dtype of ["float64", "float32"] as const) {
  test(`crossEntropy reductions, class weights, ignoreIndex, label smoothing, soft targets match PyTorch (${dtype})`, () => {
    assertNoLeak(() =>
      tidy(() => {
        const x = convert(extra, dtype);
        const p = PREFIX[dtype];
        for (const reduction of ["none", "mean", "sum"] as const) {
          compare(extraRef, `${p}_ce_${reduction}`, F.crossEntropy(x.logits, x.target, { reduction }), dtype);
          compare(extraRef, `${p}_ce_w_${reduction}`, F.crossEntropy(x.logits, x.target, { weight: x.cw, reduction }), dtype);
          compare(extraRef, `${p}_ce_ign_${reduction}`, F.crossEntropy(x.logits, x.target_ign, { reduction }), dtype);
          compare(extraRef, `${p}_ce_probs_${reduction}`, F.crossEntropy(x.logits, x.probs, { reduction }), dtype);
        }
        compare(extraRef, `${p}_ce_ignore1`, F.crossEntropy(x.logits, x.target, { ignoreIndex: 1 }), dtype);
        compare(extraRef, `${p}_ce_w_ign_smooth`, F.crossEntropy(x.logits, x.target_ign, { weight: x.cw, labelSmoothing: 0.2 }), dtype);
        compare(extraRef, `${p}_ce_smooth_sum`, F.crossEntropy(x.logits, x.target, { labelSmoothing: 0.3, reduction: "sum" }), dtype);
        compare(extraRef, `${p}_ce_probs_w_smooth`, F.crossEntropy(x.logits, x.probs, { weight: x.cw, labelSmoothing: 0.1 }), dtype);
        compare(extraRef, `${p}_nll_ign_w`, F.nllLoss(F.logSoftmax(x.logits, 1), x.target_ign, { weight: x.cw }), dtype);
        // Ignored rows contribute exactly zero to the unreduced loss.
        const none = F.crossEntropy(x.logits, x.target_ign, { reduction: "none" }).toArray();
        assert.equal(none[1], 0);
        assert.equal(none[4], 0);
        assert.ok(none[0]! > 0);
      }),
    );
  });
}

// ---- dtype conversions ----

test("bfloat16 and float16 conversions round exactly as PyTorch does, and round-trip", () => {
  assertNoLeak(() =>
    tidy(() => {
      const cv = extra.conv_values;
      const exact = (name: string, t: Tensor): void => assertSame(t, oracleTensor(extraRef, name), name);
      const bf16 = cv.to("bfloat16");
      const f16 = cv.to("float16");
      assert.equal(bf16.dtype, "bfloat16");
      assert.equal(f16.dtype, "float16");
      exact("bf16_from_f64", bf16.float());
      exact("f16_from_f64", f16.float());
      exact("bf16_from_f32", cv.float().to("bfloat16").float());
      exact("f16_from_f32", cv.float().to("float16").float());
      exact("i64_from_f64", cv.clamp(-1e9, 1e9).to("int64"));
      exact("bool_from_f64", cv.to("bool"));
      // Spot checks that do not depend on the oracle.
      const b = bf16.toArray();
      const h = f16.toArray();
      assert.equal(b[CONV_VALUES.indexOf(1.00390625)], 1); // halfway: ties to even
      assert.equal(b[CONV_VALUES.indexOf(1.01171875)], 1.015625);
      assert.equal(h[CONV_VALUES.indexOf(2049)], 2048);
      assert.equal(h[CONV_VALUES.indexOf(2051)], 2052);
      assert.equal(h[CONV_VALUES.indexOf(65504)], 65504);
      assert.equal(h[CONV_VALUES.indexOf(65520)], Infinity);
      assert.ok(Object.is(CONV_VALUES[1], -0) && Object.is(h[1], -0) && Object.is(b[1], -0), "negative zero lost its sign");
      // Half -> float32 -> half is the identity, and so is half -> float64 -> half.
      for (const half of [bf16, f16]) {
        assertSame(half.float().to(half.dtype), half, `${half.dtype} via float32`);
        assertSame(half.double().to(half.dtype), half, `${half.dtype} via float64`);
      }
      // Creating half tensors from JS numbers goes through the same rounding.
      assert.deepEqual(tensor(CONV_VALUES, { dtype: "bfloat16" }).toArray(), b);
      assert.deepEqual(tensor(CONV_VALUES, { dtype: "float16" }).toArray(), h);
      // float -> int truncates toward zero.
      assert.deepEqual(tensor([-7.9, -0.5, 0.5, 7.9], F64).to("int64").toArray(), [-7, 0, 0, 7]);
      assert.deepEqual(tensor([-7.9, 7.9]).to("int32").toArray(), [-7, 7]);
    }),
  );
});

// ---- random ops: ranges and statistics (seeded, so a pass is reproducible) ----

test("dropout preserves the mean, zeroes about p of the elements, scales the rest by 1/(1-p)", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(11);
      const n = 100_000;
      for (const p of [0.1, 0.3, 0.5]) {
        const x = ones([n], F64);
        const y = F.dropout(x, p, true);
        const values = y.data() as Float64Array;
        let zeros = 0;
        for (const v of values) {
          if (v === 0) zeros++;
          else assert.ok(Math.abs(v - 1 / (1 - p)) < 1e-12, `kept value ${v}, expected ${1 / (1 - p)}`);
        }
        const sd = Math.sqrt((p * (1 - p)) / n);
        assert.ok(Math.abs(zeros / n - p) < 6 * sd, `p=${p}: zeroed ${zeros / n}`);
        assert.ok(Math.abs(y.mean().item() - 1) < 6 * Math.sqrt(p / (1 - p) / n), `p=${p}: mean ${y.mean().item()}`);
      }
      // On random data, too: the mean of the output is the mean of the input.
      const x = rand([n], F64).add(1);
      assert.ok(Math.abs(F.dropout(x, 0.5, true).mean().item() - x.mean().item()) < 0.02);
      // Eval mode is the identity; p = 0 keeps everything, p = 1 drops everything.
      const z = randn([1000]);
      assertSame(F.dropout(z, 0.5, false), z, "dropout in eval mode");
      assertSame(F.dropout(z, 0, true), z, "dropout p=0");
      assert.equal(F.dropout(z, 1, true).abs().sum().item(), 0);
    }),
  );
});

test("randint stays in [low, high) and hits every value about equally often; randperm is a permutation", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(12);
      const n = 40_000;
      const t = randint(-3, 5, [n]);
      assert.equal(t.dtype, "int64");
      assert.deepEqual(t.shape, [n]);
      const counts = new Map<number, number>();
      for (const v of t.toArray()) counts.set(v, (counts.get(v) ?? 0) + 1);
      assert.deepEqual([...counts.keys()].sort((a, b) => a - b), [-3, -2, -1, 0, 1, 2, 3, 4]);
      for (const [v, c] of counts) assert.ok(Math.abs(c / n - 1 / 8) < 0.01, `value ${v}: frequency ${c / n}`);
      assert.equal(randint(0, 10, [5], { dtype: "int32" }).dtype, "int32");
      assert.deepEqual(randint(7, 8, [4]).toArray(), [7, 7, 7, 7]);

      for (const size of [1, 2, 50, 1000]) {
        const perm = randperm(size);
        assert.equal(perm.dtype, "int64");
        assert.deepEqual(perm.sort().values.toArray(), arange(size).toArray(), `randperm(${size})`);
      }
      const p50 = randperm(50).toArray();
      assert.notDeepEqual(p50, arange(50).toArray(), "randperm(50) returned the identity");
    }),
  );
});

test("multinomial draws by weight, never a zero-weight index, distinct indices without replacement", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(13);
      const n = 20_000;
      const w = [0.1, 0, 0.6, 0.3];
      const draws = multinomial(tensor(w, F64), n, true);
      assert.equal(draws.dtype, "int64");
      assert.deepEqual(draws.shape, [n]);
      const counts = [0, 0, 0, 0];
      for (const i of draws.toArray()) counts[i]!++;
      assert.equal(counts[1], 0, "drew an index of weight zero");
      for (const [i, c] of counts.entries()) assert.ok(Math.abs(c / n - w[i]!) < 0.015, `index ${i}: frequency ${c / n}`);
      // Unnormalized weights are fine; rows of a 2-d input are drawn independently.
      const rows = multinomial(tensor([[5, 0, 0, 5], [0, 0, 2, 0]]), 3, true);
      assert.deepEqual(rows.shape, [2, 3]);
      const [r0, r1] = [rows.select(0, 0).toArray(), rows.select(0, 1).toArray()];
      assert.ok(r0.every((i) => i === 0 || i === 3));
      assert.deepEqual(r1, [2, 2, 2]);
      // Without replacement: every nonzero-weight index exactly once.
      for (let k = 0; k < 20; k++) {
        const picks = multinomial(tensor(w), 3, false).toArray();
        assert.deepEqual([...picks].sort(), [0, 2, 3]);
      }
    }),
  );
});

test("bernoulli draws 0/1 with the given probabilities; rand and randn have the right ranges and moments", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(14);
      const n = 50_000;
      const p = cat([zeros([n]), ones([n]), full([n], 0.25)]);
      const d = bernoulli(p);
      assert.equal(d.dtype, "float32");
      const v = d.toArray();
      assert.ok(v.every((x) => x === 0 || x === 1), "bernoulli gave a value other than 0 or 1");
      assert.equal(d.slice(0, 0, n).sum().item(), 0);
      assert.equal(d.slice(0, n, 2 * n).sum().item(), n);
      const frac = d.slice(0, 2 * n).mean().item();
      assert.ok(Math.abs(frac - 0.25) < 6 * Math.sqrt((0.25 * 0.75) / n), `p=0.25: ${frac}`);

      const u = rand([n], F64);
      assert.ok(u.min().item() >= 0 && u.max().item() < 1);
      assert.ok(Math.abs(u.mean().item() - 0.5) < 0.01);
      const g = randn([n], F64);
      assert.ok(Math.abs(g.mean().item()) < 0.02);
      assert.ok(Math.abs(g.std().item() - 1) < 0.02);
    }),
  );
});

// ---- errors ----

interface TorchError extends Error {
  code?: string;
  op?: string;
}

test("a bad conv shape throws a JS Error (code ERR_TORCH) naming the shapes, and the process carries on", () => {
  assertNoLeak(() => {
    using x = zeros([1, 3, 8, 8]);
    using w = zeros([4, 2, 3, 3]);
    let caught: TorchError | undefined;
    try {
      F.conv2d(x, w);
    } catch (e) {
      caught = e as TorchError;
    }
    assert.ok(caught instanceof Error, "conv2d with mismatched channels did not throw an Error");
    assert.equal(caught.code, "ERR_TORCH");
    assert.equal(caught.op, "conv2d");
    assert.match(caught.message, /\[4, 2, 3, 3\]/);
    assert.match(caught.message, /\[1, 3, 8, 8\]/);
    // More libtorch checks (shape, index and value errors) fail the same way.
    const torchError = (e: unknown): boolean => e instanceof Error && (e as TorchError).code === "ERR_TORCH";
    using w1 = zeros([4, 3, 9, 9]);
    assert.throws(() => F.conv2d(x, w1), torchError); // kernel larger than the input
    using w6 = zeros([6, 1, 3, 3]);
    assert.throws(() => F.conv2d(x, w6, null, { groups: 2 }), torchError); // 3 channels in 2 groups
    using logits = zeros([2, 4]);
    using badTarget = tensor([1, 7], { dtype: "int64" });
    assert.throws(() => F.crossEntropy(logits, badTarget), (e: unknown) => torchError(e) && /out of bounds/.test((e as Error).message));
    using idx = tensor([5], { dtype: "int64" });
    assert.throws(() => logits.indexSelect(0, idx), torchError);
    assert.throws(() => logits.reshape(3, 3), (e: unknown) => torchError(e) && /\[3, 3\]/.test((e as Error).message));
    assert.throws(() => cat([logits, x]), torchError);
    using w2 = zeros([2]);
    assert.throws(() => F.batchNorm(x, { weight: w2, training: true }), torchError); // 3 channels, 2 weights
    // Nothing broke: the same runtime keeps computing.
    using w3 = zeros([4, 3, 3, 3]);
    using ok = F.conv2d(x, w3, null, { padding: 1 });
    assert.deepEqual(ok.shape, [1, 4, 8, 8]);
  });
});

test("wrong argument types throw instead of computing garbage", () => {
  assertNoLeak(() => {
    using x = ones([2, 3]);
    const torchError = (e: unknown): boolean => e instanceof Error && (e as TorchError).code === "ERR_TORCH";
    // TypeScript would reject these; JS callers can still make them.
    const loose = x as unknown as {
      add(o: unknown): Tensor;
      reshape(...s: unknown[]): Tensor;
      sum(d: unknown): Tensor;
      transpose(a: unknown, b: unknown): Tensor;
      clamp(a: unknown): Tensor;
    };
    assert.throws(() => loose.add("abc"), torchError);
    assert.throws(() => loose.add({}), torchError);
    assert.throws(() => loose.reshape("a"), torchError);
    assert.throws(() => loose.sum("a"), torchError);
    assert.throws(() => loose.transpose(0, true), torchError);
    assert.throws(() => loose.clamp("a"), torchError);
    const conv = F.conv2d as unknown as (x: Tensor, w: Tensor, b: null, o: { stride: unknown }) => Tensor;
    using x4 = zeros([1, 1, 4, 4]);
    using w4 = zeros([1, 1, 3, 3]);
    assert.throws(() => conv(x4, w4, null, { stride: "2" }), torchError);
    // Checked on the JS side.
    assert.throws(() => x.to("float8" as DType), TypeError);
    assert.throws(() => x.to("tpu" as DType), TypeError);
    assert.throws(() => zeros([2], { device: "tpu" as "cpu" }), TypeError);
    assert.throws(() => tensor("abc" as unknown as number), TypeError);
    assert.throws(() => tensor([1, "2", 3] as unknown as number[]), TypeError);
    assert.throws(() => tensor([[1, 2], [3]]), RangeError);
    assert.throws(() => setNumThreads(0), RangeError);
    assert.throws(() => manualSeed(-1), RangeError);
    assert.throws(() => manualSeed(1.5), RangeError);
    const dead = zeros([1]);
    dead.dispose();
    assert.throws(() => dead.add(1), /after dispose/);
  });
  assert.equal(memory().leakedViaGc, 0);
});
