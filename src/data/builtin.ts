// Built-in data sets: the archives in /work/shared/datasets (see its README), extracted once into the ignored cache
// folder and read as folder sources.
//
// Extraction is atomic: the archive is gunzipped and untarred (zlib + tar.ts) into a fresh temporary folder beside
// the target, the image counts of every split are checked there, and only then is the folder renamed to
// `${CACHE_DIR}/datasets/<name>`. A crash leaves a stray ".tmp-*" folder, never a half-filled data set; two
// processes extracting at once both succeed (the second rename loses and its copy is removed). The counts are
// checked again on every load, so a damaged cache is a clear error rather than a silently smaller data set.
import * as fs from "fs";
import * as path from "path";
import { CACHE_DIR, PACKAGE_ROOT } from "../util/paths";
import { folderSource, type IndexedImageSource } from "./sources";
import { readTarFile } from "./tar";

export type BuiltinName = "cifar10" | "imagenette" | "tiny_coco";

export interface BuiltinSplit {
  /** The split's image folder, relative to the extracted root. */
  dir: string;
  /** Images the README promises. */
  count: number;
}

export interface BuiltinSpec {
  /** The archive's file name in the archives folder. */
  archive: string;
  /** Whether first-level folders of a split are classes. */
  labels: boolean;
  splits: Readonly<Record<string, BuiltinSplit>>;
}

/** Layouts and counts from /work/shared/datasets/README.md. */
export const BUILTIN_DATASETS: Readonly<Record<BuiltinName, BuiltinSpec>> = Object.freeze({
  cifar10: {
    archive: "cifar10-jpeg.tar.gz",
    labels: true, // cifar10-jpeg/{train,test}/<class>/NNNN.jpg, 32×32
    splits: { train: { dir: "cifar10-jpeg/train", count: 50_000 }, test: { dir: "cifar10-jpeg/test", count: 10_000 } },
  },
  imagenette: {
    archive: "imagenette2-224.tar.gz",
    labels: true, // imagenette2-224/{train,val}/<wnid>/*.JPEG, 224×224
    splits: { train: { dir: "imagenette2-224/train", count: 9_469 }, val: { dir: "imagenette2-224/val", count: 3_925 } },
  },
  tiny_coco: {
    archive: "tiny_coco.tar.gz",
    labels: false, // tiny_coco/tiny_coco/{train2017,val2017}/*.jpg, about 640×480; annotations are COCO JSON
    splits: { train: { dir: "tiny_coco/tiny_coco/train2017", count: 50 }, val: { dir: "tiny_coco/tiny_coco/val2017", count: 50 } },
  },
});

/** Where the archives are: $SEERKIT_DATASETS, else ../shared/datasets from the package root. */
export const DATASETS_DIR = process.env.SEERKIT_DATASETS ?? path.resolve(PACKAGE_ROOT, "..", "shared", "datasets");

export interface BuiltinOptions {
  /** Folder holding the .tar.gz archives. Default DATASETS_DIR. */
  archivesDir?: string;
  /** Cache root; the data set goes to `${cacheDir}/datasets/<name>`. Default CACHE_DIR. */
  cacheDir?: string;
  /** Progress lines ("extracting ..."). Default: silent. */
  log?: (message: string) => void;
}

export function isBuiltinName(name: string): name is BuiltinName {
  return Object.prototype.hasOwnProperty.call(BUILTIN_DATASETS, name);
}

/** Resolves a member path inside `root`, refusing absolute paths and ".." (a tar may not write outside its folder). */
function safeJoin(root: string, member: string): string {
  const parts = member.split("/").filter((p) => p !== "" && p !== ".");
  if (path.isAbsolute(member) || parts.some((p) => p === "..")) throw new Error(`refusing to extract "${member}" outside the target folder`);
  return path.join(root, ...parts);
}

/** File writes in flight at once while extracting (many small files: latency-bound, not bandwidth-bound). */
const EXTRACT_WRITES_IN_FLIGHT = 32;

