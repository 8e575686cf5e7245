// safetensors I/O: bit-exact round trips for every dtype, files checked and written by an independent Python
// parser (tests/oracle/safetensors_spec.py), malformed files, atomic writes, and loading into a module.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  SafetensorsError, disposeTensors, fromRawBytes, loadIntoModule, loadSafetensors, readSafetensorsHeader, saveSafetensors,
} from "../src/io/safetensors";
import { Linear } from "../src/nn";
import { DTYPES, DTYPE_BYTES, type DType, type Tensor, manualSeed, randn, tidy } from "../src/tensor";
import { assertNoLeak } from "./helpers/assert";
import { oracleTensor, runOracle } from "./helpers/oracle";

const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-st-"));

/** Deterministic pseudo-random bytes (a 32-bit LCG), so failures reproduce. */
function noiseBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

/**
 * One tensor per dtype holding awkward bit patterns: every one of the 65,536 half patterns (NaN payloads,
 * subnormals, infinities, -0), random bytes for the wider types, 0/1 for bool; plus a scalar and an empty tensor.
 */
function awkwardTensors(): Map<string, Tensor> {
  const m = new Map<string, Tensor>();
  DTYPES.forEach((dtype, i) => {
    if (dtype === "bfloat16" || dtype === "float16") {
      const all = new Uint16Array(65536).map((_, k) => k);
      m.set(`t.${dtype}`, fromRawBytes(new Uint8Array(all.buffer), [256, 16, 16], dtype));
    } else if (dtype === "bool") {
      m.set("t.bool", fromRawBytes(noiseBytes(60, i).map((b) => b & 1), [3, 4, 5], dtype));
    } else {
      m.set(`t.${dtype}`, fromRawBytes(noiseBytes(7 * 5 * DTYPE_BYTES[dtype], i), [7, 5], dtype));
    }
  });
  m.set("scalar", fromRawBytes(noiseBytes(8, 99), [], "float64"));
  m.set("empty", fromRawBytes(new Uint8Array(0), [0, 3], "float32"));
  return m;
}

/** The bytes of a file's tensors must be exactly the originals'. */
function assertSameTensors(actual: Map<string, Tensor>, expected: Map<string, Tensor>): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [key, e] of expected) {
    const a = actual.get(key)!;
    assert.equal(a.dtype, e.dtype, key);
    assert.deepEqual(a.shape, e.shape, key);
    assert.ok(Buffer.from(a.bytes()).equals(Buffer.from(e.bytes())), `${key}: bytes differ`);
  }
}

/** An oracle tensor in exchange form (halves as int32 bit patterns, bool as uint8) as raw bytes of dtype. */
function oracleBytes(o: Tensor, dtype: DType): Buffer {
  if (dtype === "bfloat16" || dtype === "float16") return Buffer.from(Int16Array.from(o.toArray()).buffer);
  return Buffer.from(o.bytes());
}

test("every dtype round-trips bit for bit, with metadata", () => {
  const dir = tmpDir();
  const file = path.join(dir, "all.safetensors");
  assertNoLeak(() => {
    const tensors = awkwardTensors();
    saveSafetensors(file, tensors, { format: "pt", note: "ünïcode ✓" });
    const loaded = loadSafetensors(file);
    assertSameTensors(loaded, tensors);
    assert.deepEqual(readSafetensorsHeader(file).metadata, { format: "pt", note: "ünïcode ✓" });
    disposeTensors(loaded);
    disposeTensors(tensors);
  });
  const raw = fs.readFileSync(file);
  const headerLength = Number(raw.readBigUInt64LE(0));
  assert.equal((8 + headerLength) % 8, 0, "header padded to a multiple of 8");
  assert.deepEqual(fs.readdirSync(dir), ["all.safetensors"], "no temp file left");
  fs.rmSync(dir, { recursive: true });
});

test("a non-contiguous tensor that requires grad is saved as its row-major values", () => {
  const dir = tmpDir();
  const file = path.join(dir, "t.safetensors");
  assertNoLeak(() => {
    manualSeed(0);
    using a = randn([3, 4], { requiresGrad: true });
    using at = a.t(); // (4, 3), not contiguous
    saveSafetensors(file, new Map([["at", at]]));
    const loaded = loadSafetensors(file);
    assert.deepEqual(loaded.get("at")!.shape, [4, 3]);
    assert.deepEqual(loaded.get("at")!.toArray(), at.toArray());
    disposeTensors(loaded);
  });
  fs.rmSync(dir, { recursive: true });
});

