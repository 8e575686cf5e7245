// Image sources: where training images come from, as lazy async iterables of records, with random access and a
// length where the source allows it. No pixels here: decode.ts turns records into pixels.
//
// - folderSource: a folder tree at any depth, like torchvision's ImageFolder when `labels: true` (class = first
//   folder level, classes sorted, label = index), and like a flat "pile of images" otherwise (SEER's uncurated data).
// - listSource: a text file, one path per line, optionally "path<TAB>label".
// - tarShardSource: WebDataset shards (github.com/webdataset/webdataset): `shard-{000000..000123}.tar`, members
//   grouped by key (the path up to the first "." of the file name), image member chosen by extension, optional
//   `cls` member with the label. Read sequentially as streams, so there is no length and no random access.
// Built-in data set archives are in builtin.ts; `resolveSource` (CLI argument → source) is in scan.ts.
import * as fs from "fs";
import * as path from "path";
import { SNIFF_BYTES, sniffFormat } from "./decode";
import { readTarFile } from "./tar";

/** One image of a source. Exactly one of `path` and `bytes` is set, except for a record with no image. */
export interface ImageRecord {
  /** Unique within the source (folder: relative path; list: the path as written; tar: the WebDataset key). */
  key: string;
  /** A file to read the image from. */
  path?: string;
  /** The image bytes, already in memory (tar members). */
  bytes?: Buffer;
  /** Class index, when the source has labels. */
  label?: number;
  /** Where the record came from, for logs, when `path` does not say it (tar: "shard.tar:member"). */
  origin?: string;
}

/** A stream of records; iterating again starts over. */
export interface ImageSource extends AsyncIterable<ImageRecord> {
  /** What the source reads, for reports. */
  readonly description: string;
  /** Class names by label index, when the source knows them. */
  readonly classes?: readonly string[];
}

/** A source with a known length and random access (folders, lists, built-in data sets). */
export interface IndexedImageSource extends ImageSource {
  readonly length: number;
  /** The record at 0 <= index < length. */
  at(index: number): ImageRecord;
}

export function isIndexed(source: ImageSource): source is IndexedImageSource {
  return typeof (source as Partial<IndexedImageSource>).at === "function" && typeof (source as Partial<IndexedImageSource>).length === "number";
}