/** Untars a .tar/.tar.gz into `dest` (which must exist); regular files and folders only. Returns the file count. */
export async function extractTar(archive: string, dest: string): Promise<number> {
  const made = new Set<string>([dest]);
  const mkdir = async (dir: string): Promise<void> => {
    if (made.has(dir)) return;
    await fs.promises.mkdir(dir, { recursive: true });
    made.add(dir);
  };
  const pending = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  let files = 0;
  for await (const entry of readTarFile(archive)) {
    if (failure) break;
    if (entry.type === "directory") await mkdir(safeJoin(dest, entry.name));
    else if (entry.type === "file") {
      const out = safeJoin(dest, entry.name);
      await mkdir(path.dirname(out));
      if (pending.size >= EXTRACT_WRITES_IN_FLIGHT) await Promise.race(pending);
      const write: Promise<void> = fs.promises
        .writeFile(out, entry.data)
        .catch((error: unknown) => void (failure ??= { error }))
        .finally(() => pending.delete(write));
      pending.add(write);
      files++;
    } // NOTE: links and special files are skipped; the data set archives have none
  }
  await Promise.all(pending);
  if (failure) throw failure.error;
  return files;
}

/** Counts of images per split of an extracted data set, checked against the spec; throws naming every mismatch. */
async function checkCounts(name: BuiltinName, root: string): Promise<void> {
  const spec = BUILTIN_DATASETS[name];
  const problems: string[] = [];
  for (const [split, { dir, count }] of Object.entries(spec.splits)) {
    const splitDir = path.join(root, dir);
    const found = fs.existsSync(splitDir) ? (await folderSource(splitDir)).length : 0;
    if (found !== count) problems.push(`${name}/${split}: expected ${count} images in ${splitDir}, found ${found}`);
  }
  if (problems.length) throw new Error(problems.join("; "));
}

/** The data set's extracted root, extracting the archive first if needed. */
export async function ensureBuiltinExtracted(name: BuiltinName, options: BuiltinOptions = {}): Promise<string> {
  const spec = BUILTIN_DATASETS[name];
  const parent = path.join(options.cacheDir ?? CACHE_DIR, "datasets");
  const target = path.join(parent, name);
  if (fs.existsSync(target)) return target;

  const archive = path.join(options.archivesDir ?? DATASETS_DIR, spec.archive);
  if (!fs.existsSync(archive)) throw new Error(`builtin ${name}: archive ${archive} not found (set SEERKIT_DATASETS to the folder holding it)`);
  await fs.promises.mkdir(parent, { recursive: true });
  const tmp = await fs.promises.mkdtemp(path.join(parent, `.tmp-${name}-`));
  try {
    options.log?.(`extracting ${archive} into ${target}`);
    await extractTar(archive, tmp);
    try {
      await checkCounts(name, tmp);
    } catch (e) {
      throw new Error(`builtin ${name}: archive ${archive} does not have the expected contents: ${(e as Error).message}`);
    }
    try {
      await fs.promises.rename(tmp, target);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== "ENOTEMPTY" && code !== "EEXIST") || !fs.existsSync(target)) throw e;
      // Another process finished first: use its copy.
    }
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
  return target;
}

/**
 * A built-in data set split as an indexed folder source (labelled where the data set has classes), extracting it
 * on first use. Throws when the split's image count differs from the README's.
 */
export async function builtinDataset(name: BuiltinName, split: string, options: BuiltinOptions = {}): Promise<IndexedImageSource> {
  if (!isBuiltinName(name)) throw new Error(`builtin: unknown data set "${name}" (known: ${Object.keys(BUILTIN_DATASETS).join(", ")})`);
  const spec = BUILTIN_DATASETS[name];
  const s = spec.splits[split];
  if (s === undefined) throw new Error(`builtin ${name}: unknown split "${split}" (known: ${Object.keys(spec.splits).join(", ")})`);
  const root = await ensureBuiltinExtracted(name, options);
  const splitDir = path.join(root, s.dir);
  const source = fs.existsSync(splitDir) ? await folderSource(splitDir, { labels: spec.labels, description: `builtin:${name}/${split}` }) : undefined;
  const found = source?.length ?? 0;
  if (source === undefined || found !== s.count) {
    throw new Error(`builtin ${name}/${split}: expected ${s.count} images in ${splitDir}, found ${found} (delete ${root} to extract it again)`);
  }
  return source;
}
