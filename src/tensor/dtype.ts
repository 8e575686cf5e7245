// Element types and devices as seerkit names them, and their codes on the native side (native/src/addon.cc).

/** Element types, in the order of their native codes. */
export const DTYPES = ["float32", "float64", "bfloat16", "float16", "int64", "int32", "uint8", "bool"] as const;
export type DType = (typeof DTYPES)[number];

const CODES = new Map<DType, number>(DTYPES.map((d, i) => [d, i]));

export function dtypeCode(d: DType): number {
  const c = CODES.get(d);
  if (c === undefined) throw new TypeError(`unknown dtype '${String(d)}'; expected one of ${DTYPES.join(", ")}`);
  return c;
}

export function dtypeFromCode(code: number): DType {
  const d = DTYPES[code];
  if (d === undefined) throw new TypeError(`unknown dtype code ${code}`);
  return d;
}

export const isFloating = (d: DType): boolean => d === "float32" || d === "float64" || d === "bfloat16" || d === "float16";

/** Bytes per element. */
export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4, float64: 8, bfloat16: 2, float16: 2, int64: 8, int32: 4, uint8: 1, bool: 1,
};

/** The TypedArray that holds a dtype's elements as JS reads them (half types read as float32). */
export type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

/** A device: "cpu", "cuda" (the current CUDA device) or "cuda:N". */
export type Device = "cpu" | "cuda" | `cuda:${number}`;

export function checkDevice(d: string): Device {
  if (d === "cpu" || d === "cuda" || /^cuda:\d+$/.test(d)) return d as Device;
  throw new TypeError(`unknown device '${d}'; expected "cpu", "cuda" or "cuda:N"`);
}