/** File extensions (lower case, no dot) taken as images without looking at the bytes. */
export const IMAGE_EXTENSIONS: readonly string[] = ["jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "tif", "tiff", "avif", "heic", "heif"];

function extensionOf(file: string): string {
  const ext = path.extname(file);
  return ext ? ext.slice(1).toLowerCase() : "";
}

/** A fixed list of records. */
class ArraySource implements IndexedImageSource {
  constructor(readonly description: string, private readonly records: readonly ImageRecord[], readonly classes?: readonly string[]) {}

  get length(): number {
    return this.records.length;
  }

  at(index: number): ImageRecord {
    if (!Number.isInteger(index) || index < 0 || index >= this.records.length) {
      throw new RangeError(`${this.description}: index ${index} out of range [0, ${this.records.length})`);
    }
    return this.records[index]!;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ImageRecord> {
    for (const r of this.records) yield r;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Folder trees

export interface FolderSourceOptions {
  /** Label each image by its first-level folder (classes sorted by name, label = index). Default false. */
  labels?: boolean;
  /** Also look at the first bytes of files without an image extension, and keep those that are images. Default false. */
  sniff?: boolean;
  /** Extensions taken as images (lower case, no dot). Default IMAGE_EXTENSIONS. */
  extensions?: readonly string[];
  /** Include files and folders whose names start with "." (e.g. macOS "._x.jpg" forks). Default false. */
  hidden?: boolean;
  /** The source's description in reports. Default "folder ROOT". */
  description?: string;
}

async function isSniffedImage(file: string): Promise<boolean> {
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await fs.promises.open(file, "r");
    const head = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(head, 0, SNIFF_BYTES, 0);
    return sniffFormat(head.subarray(0, bytesRead)) !== undefined;
  } catch {
    return false; // unreadable and without an image extension: not ours to report
  } finally {
    await handle?.close();
  }
}

/** Compares strings by UTF-16 code units: the same order on every machine and locale. */
function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Every image under `root`, at any depth, in sorted relative-path order. Symlinks are followed (a linked folder
 * once); a link that points nowhere but has an image extension is kept, so decoding reports it as unreadable.
 * With `labels`, images directly in `root` are left out (they have no class), as in torchvision's ImageFolder.
 */
export async function folderSource(root: string, options: FolderSourceOptions = {}): Promise<IndexedImageSource> {
  const rootStat = await fs.promises.stat(root).catch(() => undefined);
  if (!rootStat?.isDirectory()) throw new Error(`folderSource: ${root} is not a folder`);
  const extensions = new Set(options.extensions ?? IMAGE_EXTENSIONS);
  const files: string[] = []; // relative paths, "/"-separated
  const seenDirs = new Set<string>([await fs.promises.realpath(root)]);

  const keep = async (abs: string, rel: string): Promise<void> => {
    if (extensions.has(extensionOf(rel)) || (options.sniff && (await isSniffedImage(abs)))) files.push(rel);
  };
  const walk = async (dir: string, rel: string): Promise<void> => {
    const entries = await fs.promises.readdir(dir, { withFileTypes: true });
    for (const entry of entries) {
      if (!options.hidden && entry.name.startsWith(".")) continue;
      const abs = path.join(dir, entry.name);
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        const target = await fs.promises.stat(abs).catch(() => undefined);
        if (target === undefined) {
          if (extensions.has(extensionOf(entry.name))) files.push(childRel); // dangling: decode reports it
          continue;
        }
        isDir = target.isDirectory();
        isFile = target.isFile();
        if (isDir) {
          const real = await fs.promises.realpath(abs);
          if (seenDirs.has(real)) continue; // a link loop or a second link to the same folder
          seenDirs.add(real);
        }
      }
      if (isDir) await walk(abs, childRel);
      else if (isFile) await keep(abs, childRel);
    }
  };
  await walk(root, "");
  files.sort(byCodeUnits);

  let classes: string[] | undefined;
  let records: ImageRecord[];
  if (options.labels) {
    const top = await fs.promises.readdir(root, { withFileTypes: true });
    const isDirEntry = async (e: fs.Dirent): Promise<boolean> =>
      e.isDirectory() || (e.isSymbolicLink() && (await fs.promises.stat(path.join(root, e.name)).then((s) => s.isDirectory(), () => false)));
    classes = [];
    for (const e of top) if ((options.hidden || !e.name.startsWith(".")) && (await isDirEntry(e))) classes.push(e.name);
    classes.sort(byCodeUnits);
    const labelOf = new Map(classes.map((c, i) => [c, i]));
    records = [];
    for (const rel of files) {
      const slash = rel.indexOf("/");
      if (slash < 0) continue; // directly in root: no class
      records.push({ key: rel, path: path.join(root, rel), label: labelOf.get(rel.slice(0, slash))! });
    }
  } else {
    records = files.map((rel) => ({ key: rel, path: path.join(root, rel) }));
  }
  return new ArraySource(options.description ?? `folder ${root}`, records, classes);
}

// ---------------------------------------------------------------------------------------------------------------
// File lists

export interface ListSourceOptions {
  /** Folder that relative paths are resolved against. Default: the list file's folder. */
  root?: string;
}

/**
 * Images named in a text file: one path per line, or "path<TAB>label" with a non-negative integer label. Blank lines
 * and lines starting with "#" are skipped. The file is read once, when the source is made; the images are not.
 */
export async function listSource(listFile: string, options: ListSourceOptions = {}): Promise<IndexedImageSource> {
  const text = await fs.promises.readFile(listFile, "utf8");
  const root = options.root ?? path.dirname(listFile);
  const records: ImageRecord[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "" || line.startsWith("#")) return;
    const [file, labelText, ...rest] = line.split("\t");
    if (rest.length > 0) throw new Error(`${listFile}:${i + 1}: expected "path" or "path<TAB>label", found ${rest.length + 2} fields`);
    const record: ImageRecord = { key: file!, path: path.resolve(root, file!) };
    if (labelText !== undefined) {
      if (!/^\d+$/.test(labelText.trim())) throw new Error(`${listFile}:${i + 1}: expected a non-negative integer label but received "${labelText}"`);
      record.label = Number(labelText.trim());
    }
    records.push(record);
  });
  return new ArraySource(`list ${listFile}`, records);
}

// ---------------------------------------------------------------------------------------------------------------
// WebDataset tar shards

/**
 * Bash-style brace expansion as WebDataset uses it for shard lists: numeric ranges `{000..123}` (zero-padded to the
 * wider bound when either bound has a leading zero; descending allowed) and alternatives `{a,b,c}`; several groups
 * expand as a cartesian product, left to right. Nested braces are not supported.
 */
