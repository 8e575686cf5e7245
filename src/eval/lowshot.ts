// Low-shot subsets: stratified, seeded pct% of each class of a labelled train source, drawn once and written as an
// index list that every later run reads back, so that all checkpoints are compared on the very same images — the
// role of the fixed 1% / 10% ImageNet lists of SimCLR (google-research/simclr imagenet_subsets/{1,10}percent.txt)
// that SwAV eval_semisup.py and VISSL's semi-supervised benchmarks read.
//
// Per class c with n_c records: m_c = max(1, round(n_c · pct / 100)) records (CIFAR-10: 50 and 500 of 5,000 for
// 1% and 10%), chosen as the first m_c of a Fisher-Yates permutation of the class's records drawn from
// Rng.forKey("lowshot", seed, c); the list is stored in ascending record order. Unlike SimCLR's ImageNet lists
// (which are only approximately balanced), every class gets exactly its share.
//
// File: `${CACHE_DIR}/lowshot/<source-slug>-<pct>pct-seed<seed>.json` (JSON below), created with a hard link from a
// temp file so that it is never overwritten, even by two processes at once. When it exists it is read, checked
// against the source (same records, same keys at the listed indices) and used as is; a mismatch is an error that
// names the file (delete it to draw again), never a silent redraw.
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Rng } from "../data/rng";
import type { IndexedImageSource } from "../data/sources";
import { CACHE_DIR } from "../util/paths";
import { sourceKeysHash } from "./features";

const FORMAT = "seerkit-lowshot-v1";

/** What a low-shot index file holds. */
export interface LowShotSubset {
  format: typeof FORMAT;
  /** The source's description (e.g. "builtin:cifar10/train"). */
  source: string;
  /** Percent of each class. */
  pct: number;
  seed: number;
  /** Records in the whole source, and sha256 of their keys in order (to notice a changed source). */
  numRecords: number;
  sourceKeysSha256: string;
  /** Class names, when the source has them. */
  classes: string[] | null;
  /** Records per class in the source, and in the subset. */
  sourceClassCounts: number[];
  classCounts: number[];
  /** Record indices of the subset, ascending. */
  indices: number[];
  /** The records' keys (relative paths), parallel to indices. */
  keys: string[];
}

export interface LowShotOptions {
  /** Percent of each class, in (0, 100] (1 and 10 are the standard ones). */
  pct: number;
  /** Default 0. */
  seed?: number;
  /** Folder of the index files. Default `${CACHE_DIR}/lowshot`. */
  dir?: string;
}

function checkOptions(pct: number, seed: number): void {
  if (!(pct > 0 && pct <= 100)) throw new RangeError(`Expected a percentage in (0, 100] for pct but received ${pct}`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`Expected a non-negative integer for seed but received ${seed}`);
}

/** The labels of every record of an indexed source; throws when one has none. */
function sourceLabels(source: IndexedImageSource): Int32Array {
  const labels = new Int32Array(source.length);
  for (let i = 0; i < source.length; i++) {
    const label = source.at(i).label;
    if (label === undefined) throw new Error(`${source.description}: record ${source.at(i).key} has no label; low-shot subsets need a labelled source`);
    labels[i] = label;
  }
  return labels;
}

/** Draws the subset (no file involved). */
export function drawLowShotSubset(source: IndexedImageSource, pct: number, seed = 0): LowShotSubset {
  checkOptions(pct, seed);
  const labels = sourceLabels(source);
  let numClasses = source.classes?.length ?? 0;
  for (const c of labels) numClasses = Math.max(numClasses, c + 1);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  labels.forEach((c, i) => byClass[c]!.push(i));
  const chosen: number[] = [];
  const classCounts = byClass.map((members, c) => {
    if (members.length === 0) return 0;
    const m = Math.max(1, Math.round((members.length * pct) / 100));
    const perm = Rng.forKey("lowshot", seed, c).permutation(members.length);
    for (let j = 0; j < m; j++) chosen.push(members[perm[j]!]!);
    return m;
  });
  chosen.sort((a, b) => a - b);
  return {
    format: FORMAT,
    source: source.description,
    pct,
    seed,
    numRecords: source.length,
    sourceKeysSha256: sourceKeysHash(source)!,
    classes: source.classes ? [...source.classes] : null,
    sourceClassCounts: byClass.map((m) => m.length),
    classCounts,
    indices: chosen,
    keys: chosen.map((i) => source.at(i).key),
  };
}

