// `seer data scan SRC`: a health report on an image source before training on it — formats, bad files by reason,
// image sizes, exact duplicates, bytes — and `resolveSource`, which turns a CLI argument into a source.
//
// Every record is read, hashed (sha256 of its bytes) and, by default, fully decoded with the training pipeline's
// decoder (decode.ts), so what the scan calls bad is what the loader will skip. Records are processed by a bounded
// pool of async workers; the decoding itself runs on libuv's thread pool inside sharp (its size is
// UV_THREADPOOL_SIZE, 4 by default, which also caps how many decodes run at once).
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import sharp from "sharp";
import { builtinDataset, isBuiltinName, type BuiltinOptions } from "./builtin";
import { DecodeError, DecodeStats, SKIP_REASONS, classifyDecodeError, decodeImage, readRecordBytes, recordWhere, type BadFile, type DecodeOptions, type Logger, type SkipReason } from "./decode";
import { folderSource, listSource, tarShardSource, type ImageRecord, type ImageSource } from "./sources";

// ---------------------------------------------------------------------------------------------------------------
// CLI argument → source

export interface ResolveOptions {
  /** Folder sources: label by first-level folder. Default false (a scan does not need labels). */
  labels?: boolean;
  /** Folder sources: also keep files without an image extension whose bytes are images. Default false. */
  sniff?: boolean;
  /** Built-in data sets: archive and cache folders. */
  builtin?: BuiltinOptions;
}

/**
 * A source from a command-line argument:
 * - `builtin:NAME/SPLIT`, e.g. `builtin:cifar10/train`, `builtin:imagenette/val`, `builtin:tiny_coco/train`;
 * - a tar shard or shard pattern: `/data/shard-{000000..000003}.tar` (also .tar.gz, .tgz);
 * - a `.txt` file list ("path" or "path<TAB>label" per line);
 * - a folder.
 */
export async function resolveSource(spec: string, options: ResolveOptions = {}): Promise<ImageSource> {
  const builtin = /^builtin:([^/]+)\/(.+)$/.exec(spec);
  if (builtin) {
    const name = builtin[1]!;
    if (!isBuiltinName(name)) throw new Error(`resolveSource: unknown built-in data set "${name}" in "${spec}"`);
    return builtinDataset(name, builtin[2]!, options.builtin);
  }
  if (spec.startsWith("builtin:")) throw new Error(`resolveSource: expected builtin:NAME/SPLIT but received "${spec}"`);
  if (spec.includes("{") || /\.(tar|tar\.gz|tgz)$/i.test(spec)) return tarShardSource(spec);
  const stat = await fs.promises.stat(spec).catch(() => undefined);
  if (stat?.isDirectory()) return folderSource(spec, { labels: options.labels, sniff: options.sniff });
  if (stat?.isFile() && /\.txt$/i.test(spec)) return listSource(spec);
  throw new Error(`resolveSource: "${spec}" is not a folder, a .txt file list, a .tar shard pattern or builtin:NAME/SPLIT`);
}

// ---------------------------------------------------------------------------------------------------------------
// Bounded concurrency

/**
 * Runs `fn` on every item with at most `concurrency` calls in flight. Pulls from the iterator one at a time (so any
 * async iterator is safe), stops pulling at the first error, closes the iterator and rethrows that error.
 */
