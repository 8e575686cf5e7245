// Image decoding for the data pipeline: bytes in, 8-bit sRGB RGB pixels out, with bad files counted and skipped.
//
// Decoding is sharp (libvips) with the pipeline .rotate() (EXIF orientation) → .flatten() on black (alpha) →
// .toColourspace("srgb") (grey, CMYK, 16-bit, embedded ICC) → optional .resize() → .raw({ depth: "uchar" }).
// Like torchvision's `pil_loader` + `convert("RGB")`, with two differences: alpha is composited on black instead of
// being dropped, and a file that cannot be decoded is not an exception for the run: `decodeRecord` counts it by
// reason in a `DecodeStats`, logs it once, and returns undefined (the SEER data loader also skips bad images).
// Only the bytes decide the format; file extensions are never trusted.
import * as fs from "fs";
import sharp from "sharp";
import type { ImageRecord } from "./sources";

/** Decoded pixels: (H, W, 3) uint8 sRGB, row-major, channels interleaved (R, G, B). */
export interface DecodedImage {
  width: number;
  height: number;
  /** H * W * 3 bytes. */
  data: Uint8Array;
}

/** Why a record yielded no image. */
export type SkipReason =
  | "empty" // zero bytes
  | "not_image" // bytes of no image format we know (text, HTML, random bytes)
  | "unsupported" // a known image format this sharp build cannot decode (BMP, HEIC/HEVC, JPEG XL, ...)
  | "truncated" // an image cut short (no end marker, or the decoder ran out of data)
  | "corrupt" // an image with damaged data or headers
  | "too_large" // more input pixels than `limitInputPixels` (decompression-bomb guard)
  | "unreadable" // the file could not be read: missing, dangling link, directory, permissions, I/O error
  | "no_image"; // a record without image bytes (a WebDataset sample with no image member)

export const SKIP_REASONS: readonly SkipReason[] = ["empty", "not_image", "unsupported", "truncated", "corrupt", "too_large", "unreadable", "no_image"];

/** sharp's `failOn`: the least severe libvips message that aborts a decode. */
export type FailOn = "none" | "truncated" | "error" | "warning";

export interface DecodeOptions {
  /** Refuse images with more than this many input pixels (width × height), before decoding them. Default 2^28. */
  limitInputPixels?: number;
  /** Resize at decode so that the short side is this many pixels, aspect ratio kept (JPEG shrink-on-load applies). */
  resizeShortSide?: number;
  /** With `resizeShortSide`, also enlarge images whose short side is smaller. Default false. */
  upscale?: boolean;
  /** How strict to be with damaged data (sharp's failOn). Default "warning": corrupt JPEG data is a skip. */
  failOn?: FailOn;
}

export const DEFAULT_LIMIT_INPUT_PIXELS = 2 ** 28;