/** A file-name-safe slug of a source description: "builtin:cifar10/train" → "cifar10-train"; others get a hash. */
export function lowShotSourceSlug(description: string): string {
  const builtin = /^builtin:(.+)$/.exec(description);
  if (builtin) return builtin[1]!.replace(/[^A-Za-z0-9._-]+/g, "-");
  const base = path.basename(description.replace(/^(folder|list|tar) /, "")).replace(/[^A-Za-z0-9._-]+/g, "-").slice(0, 40) || "source";
  return `${base}-${createHash("sha256").update(description).digest("hex").slice(0, 8)}`;
}

/** Where the index file of (source, pct, seed) lives. */
export function lowShotFile(description: string, pct: number, seed = 0, dir = path.join(CACHE_DIR, "lowshot")): string {
  return path.join(dir, `${lowShotSourceSlug(description)}-${pct}pct-seed${seed}.json`);
}

/** JSON with one top-level field per line (the lists stay on one line each). */
function formatSubset(s: LowShotSubset): string {
  const fields = Object.entries(s).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
  return `{\n${fields.join(",\n")}\n}\n`;
}

/** Throws unless the stored subset belongs to this source as it is now. */
function checkAgainstSource(file: string, s: LowShotSubset, source: IndexedImageSource, pct: number, seed: number): void {
  const fail = (why: string): never => {
    throw new Error(`${file}: ${why}; delete the file to draw the subset again`);
  };
  if (s.format !== FORMAT) fail(`not a ${FORMAT} file`);
  if (s.pct !== pct || s.seed !== seed) fail(`holds pct ${s.pct}, seed ${s.seed}, not pct ${pct}, seed ${seed}`);
  if (s.numRecords !== source.length || s.sourceKeysSha256 !== sourceKeysHash(source)) {
    fail(`was drawn from ${s.numRecords} records of ${s.source}, and the source (${source.length} records) has changed since`);
  }
  if (!Array.isArray(s.indices) || !Array.isArray(s.keys) || s.indices.length !== s.keys.length) fail("indices and keys do not match");
  s.indices.forEach((i, j) => {
    if (!Number.isInteger(i) || i < 0 || i >= source.length || source.at(i).key !== s.keys[j]) fail(`entry ${j} (index ${i}) is not record ${s.keys[j]}`);
  });
}

/**
 * The low-shot subset of a labelled indexed source: read from its index file when the file exists (checked against
 * the source, never rewritten), else drawn and written once. `created` says which.
 */
export function lowShotSubset(source: IndexedImageSource, o: LowShotOptions): { subset: LowShotSubset; file: string; created: boolean } {
  const seed = o.seed ?? 0;
  checkOptions(o.pct, seed);
  const file = lowShotFile(source.description, o.pct, seed, o.dir);
  const read = (): LowShotSubset => {
    const s = JSON.parse(fs.readFileSync(file, "utf8")) as LowShotSubset;
    checkAgainstSource(file, s, source, o.pct, seed);
    return s;
  };
  if (fs.existsSync(file)) return { subset: read(), file, created: false };

  const subset = drawLowShotSubset(source, o.pct, seed);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, formatSubset(subset));
  try {
    fs.linkSync(tmp, file); // fails with EEXIST when another process wrote it first: then use theirs
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    return { subset: read(), file, created: false };
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return { subset, file, created: true };
}
