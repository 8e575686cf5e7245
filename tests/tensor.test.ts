// The tensor layer: creation, data in and out, scopes, errors, and a first check against PyTorch.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { arange, foreach, memory, noGrad, randn, manualSeed, tensor, tidy, zeros } from "../src/tensor";
import * as F from "../src/nn/functional";
import { assertClose, assertNoLeak } from "./helpers/assert";
import { oracleTensor, runOracle } from "./helpers/oracle";

test("round-trips data through every dtype", () => {
  assertNoLeak(() => {
    for (const dtype of ["float32", "float64", "bfloat16", "float16", "int64", "int32", "uint8"] as const) {
      using t = tensor([[1, 2, 3], [4, 5, 6]], { dtype });
      assert.deepEqual(t.shape, [2, 3]);
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.toArray(), [1, 2, 3, 4, 5, 6], dtype);
    }
    using b = tensor([true, false, true]);
    assert.equal(b.dtype, "bool");
    assert.deepEqual(b.toArray(), [1, 0, 1]);
  });
});

test("a TypedArray with a shape that does not fit is an error naming both", () => {
  assert.throws(() => tensor(new Float32Array(5), { shape: [2, 3] }), /20 bytes but shape \[2, 3\]/);
});

test("libtorch errors become JS errors with libtorch's message", () => {
  assertNoLeak(() => {
    using a = zeros([2, 3]);
    using b = zeros([4, 5]);
    assert.throws(() => a.matmul(b), (e: Error & { code?: string }) => e.code === "ERR_TORCH" && /2x3 and 4x5/.test(e.message));
  });
});

test("tidy frees intermediates, keeps results, and frees on throw", () => {
  const before = memory().numTensors;
  const out = tidy(() => {
    const a = arange(0, 6).reshape(2, 3).float();
    const b = a.mul(2).add(1);
    return { total: b.sum(), rows: [b.sum(1)] };
  });
  assert.equal(memory().numTensors, before + 2);
  assert.equal(out.total.item(), 36);
  out.total.dispose();
  out.rows[0]!.dispose();
  assert.throws(() => tidy(() => { zeros([3]); throw new Error("boom"); }), /boom/);
  assert.equal(memory().numTensors, before);
});

test("a disposed tensor cannot be used", () => {
  const t = zeros([2]);
  t.dispose();
  t.dispose(); // idempotent
  assert.throws(() => t.shape, /after dispose/);
});

test("the same seed gives the same draws", () => {
  assertNoLeak(() => {
    manualSeed(7);
    using a = randn([16]);
    manualSeed(7);
    using b = randn([16]);
    assert.deepEqual(a.toArray(), b.toArray());
  });
});

test("autograd: gradient of sum(x^2) is 2x; noGrad records nothing", () => {
  assertNoLeak(() => {
    using x = tensor([1, -2, 3], { dtype: "float64", requiresGrad: true });
    tidy(() => x.pow(2).sum().backward());
    using g = x.grad!;
    assert.deepEqual(g.toArray(), [2, -4, 6]);
    const y = noGrad(() => x.mul(3));
    assert.equal(y.requiresGrad, false);
    y.dispose();
  });
});

test("softmax, logsumexp and norm match PyTorch", () => {
  manualSeed(1);
  using x = randn([4, 7], { dtype: "float64" });
  const ref = runOracle("ops_smoke.py", { x });
  tidy(() => {
    assertClose(F.softmax(x, 1), oracleTensor(ref, "softmax"), { atol: 1e-12 });
    assertClose(x.logsumexp(1), oracleTensor(ref, "logsumexp"), { atol: 1e-12 });
    assertClose(x.norm(2, 1), oracleTensor(ref, "norm"), { atol: 1e-12 });
  });
});

test("the GC safety net frees a tensor nobody disposed", async () => {
  const v8 = await import("node:v8");
  const vm = await import("node:vm");
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  const before = memory();
  (() => {
    zeros([1000]); // created outside any scope and dropped: only the finalizer can free it
  })();
  await new Promise((r) => setImmediate(r)); // the safety net is armed on the next turn of the event loop
  for (let i = 0; i < 10 && memory().leakedViaGc === before.leakedViaGc; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(memory().leakedViaGc, before.leakedViaGc + 1);
  assert.equal(memory().numTensors, before.numTensors);
});

test("foreach ops equal the same op on each tensor; unbind; bad lists are errors", () => {
  assertNoLeak(() =>
    tidy(() => {
      manualSeed(3);
      // Mixed shapes and dtypes: ATen loops where its multi-tensor kernels do not apply.
      const xs = () => [randn([3, 4]), randn([5], { dtype: "float64" }), randn([2, 2, 2])];
      const a = xs();
      const b = xs();
      const s = [tensor(0.5), tensor(-2, { dtype: "float64" }), tensor(3)]; // 0-d factors, one per tensor
      const same = (got: readonly { toArray(): number[] }[], want: readonly { toArray(): number[] }[], what: string): void =>
        got.forEach((g, i) => assertClose(g.toArray(), want[i]!.toArray(), { atol: 1e-6, rtol: 1e-6, what: `${what}[${i}]` }));

      same(foreach.norm(a), a.map((t) => t.norm()), "norm");
      same(foreach.mul(a, 2), a.map((t) => t.mul(2)), "mul number");
      same(foreach.mul(a, s), a.map((t, i) => t.mul(s[i]!)), "mul list");

      let x = a.map((t) => t.clone());
      foreach.add_(x, b, -0.25);
      same(x, a.map((t, i) => t.add(b[i]!, -0.25)), "add_");
      x = a.map((t) => t.clone());
      foreach.mul_(x, s);
      same(x, a.map((t, i) => t.mul(s[i]!)), "mul_ list");
      x = a.map((t) => t.clone());
      foreach.mul_(x, 3);
      same(x, a.map((t) => t.mul(3)), "mul_ number");
      x = a.map((t) => t.clone());
      foreach.addScaled_(x, b, s, 2);
      same(x, a.map((t, i) => t.add(b[i]!.mul(s[i]!).mul(2))), "addScaled_ list");
      x = a.map((t) => t.clone());
      foreach.addScaled_(x, b, 0.5, 2);
      same(x, a.map((t, i) => t.add(b[i]!, 1)), "addScaled_ number");

      const parts = arange(0, 6).reshape(2, 3).unbind(1);
      assert.deepEqual(parts.map((t) => [t.shape, t.toArray()]), [[[2], [0, 3]], [[2], [1, 4]], [[2], [2, 5]]]);
      assert.deepEqual(tensor([4, 5]).unbind().map((t) => [t.shape, t.item()]), [[[], 4], [[], 5]]);

      assert.throws(() => foreach.norm([]), /foreach.norm: empty tensor list/);
      assert.throws(() => foreach.add_(a, b.slice(1)), /foreach.add_: lists of 3 and 2 tensors/);
      assert.throws(() => foreach.mul_(a, s.slice(0, 1)), /foreach.mul_: lists of 3 and 1 tensors/);
    }),
  );
});