test("an independent Python parser reads our file: layout, values and metadata", () => {
  const dir = tmpDir();
  const file = path.join(dir, "ours.safetensors");
  const metadata = { format: "pt", step: "12" };
  assertNoLeak(() => {
    const tensors = awkwardTensors();
    saveSafetensors(file, tensors, metadata);
    const ref = runOracle("safetensors_check.py", {}, { mode: "read", file, metadata });
    assert.deepEqual(Object.keys(ref).sort(), [...tensors.keys()].sort());
    tidy(() => {
      for (const [key, t] of tensors) {
        const o = oracleTensor(ref, key);
        assert.deepEqual(o.shape, t.shape, key);
        assert.ok(oracleBytes(o, t.dtype).equals(Buffer.from(t.bytes())), `${key}: Python read other bytes`);
      }
    });
    disposeTensors(tensors);
  });
  fs.rmSync(dir, { recursive: true });
});

test("we read a file the Python writer laid out differently (reverse order, pretty header)", () => {
  const dir = tmpDir();
  const file = path.join(dir, "theirs.safetensors");
  assertNoLeak(() => {
    const ref = runOracle("safetensors_check.py", {}, { mode: "write", file });
    const header = readSafetensorsHeader(file);
    assert.deepEqual(header.metadata, { format: "pt", epoch: "3" });
    const expectedTypes: Record<string, DType> = {
      "conv.weight": "float32", half: "float16", brain: "bfloat16", counts: "int64", mask: "bool", pi: "float64", none: "int32", bytes: "uint8",
    };
    const loaded = loadSafetensors(file);
    assert.deepEqual([...loaded.keys()].sort(), Object.keys(expectedTypes).sort());
    tidy(() => {
      for (const [key, t] of loaded) {
        const o = oracleTensor(ref, key);
        assert.equal(t.dtype, expectedTypes[key], key);
        assert.deepEqual(t.shape, o.shape, key);
        assert.ok(oracleBytes(o, t.dtype).equals(Buffer.from(t.bytes())), `${key}: bytes differ`);
      }
    });
    assert.deepEqual(loaded.get("counts")!.toArray(), [2 ** 40 + 3, -7, 0]);
    assert.deepEqual(loaded.get("half")!.toArray(), [1.5, -0, Infinity, 65504, 5.960464477539063e-8]);
    disposeTensors(loaded);
  });
  fs.rmSync(dir, { recursive: true });
});

/** Writes a file from a header object and a data section, bypassing every check of saveSafetensors. */
function writeRaw(file: string, header: unknown, data: Uint8Array, headerText = JSON.stringify(header)): void {
  const json = Buffer.from(headerText, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, data]));
}