/** A decode that failed, with the reason it is counted under. */
export class DecodeError extends Error {
  constructor(readonly reason: SkipReason, message: string) {
    super(message);
    this.name = "DecodeError";
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Format sniffing from magic bytes

/** Formats recognised from their first bytes. */
export type SniffedFormat = "jpeg" | "png" | "gif" | "webp" | "tiff" | "avif" | "heic" | "bmp" | "jxl" | "jp2";

/** Formats that sharp's prebuilt binaries decode (sharp.format[...].input.buffer; HEIF only with AV1, i.e. AVIF). */
const DECODABLE = new Set<SniffedFormat>(["jpeg", "png", "gif", "webp", "tiff", "avif"]);

/** How many leading bytes `sniffFormat` looks at. */
export const SNIFF_BYTES = 32;

/** The image format of some bytes from their magic number, or undefined. Needs the first SNIFF_BYTES bytes. */
export function sniffFormat(b: Uint8Array): SniffedFormat | undefined {
  const ascii = (start: number, end: number): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1", start, end);
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  if (b.length >= 8 && ascii(0, 8) === "\x89PNG\r\n\x1a\n") return "png";
  if (b.length >= 6 && (ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a")) return "gif";
  if (b.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "webp";
  if (b.length >= 4 && (ascii(0, 4) === "II*\0" || ascii(0, 4) === "MM\0*" || ascii(0, 4) === "II+\0" || ascii(0, 4) === "MM\0+")) return "tiff";
  if (b.length >= 12 && ascii(4, 8) === "ftyp") {
    // ISO-BMFF: the major brand and the compatible brands name the codec.
    const size = Math.min(b.length, ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0);
    const brands: string[] = [];
    for (let i = 8; i + 4 <= size; i += 4) if (i !== 12) brands.push(ascii(i, i + 4));
    if (brands.some((x) => x === "avif" || x === "avis")) return "avif";
    if (brands.some((x) => ["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1"].includes(x))) return "heic";
    return undefined;
  }
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0x0a) return "jxl";
  if (b.length >= 12 && ascii(4, 12) === "JXL \r\n\x87\n") return "jxl";
  if (b.length >= 12 && ascii(4, 8) === "jP  ") return "jp2";
  if (b.length >= 14 && ascii(0, 2) === "BM" && Buffer.from(b.buffer, b.byteOffset, b.byteLength).readUInt32LE(2) >= 14) return "bmp";
  return undefined;
}

/**
 * Whether an image that failed to decode looks cut short, from its container: JPEG without an EOI marker near the
 * end, PNG without IEND, GIF without its trailer, WebP/TIFF whose header points past the end. undefined: no opinion.
 */
function looksTruncated(b: Buffer, format: SniffedFormat): boolean | undefined {
  const tail = b.subarray(Math.max(0, b.length - 64));
  switch (format) {
    case "jpeg": return !tail.includes(Buffer.from([0xff, 0xd9]));
    case "png": return !tail.includes(Buffer.from("IEND", "latin1"));
    case "gif": return !tail.includes(0x3b);
    case "webp": return b.length >= 8 && b.readUInt32LE(4) + 8 > b.length;
    case "tiff": {
      if (b.length < 8 || b[2] === 0x2b || b[3] === 0x2b) return undefined; // BigTIFF: no opinion
      const ifd = b[0] === 0x49 ? b.readUInt32LE(4) : b.readUInt32BE(4);
      return ifd + 2 > b.length;
    }
    default: return undefined;
  }
}

/** libvips/loader messages that mean "ran out of data". */
const TRUNCATED_MESSAGE = /premature end|end of stream|unexpected end|end of file|truncated|short read|not enough data/i;

/** The skip reason for a sharp error on some bytes: the bytes' structure first, sharp's message second. */
export function classifyDecodeError(bytes: Buffer, error: unknown): SkipReason {
  const message = error instanceof Error ? error.message : String(error);
  if (bytes.length === 0 || /buffer is empty/i.test(message)) return "empty";
  if (/exceeds pixel limit/i.test(message)) return "too_large";
  const format = sniffFormat(bytes.subarray(0, SNIFF_BYTES));
  if (format === undefined) return "not_image";
  if (!DECODABLE.has(format)) return "unsupported";
  const truncated = looksTruncated(bytes, format);
  if (truncated !== undefined) return truncated ? "truncated" : "corrupt";
  return TRUNCATED_MESSAGE.test(message) ? "truncated" : "corrupt";
}

// ---------------------------------------------------------------------------------------------------------------
// Reading and decoding

/** Where a record lives, for logs: its origin, else its path, else its key. */
export function recordWhere(record: ImageRecord): string {
  return record.origin ?? record.path ?? record.key;
}

/** The record's bytes, from memory or from its file. Throws DecodeError("unreadable" | "no_image"). */
export async function readRecordBytes(record: ImageRecord): Promise<Buffer> {
  if (record.bytes !== undefined) return record.bytes;
  if (record.path === undefined) throw new DecodeError("no_image", "record has no image bytes and no path");
  try {
    return await fs.promises.readFile(record.path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new DecodeError("unreadable", `cannot read (${err.code ?? err.message})`);
  }
}

/**
 * Decodes image bytes to (H, W, 3) uint8 sRGB. EXIF orientation is applied, so width and height are as displayed;
 * the first frame of animated GIF/WebP is taken. Throws DecodeError with the skip reason on any failure.
 */
export async function decodeImage(bytes: Buffer, options: DecodeOptions = {}): Promise<DecodedImage> {
  if (bytes.length === 0) throw new DecodeError("empty", "empty file");
  const limitInputPixels = options.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  let pipeline = sharp(bytes, { limitInputPixels, failOn: options.failOn ?? "warning", pages: 1, page: 0 })
    .rotate() // EXIF orientation
    .flatten({ background: { r: 0, g: 0, b: 0 } }) // alpha composited on black; a no-op without alpha
    .toColourspace("srgb"); // grey → 3 channels, CMYK/ICC → sRGB, 16-bit → 8-bit
  const side = options.resizeShortSide;
  if (side !== undefined) {
    if (!Number.isInteger(side) || side <= 0) throw new Error(`Expected positive integer for resizeShortSide but received ${side}`);
    // "outside" with a square box: the short side becomes `side`, the long side follows the aspect ratio.
    pipeline = pipeline.resize({ width: side, height: side, fit: "outside", withoutEnlargement: !options.upscale });
  }
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    out = await pipeline.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    const reason = classifyDecodeError(bytes, e);
    throw new DecodeError(reason, (e as Error).message.split("\n")[0]!);
  }
  const { data, info } = out;
  if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
    throw new DecodeError("corrupt", `decoded to ${info.channels} channels, ${data.length} bytes for ${info.width}x${info.height}`);
  }
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Receives one line per bad file. */
export type Logger = (message: string) => void;

export interface BadFile {
  where: string;
  reason: SkipReason;
  detail: string;
}

/**
 * Counts decoded images and skips by reason, and logs each bad file once (by `where`), however often it is met
 * (e.g. once per epoch). `skipped` counts every skip event; `badFiles` holds each distinct bad file.
 */
export class DecodeStats {
  decoded = 0;
  readonly skipped: Record<SkipReason, number> = Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
  private readonly bad = new Map<string, BadFile>();

  constructor(private readonly log: Logger = (m) => console.warn(m)) {}

  /** Counts a skip; logs "WHERE: skipped (REASON: DETAIL)" the first time WHERE is seen. */
  skip(where: string, reason: SkipReason, detail: string): void {
    this.skipped[reason]++;
    if (this.bad.has(where)) return;
    this.bad.set(where, { where, reason, detail });
    this.log(`${where}: skipped (${reason}: ${detail})`);
  }

  get totalSkipped(): number {
    return SKIP_REASONS.reduce((n, r) => n + this.skipped[r], 0);
  }

  /** Distinct bad files in the order first met. */
  get badFiles(): BadFile[] {
    return [...this.bad.values()];
  }

  toJSON(): { decoded: number; skipped: Record<SkipReason, number>; badFiles: BadFile[] } {
    return { decoded: this.decoded, skipped: { ...this.skipped }, badFiles: this.badFiles };
  }
}

/**
 * Reads and decodes one record; never throws for bad data. Returns undefined (after counting and logging the
 * skip in `stats`) when the record cannot be decoded. Invalid options are still thrown: they are bugs, not data.
 */
export async function decodeRecord(record: ImageRecord, stats: DecodeStats, options: DecodeOptions = {}): Promise<DecodedImage | undefined> {
  try {
    const image = await decodeImage(await readRecordBytes(record), options);
    stats.decoded++;
    return image;
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
    stats.skip(recordWhere(record), e.reason, e.message);
    return undefined;
  }
}
