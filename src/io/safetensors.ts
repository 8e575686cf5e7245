// Reading and writing .safetensors files, the checkpoint format of Hugging Face's safetensors
// (https://github.com/huggingface/safetensors, format described in its README):
//
//   [8 bytes]  N, the header length, unsigned 64-bit little-endian
//   [N bytes]  a UTF-8 JSON object: {"__metadata__": {string: string}?, "<name>": {"dtype": "F32", "shape": [..],
//              "data_offsets": [begin, end]}, ...}, padded with spaces to a multiple of 8 (as the reference writer)
//   [rest]     the tensors' raw little-endian row-major bytes; offsets count from the start of this section and
//              the tensors tile it exactly, without gaps or overlap
//
// We write tensors in sorted-key order and read any order the format allows. Writes are atomic (temp file, fsync,
// rename), and files are read and written one tensor at a time, so a checkpoint never has to fit in one JS buffer.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { torch } from "../native/load";
import { DTYPE_BYTES, type DType, type Device, checkDevice, dtypeCode } from "../tensor/dtype";
import { Tensor } from "../tensor/tensor";
import type { LoadStateDictResult, Module } from "../nn/module";

/** safetensors dtype codes for the dtypes seerkit has. */
const CODE_OF: Record<DType, string> = {
  float32: "F32", float64: "F64", bfloat16: "BF16", float16: "F16", int64: "I64", int32: "I32", uint8: "U8", bool: "BOOL",
};
const DTYPE_OF = new Map<string, DType>(Object.entries(CODE_OF).map(([d, c]) => [c, d as DType]));

/** The reference implementation's cap on the header (100 MB): a larger length means a corrupt file. */
const MAX_HEADER_BYTES = 100_000_000;
/** Largest single read or write (fs calls take at most 2 GiB - 1 bytes). */
const IO_CHUNK = 1 << 30;

/** A malformed file or a tensor that cannot be saved; names the file and, where one is at fault, the tensor. */
export class SafetensorsError extends Error {
  override name = "SafetensorsError";
  constructor(readonly file: string, message: string, readonly key?: string) {
    super(`${file}: ${key === undefined ? "" : `tensor '${key}': `}${message}`);
  }
}

/** One tensor's entry in the header. */
export interface SafetensorsEntry {
  dtype: DType;
  shape: number[];
  /** [begin, end) in bytes, from the start of the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  /** In the order of the header's JSON. */
  tensors: Map<string, SafetensorsEntry>;
  /** Where the data section starts in the file: 8 + the header length. */
  dataStart: number;
}

const numelOf = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);
const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function checkLittleEndian(): void {
  if (os.endianness() !== "LE") throw new Error("safetensors: raw tensor bytes are little-endian; this host is big-endian");
}

// ---- writing ----

/**
 * Writes tensors (and optional string metadata) to file as safetensors. Tensors are read back from any device
 * as their exact bytes. The file appears complete or not at all: the data goes to `<file>.tmp-<pid>`, is
 * fsync-ed, and is renamed over file.
 */
export function saveSafetensors(file: string, tensors: Map<string, Tensor>, metadata?: Record<string, string>): void {
  checkLittleEndian();
  const keys = [...tensors.keys()].sort(byCodeUnits);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new SafetensorsError(file, `metadata '${k}' must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const key of keys) {
    if (key === "" || key === "__metadata__") throw new SafetensorsError(file, "this name is reserved or empty", key);
    const t = tensors.get(key)!;
    if (t.isDisposed) throw new SafetensorsError(file, "the tensor is disposed", key);
    const nbytes = t.nbytes;
    header[key] = { dtype: CODE_OF[t.dtype], shape: t.shape, data_offsets: [offset, offset + nbytes] };
    offset += nbytes;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Buffer.alloc(Math.ceil(json.length / 8) * 8, 0x20); // spaces
  json.copy(padded);
  const lengthField = Buffer.alloc(8);
  lengthField.writeBigUInt64LE(BigInt(padded.length));

  atomicWrite(file, (fd) => {
    writeAll(fd, lengthField);
    writeAll(fd, padded);
    for (const key of keys) writeAll(fd, tensors.get(key)!.bytes());
  });
}

/** Runs write(fd) on `<file>.tmp-<pid>`, fsyncs it and renames it to file; removes the temp file on failure. */
function atomicWrite(file: string, write: (fd: number) => void): void {
  const tmp = `${file}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, "w");
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  syncDir(path.dirname(file));
}

/** Makes the rename itself durable; not every platform can fsync a directory, which is harmless. */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) {
    done += fs.writeSync(fd, bytes, done, Math.min(IO_CHUNK, bytes.length - done));
  }
}

// ---- reading ----

/** Reads and validates the header of a safetensors file (no tensor data). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openForRead(file);
  try {
    return readHeader(file, fd, fs.fstatSync(fd).size);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Loads every tensor of a safetensors file, bit-exact, onto device (CPU by default). The caller owns the tensors
 * (disposeTensors() frees them all); on any error none are left allocated.
 */