test("malformed files are refused with errors that name the file and the tensor", () => {
  const dir = tmpDir();
  const file = path.join(dir, "bad.safetensors");
  const f32 = (shape: number[], begin: number, end: number): unknown => ({ dtype: "F32", shape, data_offsets: [begin, end] });
  const refused = (pattern: RegExp, key?: string): void =>
    assertNoLeak(() => {
      assert.throws(() => loadSafetensors(file), (e: Error) => {
        assert.ok(e instanceof SafetensorsError, `${e.name}: ${e.message}`);
        assert.ok(e.message.includes(file), `does not name the file: ${e.message}`);
        if (key !== undefined) assert.ok(e.message.includes(`tensor '${key}'`), `does not name '${key}': ${e.message}`);
        assert.match(e.message, pattern);
        return true;
      });
    });

  assert.throws(() => loadSafetensors(path.join(dir, "missing.safetensors")), /missing\.safetensors: cannot open/);

  // A valid file, then cut short in its length field, its header and its data.
  assertNoLeak(() => {
    const t = fromRawBytes(noiseBytes(24, 1), [2, 3], "float32");
    saveSafetensors(file, new Map([["w", t]]));
    t.dispose();
  });
  const good = fs.readFileSync(file);
  fs.writeFileSync(file, good.subarray(0, 5));
  refused(/truncated: 5 bytes/);
  fs.writeFileSync(file, good.subarray(0, 20));
  refused(/header length \d+ exceeds/);
  fs.writeFileSync(file, good.subarray(0, good.length - 4));
  refused(/span 24 bytes|out of range/, "w");

  // Corrupt headers.
  writeRaw(file, null, new Uint8Array(0), "{\"w\": {\"dtype\": ");
  refused(/corrupt header: not valid UTF-8 JSON/);
  writeRaw(file, null, new Uint8Array(0), "[1, 2]");
  refused(/not a JSON object/);
  const len = Buffer.alloc(16);
  len.writeBigUInt64LE(1n << 40n);
  fs.writeFileSync(file, len);
  refused(/header length 1099511627776 exceeds/);

  // Entries that do not describe their data.
  writeRaw(file, { w: { dtype: "F8_E4M3", shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2));
  refused(/unsupported dtype "F8_E4M3"/, "w");
  writeRaw(file, { w: f32([2], 0, 8), v: f32([2], 16, 24) }, new Uint8Array(24));
  refused(/leave a gap after byte 8/, "v");
  writeRaw(file, { w: f32([2], 0, 8), v: f32([2], 4, 12) }, new Uint8Array(12));
  refused(/overlap the previous tensor/, "v");
  writeRaw(file, { w: f32([3], 0, 8) }, new Uint8Array(8));
  refused(/span 8 bytes but shape \[3\] of float32 needs 12/, "w");
  writeRaw(file, { w: f32([2], 0, 8) }, new Uint8Array(12));
  refused(/cover 8 bytes of data but the file holds 12/);
  writeRaw(file, { w: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, new Uint8Array(8));
  refused(/shape \[-2\] is not a list of non-negative integers/, "w");
  writeRaw(file, { __metadata__: { epoch: 3 } }, new Uint8Array(0));
  refused(/__metadata__ 'epoch' is not a string/);
  fs.rmSync(dir, { recursive: true });
});

test("saving is atomic: no temp file is left, and a failed save leaves the old file untouched", () => {
  const dir = tmpDir();
  const file = path.join(dir, "ckpt.safetensors");
  assertNoLeak(() => {
    using a = fromRawBytes(noiseBytes(16, 3), [4], "float32");
    saveSafetensors(file, new Map([["a", a]]));
    const first = fs.readFileSync(file);
    saveSafetensors(file, new Map([["a", a], ["b", a]])); // overwrites
    assert.deepEqual(fs.readdirSync(dir), ["ckpt.safetensors"]);
    const second = fs.readFileSync(file);
    assert.ok(!first.equals(second));

    using gone = fromRawBytes(noiseBytes(4, 3), [1], "float32");
    gone.dispose();
    assert.throws(() => saveSafetensors(file, new Map([["gone", gone]])), /ckpt\.safetensors: tensor 'gone': the tensor is disposed/);
    assert.throws(() => saveSafetensors(file, new Map([["__metadata__", a]])), /reserved/);
    assert.ok(fs.readFileSync(file).equals(second), "a refused save leaves the file as it was");

    // A failure after the temp file was written (renaming onto a directory) removes the temp file.
    const target = path.join(dir, "a-directory");
    fs.mkdirSync(target);
    assert.throws(() => saveSafetensors(target, new Map([["a", a]])));
    assert.deepEqual(fs.readdirSync(dir).sort(), ["a-directory", "ckpt.safetensors"]);
  });
  fs.rmSync(dir, { recursive: true });
});

test("loadIntoModule fills a module from a state-dict file and frees the loaded copies", () => {
  const dir = tmpDir();
  const file = path.join(dir, "linear.safetensors");
  assertNoLeak(() => {
    manualSeed(8);
    using a = new Linear(5, 3);
    using b = new Linear(5, 3);
    saveSafetensors(file, a.stateDict());
    assert.deepEqual(loadIntoModule(b, file), { missingKeys: [], unexpectedKeys: [] });
    assert.deepEqual(b.weight.toArray(), a.weight.toArray());
    assert.deepEqual(b.bias!.toArray(), a.bias!.toArray());
    using c = new Linear(5, 4);
    assert.throws(() => loadIntoModule(c, file), /size mismatch for 'weight': the module has shape \[4, 5\], the state dict has \[3, 5\]/);
  });
  fs.rmSync(dir, { recursive: true });
});
