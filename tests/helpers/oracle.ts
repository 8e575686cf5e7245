// Runs a Python script under Debian's python3-torch as the independent oracle for our numerics.
//
// Exchange format (a temp folder): manifest.json maps a name to {shape, dtype, file}; each file holds the raw
// little-endian elements. tests/oracle/exchange.py reads and writes the same format on the Python side.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { type DType, Tensor, tensor } from "../../src/tensor";
import { PACKAGE_ROOT } from "../../src/util/paths";

/** Debian's interpreter, which has python3-torch (a pyenv `python3` on PATH may not). */
export const PYTHON = process.env.SEERKIT_PYTHON ?? "/usr/bin/python3";

export interface OracleResult {
  [name: string]: { shape: number[]; dtype: DType; data: Float64Array | Float32Array | BigInt64Array | Uint8Array | Int32Array };
}

function writeTensors(dir: string, tensors: Record<string, Tensor>): void {
  const manifest: Record<string, { shape: number[]; dtype: DType; file: string }> = {};
  for (const [name, t] of Object.entries(tensors)) {
    const file = `${name}.bin`;
    fs.writeFileSync(path.join(dir, file), t.bytes());
    manifest[name] = { shape: t.shape, dtype: t.dtype, file };
  }
  fs.writeFileSync(path.join(dir, "inputs.json"), JSON.stringify(manifest));
}

function readResults(dir: string): OracleResult {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "outputs.json"), "utf8")) as Record<string, { shape: number[]; dtype: DType; file: string }>;
  const out: OracleResult = {};
  for (const [name, m] of Object.entries(manifest)) {
    const buf = fs.readFileSync(path.join(dir, m.file));
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    const data =
      m.dtype === "float64" ? new Float64Array(ab) :
      m.dtype === "float32" ? new Float32Array(ab) :
      m.dtype === "int64" ? new BigInt64Array(ab) :
      m.dtype === "int32" ? new Int32Array(ab) : new Uint8Array(ab);
    out[name] = { shape: m.shape, dtype: m.dtype, data };
  }
  return out;
}

/**
 * Runs tests/oracle/<script> with the given input tensors and extra JSON arguments; returns what the script saved.
 * The script uses exchange.py: `inputs, args = load()` ... `save({"name": tensor})`.
 */
export function runOracle(script: string, inputs: Record<string, Tensor>, args: unknown = {}): OracleResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-oracle-"));
  try {
    writeTensors(dir, inputs);
    fs.writeFileSync(path.join(dir, "args.json"), JSON.stringify(args));
    execFileSync(PYTHON, [path.join(PACKAGE_ROOT, "tests", "oracle", script), dir], { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
    return readResults(dir);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`oracle ${script} failed: ${err.stderr ?? err.message}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** An oracle output as a Tensor (caller disposes). */
export function oracleTensor(r: OracleResult, name: string): Tensor {
  const o = r[name];
  if (!o) throw new Error(`oracle produced no '${name}' (has: ${Object.keys(r).join(", ")})`);
  return tensor(o.data as Float32Array, { shape: o.shape, dtype: o.dtype });
}
