// Creating tensors: from JS data, filled, ranges, and seeded random draws.
import { torch } from "../native/load";
import { type DType, type Device, type TypedArray, checkDevice, dtypeCode } from "./dtype";
import { Tensor } from "./tensor";

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function opts(o: TensorOptions | undefined, fallback: DType = "float32"): [number, string] {
  return [dtypeCode(o?.dtype ?? fallback), checkDevice(o?.device ?? "cpu")];
}

function finish(t: Tensor, o: TensorOptions | undefined): Tensor {
  if (o?.requiresGrad) t.requiresGrad_(true);
  return t;
}

type NestedNumbers = number | boolean | NestedNumbers[];

function inferShape(data: NestedNumbers): number[] {
  const shape: number[] = [];
  let cur: NestedNumbers = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as NestedNumbers;
  }
  return shape;
}

const TYPED_FOR: Partial<Record<DType, new (n: number) => ArrayBufferView & ArrayLike<number>>> = {
  float32: Float32Array, float64: Float64Array, int32: Int32Array, uint8: Uint8Array, bool: Uint8Array,
};

/**
 * A tensor from JS data: nested arrays (shape inferred), or a TypedArray with `shape`. TypedArrays are copied
 * once into native memory; the default dtype follows the array type (Float32Array → float32, ...).
 */
export function tensor(data: NestedNumbers | TypedArray, o: TensorOptions & { shape?: number[] } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const dtype = o.dtype ?? typedDtype(data);
    const shape = o.shape ?? [data.length];
    const [, device] = opts(o);
    if (typedDtype(data) !== dtype && !(dtype === "bool" && data instanceof Uint8Array)) {
      // Different element type: go through the array's own dtype, then convert.
      using raw = new Tensor(torch.fromBytes(data, shape, dtypeCode(typedDtype(data)), device));
      return finish(raw.to(dtype), o);
    }
    return finish(new Tensor(torch.fromBytes(data, shape, dtypeCode(dtype), device)), o);
  }
  const shape = o.shape ?? inferShape(data);
  const flat = (Array.isArray(data) ? (data as unknown[]).flat(Infinity) : [data]) as (number | boolean)[];
  const expected = shape.reduce((a, b) => a * b, 1);
  if (flat.length !== expected) throw new RangeError(`tensor(): ${flat.length} values do not fill shape [${shape.join(", ")}] (ragged nested array?)`);
  for (const v of flat) if (typeof v !== "number" && typeof v !== "boolean") throw new TypeError(`tensor(): expected numbers or booleans, got ${typeof v}`);
  const dtype = o.dtype ?? (typeof flat[0] === "boolean" ? "bool" : "float32");
  const Ctor = TYPED_FOR[dtype];
  if (Ctor) {
    const buf = new Ctor(flat.length) as unknown as { [i: number]: number } & ArrayBufferView;
    for (let i = 0; i < flat.length; i++) buf[i] = Number(flat[i]);
    return finish(new Tensor(torch.fromBytes(buf, shape, dtypeCode(dtype), opts(o)[1])), o);
  }
  if (dtype === "int64") return finish(new Tensor(torch.fromBytes(BigInt64Array.from(flat, (v) => BigInt(Math.trunc(Number(v)))), shape, dtypeCode("int64"), opts(o)[1])), o);
  // bfloat16 / float16: build in float64, then cast natively.
  using f64 = new Tensor(torch.fromBytes(Float64Array.from(flat, Number), shape, dtypeCode("float64"), opts(o)[1]));
  return finish(f64.to(dtype), o);
}

function typedDtype(a: ArrayBufferView): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof BigInt64Array) return "int64";
  if (a instanceof Uint8Array) return "uint8";
  throw new TypeError(`tensor(): unsupported array type ${a.constructor.name}`);
}

export const scalar = (v: number, o?: TensorOptions): Tensor => finish(new Tensor(torch.scalarTensor(v, ...opts(o))), o);
export const empty = (shape: number[], o?: TensorOptions): Tensor => finish(new Tensor(torch.empty(shape, ...opts(o))), o);
export const zeros = (shape: number[], o?: TensorOptions): Tensor => finish(new Tensor(torch.zeros(shape, ...opts(o))), o);
export const ones = (shape: number[], o?: TensorOptions): Tensor => finish(new Tensor(torch.ones(shape, ...opts(o))), o);
export const full = (shape: number[], value: number, o?: TensorOptions): Tensor => finish(new Tensor(torch.full(shape, value, ...opts(o))), o);
export const eye = (n: number, o?: TensorOptions): Tensor => finish(new Tensor(torch.eye(n, ...opts(o))), o);
/** start, start+step, ... < end. Integer arguments give int64 unless a dtype is set. */
export function arange(start: number, end?: number, step = 1, o?: TensorOptions): Tensor {
  if (end === undefined) [start, end] = [0, start];
  const ints = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  return finish(new Tensor(torch.arange(start, end, step, ...opts(o, ints ? "int64" : "float32"))), o);
}
export const linspace = (start: number, end: number, steps: number, o?: TensorOptions): Tensor =>
  finish(new Tensor(torch.linspace(start, end, steps, ...opts(o))), o);

// Random draws come from the generator that manualSeed() seeds.
export const rand = (shape: number[], o?: TensorOptions): Tensor => finish(new Tensor(torch.rand(shape, ...opts(o))), o);
export const randn = (shape: number[], o?: TensorOptions): Tensor => finish(new Tensor(torch.randn(shape, ...opts(o))), o);
/** Integers uniform in [low, high). */
export const randint = (low: number, high: number, shape: number[], o?: TensorOptions): Tensor =>
  finish(new Tensor(torch.randint(low, high, shape, ...opts(o, "int64"))), o);
export const randperm = (n: number, o?: TensorOptions): Tensor => finish(new Tensor(torch.randperm(n, ...opts(o, "int64"))), o);
export const zerosLike = (t: Tensor): Tensor => new Tensor(torch.zerosLike(t.id));
export const onesLike = (t: Tensor): Tensor => new Tensor(torch.onesLike(t.id));
export const emptyLike = (t: Tensor): Tensor => new Tensor(torch.emptyLike(t.id));
export const fullLike = (t: Tensor, v: number): Tensor => new Tensor(torch.fullLike(t.id, v));
export const randLike = (t: Tensor): Tensor => new Tensor(torch.randLike(t.id));
export const randnLike = (t: Tensor): Tensor => new Tensor(torch.randnLike(t.id));
/** Draws 0/1 with the probabilities in p (same shape). */
export const bernoulli = (p: Tensor): Tensor => new Tensor(torch.bernoulli(p.id));
/** n indices per row of p (rows of non-negative weights). */
export const multinomial = (p: Tensor, n: number, replacement = false): Tensor => new Tensor(torch.multinomial(p.id, n, replacement));

// ---- joining and choosing ----

export const cat = (ts: Tensor[], dim = 0): Tensor => new Tensor(torch.cat(ts.map((t) => t.id), dim));
export const stack = (ts: Tensor[], dim = 0): Tensor => new Tensor(torch.stack(ts.map((t) => t.id), dim));
export const where = (cond: Tensor, a: Tensor, b: Tensor): Tensor => new Tensor(torch.where(cond.id, a.id, b.id));
export const einsum = (eq: string, ...ts: Tensor[]): Tensor => new Tensor(torch.einsum(eq, ts.map((t) => t.id)));
/** beta * c + alpha * (a @ b) */
export const addmm = (c: Tensor, a: Tensor, b: Tensor, beta = 1, alpha = 1): Tensor => new Tensor(torch.addmm(c.id, a.id, b.id, beta, alpha));
