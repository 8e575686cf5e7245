// Assertions on tensors, shared by the test files.
import * as assert from "node:assert/strict";
import { memory, Tensor } from "../../src/tensor";

/** max |a - b| <= atol + rtol * |b| elementwise, with the worst element named on failure. */
export function assertClose(
  actual: Tensor | ArrayLike<number>,
  expected: Tensor | ArrayLike<number>,
  o: { atol?: number; rtol?: number; what?: string } = {},
): void {
  const a = actual instanceof Tensor ? actual.toArray() : Array.from(actual);
  const b = expected instanceof Tensor ? expected.toArray() : Array.from(expected);
  if (actual instanceof Tensor && expected instanceof Tensor) assert.deepEqual(actual.shape, expected.shape, `${o.what ?? ""} shape`);
  assert.equal(a.length, b.length, `${o.what ?? "tensor"}: ${a.length} elements, expected ${b.length}`);
  const atol = o.atol ?? 1e-5;
  const rtol = o.rtol ?? 1e-5;
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < a.length; i++) {
    const err = Math.abs(a[i]! - b[i]!) - rtol * Math.abs(b[i]!);
    if (!(err <= atol) && (worst < 0 || err > worstErr || Number.isNaN(err))) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) assert.fail(`${o.what ?? "tensor"}: element ${worst} is ${a[worst]}, expected ${b[worst]} (atol ${atol}, rtol ${rtol})`);
}

/** Runs fn and asserts that it leaves the live native tensor count as it found it. */
export function assertNoLeak<R>(fn: () => R, what = "block"): R {
  const before = memory().numTensors;
  const r = fn();
  assert.equal(memory().numTensors, before, `${what} leaked ${memory().numTensors - before} native tensors`);
  return r;
}