export async function forEachConcurrent<T>(items: AsyncIterable<T>, concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`Expected positive integer for concurrency but received ${concurrency}`);
  const it = items[Symbol.asyncIterator]();
  let chain: Promise<unknown> = Promise.resolve();
  const next = (): Promise<IteratorResult<T>> => {
    const p = chain.then(() => it.next());
    chain = p.catch(() => undefined);
    return p;
  };
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined) {
      try {
        const r = await next();
        if (r.done) return;
        await fn(r.value);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (failure !== undefined) {
    await it.return?.();
    throw failure.error;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The scan

export interface ScanOptions {
  /** Records in flight at once. Default os.availableParallelism(). */
  concurrency?: number;
  /** Decode every image fully (default true). false reads headers only: faster, but misses truncated data. */
  verify?: boolean;
  /** Decompression-bomb limit, as in decoding. Default DEFAULT_LIMIT_INPUT_PIXELS. */
  limitInputPixels?: number;
  /** Strictness, as in decoding. Default "warning". */
  failOn?: DecodeOptions["failOn"];
  /** One line per bad file. Default: silent (the report lists them). */
  log?: Logger;
  /** Called after each record with the number done so far. */
  onProgress?: (done: number) => void;
}

/** min / median / max of a size in pixels; the median is the lower middle value (always an actual image's size). */
export interface SizeSummary {
  min: number;
  median: number;
  max: number;
}

export interface ShortSideBucket {
  /** e.g. "256-511", ">=2048". */
  label: string;
  /** Inclusive lower bound in pixels. */
  min: number;
  /** Exclusive upper bound in pixels; null for the last bucket. */
  max: number | null;
  count: number;
}

export interface ScanReport {
  source: string;
  /** Records met, good and bad. */
  records: number;
  /** Records that decoded (or, with verify: false, whose header parsed). */
  images: number;
  skipped: Record<SkipReason, number>;
  /** Each bad file with its reason, sorted by where. */
  badFiles: BadFile[];
  /** Good images by format from sharp's metadata ("jpeg", "png", "webp", "gif", "tiff", "avif", "heif"). */
  formats: Record<string, number>;
  /** Displayed sizes (EXIF orientation applied) of good images; null when there are none. */
  width: SizeSummary | null;
  height: SizeSummary | null;
  shortSide: ShortSideBucket[];
  /** Exact duplicates by sha256 of the bytes: groups of 2+ records (by where), and how many records are extra copies. */
  duplicates: { groups: string[][]; extraCopies: number };
  /** Bytes read, all readable records. */
  totalBytes: number;
  /** Good images per class (class name, or label number when the source has no names); absent without labels. */
  labels?: Record<string, number>;
  seconds: number;
}

const SHORT_SIDE_EDGES = [0, 32, 64, 128, 256, 512, 1024, 2048];

function summarize(values: number[]): SizeSummary | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  return { min: sorted[0]!, median: sorted[(sorted.length - 1) >> 1]!, max: sorted[sorted.length - 1]! };
}

/** sharp's format name, with AV1-in-HEIF called "avif". */
function formatName(meta: sharp.Metadata): string {
  if (meta.format === "heif" && meta.compression === "av1") return "avif";
  return meta.format ?? "unknown";
}

/** Scans every record of a source; bad files are counted, never thrown. */
export async function scanSource(source: ImageSource, options: ScanOptions = {}): Promise<ScanReport> {
  const started = process.hrtime.bigint();
  const concurrency = options.concurrency ?? Math.max(1, os.availableParallelism());
  const decodeOptions: DecodeOptions = { limitInputPixels: options.limitInputPixels, failOn: options.failOn };
  const stats = new DecodeStats(options.log ?? (() => {}));
  const formats: Record<string, number> = {};
  const widths: number[] = [];
  const heights: number[] = [];
  const byHash = new Map<string, string[]>();
  const labelCounts = new Map<number, number>();
  let records = 0;
  let totalBytes = 0;

  const scanOne = async (record: ImageRecord): Promise<void> => {
    const where = recordWhere(record);
    try {
      const bytes = await readRecordBytes(record);
      totalBytes += bytes.length;
      if (bytes.length > 0) {
        const hash = crypto.createHash("sha256").update(bytes).digest("hex");
        const group = byHash.get(hash);
        if (group) group.push(where);
        else byHash.set(hash, [where]);
      }
      let width: number;
      let height: number;
      let meta: sharp.Metadata;
      if (options.verify ?? true) {
        ({ width, height } = await decodeImage(bytes, decodeOptions));
        meta = await sharp(bytes).metadata();
      } else {
        if (bytes.length === 0) throw new DecodeError("empty", "empty file");
        try {
          meta = await sharp(bytes, { limitInputPixels: decodeOptions.limitInputPixels }).metadata();
        } catch (e) {
          throw new DecodeError(classifyDecodeError(bytes, e), (e as Error).message.split("\n")[0]!);
        }
        const limit = decodeOptions.limitInputPixels ?? Infinity;
        if ((meta.width ?? 0) * (meta.height ?? 0) > limit) throw new DecodeError("too_large", "Input image exceeds pixel limit");
        width = meta.autoOrient?.width ?? meta.width ?? 0;
        height = meta.autoOrient?.height ?? meta.height ?? 0;
      }
      stats.decoded++;
      const name = formatName(meta);
      formats[name] = (formats[name] ?? 0) + 1;
      widths.push(width);
      heights.push(height);
      if (record.label !== undefined) labelCounts.set(record.label, (labelCounts.get(record.label) ?? 0) + 1);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      stats.skip(where, e.reason, e.message);
    } finally {
      records++;
      options.onProgress?.(records);
    }
  };
  await forEachConcurrent(source, concurrency, scanOne);

  const shortSide: ShortSideBucket[] = SHORT_SIDE_EDGES.map((min, i) => {
    const max = SHORT_SIDE_EDGES[i + 1] ?? null;
    return { label: max === null ? `>=${min}` : i === 0 ? `<${max}` : `${min}-${max - 1}`, min, max, count: 0 };
  });
  for (let i = 0; i < widths.length; i++) {
    const s = Math.min(widths[i]!, heights[i]!);
    let b = shortSide.length - 1;
    while (s < shortSide[b]!.min) b--;
    shortSide[b]!.count++;
  }

  const groups = [...byHash.values()].filter((g) => g.length > 1).map((g) => g.sort()).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
  let labels: Record<string, number> | undefined;
  if (labelCounts.size > 0) {
    labels = {};
    for (const [label, count] of [...labelCounts].sort((a, b) => a[0] - b[0])) labels[source.classes?.[label] ?? String(label)] = count;
  }
  return {
    source: source.description,
    records,
    images: stats.decoded,
    skipped: { ...stats.skipped },
    badFiles: stats.badFiles.sort((a, b) => (a.where < b.where ? -1 : a.where > b.where ? 1 : 0)),
    formats: Object.fromEntries(Object.entries(formats).sort((a, b) => b[1] - a[1])),
    width: summarize(widths),
    height: summarize(heights),
    shortSide,
    duplicates: { groups, extraCopies: groups.reduce((n, g) => n + g.length - 1, 0) },
    totalBytes,
    ...(labels ? { labels } : {}),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Human-readable report

function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** The report as an aligned text table, for a terminal. Lists at most `maxListed` duplicate groups and bad files. */
export function formatScanReport(report: ScanReport, maxListed = 20): string {
  const lines: string[] = [];
  const row = (name: string, value: string): void => {
    lines.push(`${name.padEnd(12)}${value}`);
  };
  const skippedTotal = SKIP_REASONS.reduce((n, r) => n + report.skipped[r], 0);
  row("source", report.source);
  row("images", `${report.images} good of ${report.records} records (${report.seconds.toFixed(1)} s)`);
  row("bytes", formatBytes(report.totalBytes));
  row("formats", Object.entries(report.formats).map(([f, n]) => `${f} ${n}`).join(", ") || "-");
  row("skipped", skippedTotal === 0 ? "0" : `${skippedTotal}: ${SKIP_REASONS.filter((r) => report.skipped[r] > 0).map((r) => `${r} ${report.skipped[r]}`).join(", ")}`);
  const size = (s: SizeSummary | null): string => (s ? `min ${s.min}  median ${s.median}  max ${s.max}` : "-");
  row("width", size(report.width));
  row("height", size(report.height));
  if (report.labels) row("classes", Object.entries(report.labels).map(([c, n]) => `${c} ${n}`).join(", "));

  lines.push("short side");
  const peak = Math.max(1, ...report.shortSide.map((b) => b.count));
  for (const b of report.shortSide) {
    lines.push(`  ${b.label.padStart(9)}  ${String(b.count).padStart(8)}  ${"#".repeat(Math.round((40 * b.count) / peak))}`.trimEnd());
  }

  const { groups, extraCopies } = report.duplicates;
  row("duplicates", groups.length === 0 ? "none" : `${groups.length} groups, ${extraCopies} extra copies`);
  for (const g of groups.slice(0, maxListed)) lines.push(`  ${g.join(" = ")}`);
  if (groups.length > maxListed) lines.push(`  ... and ${groups.length - maxListed} more groups`);

  if (report.badFiles.length > 0) {
    lines.push("bad files");
    for (const f of report.badFiles.slice(0, maxListed)) lines.push(`  ${f.where}: ${f.reason} (${f.detail})`);
    if (report.badFiles.length > maxListed) lines.push(`  ... and ${report.badFiles.length - maxListed} more`);
  }
  return lines.join("\n");
}