export function loadSafetensors(file: string, o: { device?: Device } = {}): Map<string, Tensor> {
  checkLittleEndian();
  const device = checkDevice(o.device ?? "cpu");
  const fd = openForRead(file);
  const out = new Map<string, Tensor>();
  try {
    const header = readHeader(file, fd, fs.fstatSync(fd).size);
    for (const [key, e] of header.tensors) {
      const [begin, end] = e.dataOffsets;
      const bytes = readExactly(file, fd, header.dataStart + begin, end - begin);
      out.set(key, fromRawBytes(bytes, e.shape, e.dtype, device));
    }
    return out;
  } catch (e) {
    disposeTensors(out);
    throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** Frees every tensor of a map (what loadSafetensors returns). */
export function disposeTensors(tensors: Map<string, Tensor>): void {
  for (const t of tensors.values()) t.dispose();
}

/**
 * Loads a safetensors file into a module's parameters and buffers (Module.loadStateDict: in place, shapes and
 * dtypes must match; strict by default). The loaded copies are freed afterwards.
 */
export function loadIntoModule(module: Module, file: string, o: { strict?: boolean } = {}): LoadStateDictResult {
  const sd = loadSafetensors(file);
  try {
    return module.loadStateDict(sd, o);
  } finally {
    disposeTensors(sd);
  }
}

/**
 * A tensor holding exactly these bytes (little-endian, row-major) as elements of dtype: a verbatim copy, so it
 * also builds bfloat16 / float16 tensors from their bit patterns, which tensor() cannot.
 */
export function fromRawBytes(bytes: Uint8Array, shape: number[], dtype: DType, device: Device = "cpu"): Tensor {
  return new Tensor(torch.fromBytes(bytes, shape, dtypeCode(dtype), device));
}

function openForRead(file: string): number {
  try {
    return fs.openSync(file, "r");
  } catch (e) {
    throw new SafetensorsError(file, `cannot open: ${(e as Error).message}`);
  }
}

function readExactly(file: string, fd: number, position: number, length: number): Uint8Array {
  const buf = Buffer.allocUnsafe(length);
  for (let done = 0; done < length; ) {
    const n = fs.readSync(fd, buf, done, Math.min(IO_CHUNK, length - done), position + done);
    if (n === 0) throw new SafetensorsError(file, `file ended after ${position + done} bytes, expected at least ${position + length}`);
    done += n;
  }
  return buf;
}

function readHeader(file: string, fd: number, fileSize: number): SafetensorsHeader {
  const fail = (message: string, key?: string): never => {
    throw new SafetensorsError(file, message, key);
  };
  if (fileSize < 8) fail(`truncated: ${fileSize} bytes, shorter than the 8-byte header length`);
  const n = Buffer.from(readExactly(file, fd, 0, 8)).readBigUInt64LE();
  if (n > BigInt(fileSize - 8)) fail(`truncated or corrupt: header length ${n} exceeds the ${fileSize - 8} bytes after the length field`);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`corrupt: header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLen = Number(n);
  const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.decode(readExactly(file, fd, 8, headerLen)));
  } catch (e) {
    fail(`corrupt header: not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) fail("corrupt header: not a JSON object");
  const dataStart = 8 + headerLen;
  const dataLength = fileSize - dataStart;

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (key === "__metadata__") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) fail("__metadata__ is not a JSON object");
      for (const [mk, mv] of Object.entries(value as Record<string, unknown>)) {
        if (typeof mv !== "string") fail(`__metadata__ '${mk}' is not a string`);
        metadata[mk] = mv as string;
      }
      continue;
    }
    tensors.set(key, parseEntry(value, dataLength, (m) => fail(m, key)));
  }

  // The tensors must tile the data section: sorted by offset, each starts where the previous one ended.
  const spans = [...tensors].sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let at = 0;
  for (const [key, e] of spans) {
    if (e.dataOffsets[0] !== at) fail(`data_offsets [${e.dataOffsets.join(", ")}] ${e.dataOffsets[0] < at ? "overlap the previous tensor" : `leave a gap after byte ${at}`}`, key);
    at = e.dataOffsets[1];
  }
  if (at !== dataLength) fail(`the tensors cover ${at} bytes of data but the file holds ${dataLength} after the header`);
  return { metadata, tensors, dataStart };
}

function parseEntry(value: unknown, dataLength: number, fail: (message: string) => never): SafetensorsEntry {
  if (value === null || typeof value !== "object" || Array.isArray(value)) fail("entry is not a JSON object");
  const { dtype: code, shape, data_offsets: offsets } = value as Record<string, unknown>;
  const dtype = typeof code === "string" ? DTYPE_OF.get(code) : undefined;
  if (!dtype) fail(`unsupported dtype ${JSON.stringify(code)} (seerkit reads ${[...DTYPE_OF.keys()].join(", ")})`);
  const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  if (!Array.isArray(shape) || !shape.every(isCount)) fail(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    fail(`data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > dataLength) fail(`data_offsets [${begin}, ${end}] out of range for ${dataLength} bytes of data`);
  const need = numelOf(shape as number[]) * DTYPE_BYTES[dtype!];
  if (end - begin !== need) fail(`data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape [${(shape as number[]).join(", ")}] of ${dtype} needs ${need}`);
  return { dtype: dtype!, shape: shape as number[], dataOffsets: [begin, end] };
}