export function expandBraces(pattern: string): string[] {
  const open = pattern.indexOf("{");
  if (open < 0) {
    if (pattern.includes("}")) throw new Error(`expandBraces: unmatched "}" in "${pattern}"`);
    return [pattern];
  }
  const close = pattern.indexOf("}", open);
  if (close < 0) throw new Error(`expandBraces: unmatched "{" in "${pattern}"`);
  const body = pattern.slice(open + 1, close);
  if (body.includes("{")) throw new Error(`expandBraces: nested braces are not supported in "${pattern}"`);
  const head = pattern.slice(0, open);
  const tails = expandBraces(pattern.slice(close + 1));
  let items: string[];
  const range = /^(-?\d+)\.\.(-?\d+)$/.exec(body);
  if (range) {
    const [a, b] = [range[1]!, range[2]!];
    const padded = /^-?0\d/.test(a) || /^-?0\d/.test(b);
    const width = padded ? Math.max(a.replace("-", "").length, b.replace("-", "").length) : 0;
    const [lo, hi] = [Number(a), Number(b)];
    const step = lo <= hi ? 1 : -1;
    items = [];
    for (let v = lo; step > 0 ? v <= hi : v >= hi; v += step) {
      items.push((v < 0 ? "-" : "") + String(Math.abs(v)).padStart(width, "0"));
    }
  } else if (body.includes(",")) {
    items = body.split(",");
  } else {
    throw new Error(`expandBraces: "{${body}}" in "${pattern}" is neither a range {A..B} nor a list {a,b}`);
  }
  const out: string[] = [];
  for (const item of items) for (const tail of tails) out.push(head + item + tail);
  return out;
}

/** Splits a member name into WebDataset key and extension: "a/b/0001.seg.png" → ["a/b/0001", "seg.png"]. */
export function splitMemberName(name: string): [key: string, ext: string] | undefined {
  const m = /^((?:.*\/|)[^./]+)\.([^/]*)$/.exec(name);
  return m ? [m[1]!, m[2]!.toLowerCase()] : undefined;
}

export interface TarShardSourceOptions {
  /** Member extensions that hold the image, in order of preference. Default IMAGE_EXTENSIONS. */
  imageExtensions?: readonly string[];
}

/** A WebDataset source: samples in shard order, members of one sample contiguous within a shard. */
export interface TarShardSource extends ImageSource {
  /** The shard files, brace-expanded, in reading order (e.g. to split across loader workers). */
  readonly shards: readonly string[];
}

/**
 * Samples from WebDataset tar shards (.tar, .tar.gz, .tgz). `shards` is a brace pattern or a list of files; all
 * must exist when the source is made. A sample is a run of consecutive members with the same key; its image is the
 * first member whose extension is in `imageExtensions` (a sample without one gives a record with neither path nor
 * bytes, which decoding counts as "no_image"); a `cls` member holds the label as a decimal integer.
 */
export function tarShardSource(shards: string | readonly string[], options: TarShardSourceOptions = {}): TarShardSource {
  const files = typeof shards === "string" ? expandBraces(shards) : [...shards];
  if (files.length === 0) throw new Error("tarShardSource: no shards");
  for (const f of files) if (!fs.statSync(f, { throwIfNoEntry: false })?.isFile()) throw new Error(`tarShardSource: shard ${f} does not exist`);
  const imageExtensions = options.imageExtensions ?? IMAGE_EXTENSIONS;

  // One sample: its members by extension.
  const toRecord = (shard: string, key: string, members: Map<string, { name: string; data: Buffer }>): ImageRecord => {
    const record: ImageRecord = { key, origin: `${shard}:${key}` };
    const ext = imageExtensions.find((e) => members.has(e));
    if (ext !== undefined) {
      const m = members.get(ext)!;
      record.bytes = m.data;
      record.origin = `${shard}:${m.name}`;
    }
    const cls = members.get("cls");
    if (cls !== undefined) {
      const text = cls.data.toString("utf8").trim();
      if (!/^\d+$/.test(text)) throw new Error(`${shard}:${cls.name}: expected a non-negative integer label but found "${text.slice(0, 40)}"`);
      record.label = Number(text);
    }
    return record;
  };

  async function* samples(): AsyncGenerator<ImageRecord> {
    for (const shard of files) {
      let key: string | undefined;
      let members = new Map<string, { name: string; data: Buffer }>();
      for await (const entry of readTarFile(shard)) {
        if (entry.type !== "file") continue;
        const split = splitMemberName(entry.name);
        if (split === undefined) continue; // no extension: not part of a sample
        if (split[0] !== key) {
          if (key !== undefined) yield toRecord(shard, key, members);
          key = split[0];
          members = new Map();
        }
        members.set(split[1], { name: entry.name, data: entry.data });
      }
      if (key !== undefined) yield toRecord(shard, key, members);
    }
  }

  return {
    description: files.length === 1 ? `tar ${files[0]}` : `tar ${typeof shards === "string" ? shards : `${files[0]} (+${files.length - 1})`}`,
    shards: files,
    [Symbol.asyncIterator]: samples,
  };
}
