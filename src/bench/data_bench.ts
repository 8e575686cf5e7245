// `seer bench data`: seerkit's multi-crop loader against a torchvision + PIL DataLoader doing the same multi-crop on
// the same files and cores, side by side in one run. Both produce SwAV/SEER batches: per resolution one crop-major
// (count * B, 3, S, S) float tensor, normalized, with flip, colour jitter, grayscale and blur per crop. The baseline
// is bench/torchvision_multicrop_bench.py (from /work/shared/anchors/torchvision_multicrop.py), run with Debian's
// python3-torch. Rounds alternate the two engines so that load from other processes hits both alike; each engine's
// best round counts. The first `warmup` batches of a round (worker start-up, first allocations) are not timed.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DecodeStats } from "../data/decode";
import { MultiCropLoader } from "../data/loader";
import { formatCropSpec, multiCropConfig, type ResizeKernel } from "../data/multicrop";
import { Rng } from "../data/rng";
import { resolveSource } from "../data/scan";
import { isIndexed, type ImageRecord, type IndexedImageSource } from "../data/sources";
import { getNumThreads, setNumThreads, torchVersion } from "../tensor";
import { PACKAGE_ROOT } from "../util/paths";

export interface DataBenchOptions {
  /** Image source spec: folder, list.txt, builtin:NAME/SPLIT (the baseline needs files, so no tar shards). */
  data: string;
  /** Crops per image, e.g. "2x224+4x96" (SEER's scales by default; "2x224@0.14-1+4x96@0.05-0.14" sets them). */
  crops: string;
  /** Decode workers: seerkit's worker threads and the DataLoader's worker processes. */
  workers: number;
  /** Timed batches per round. */
  batches: number;
  /** Images per batch. */
  batch: number;
  /** libtorch intra-op threads, both engines (main process). */
  threads: number;
  /** Python with torch and torchvision. */
  python: string;
  /** Print one JSON object instead of the table. */
  json?: boolean;
  /** Untimed batches at the start of each round. Default 2. */
  warmup?: number;
  /** Rounds, alternating the engines. Default 2. */
  rounds?: number;
  /** Seed of the file subset and of seerkit's augmentation. Default 0. */
  seed?: number;
  /** seerkit's crop resize (default "pil-bilinear", as torchvision on PIL images; "linear" etc. run in libvips). */
  resize?: ResizeKernel;
  /** Skip the torchvision baseline. */
  noBaseline?: boolean;
  /** Where the report goes. Default console.log. */
  print?: (text: string) => void;
}

export interface DataEngineResult {
  engine: string;
  workers: number;
  threads: number;
  batch: number;
  /** Timed images (batches × batch). */
  images: number;
  seconds: number;
  images_per_s: number;
  /** From the start until the first timed batch (worker start-up and warm-up batches). */
  startup_s: number;
  /** CPU time (all threads and worker processes) per timed image: less sensitive to other load than images/s. */
  cpu_ms_per_image: number;
}

export interface DataBenchResult {
  data: string;
  crops: string;
  files: number;
  cpus: number;
  seerkit: DataEngineResult;
  torchvision?: DataEngineResult;
  /** seerkit images/s over torchvision's (goal >= 2). */
  speedup?: number;
  /** Bad images seerkit skipped in its rounds. */
  skipped: number;
}

/** The first `n` records of a seeded permutation of `source`: the same files for both engines, spread over classes. */
function subset(source: IndexedImageSource, n: number, seed: number): IndexedImageSource {
  const perm = Rng.forKey(seed, "bench-subset").permutation(source.length);
  const records: ImageRecord[] = Array.from(perm.subarray(0, Math.min(n, source.length)), (i) => source.at(i));
  return {
    description: `${source.description} (${records.length} images)`,
    length: records.length,
    at: (i) => records[i]!,
    async *[Symbol.asyncIterator]() {
      yield* records;
    },
  };
}

async function benchSeerkit(source: IndexedImageSource, o: DataBenchOptions, warmup: number, stats: DecodeStats): Promise<DataEngineResult> {
  setNumThreads(o.threads);
  const augment = multiCropConfig({ crops: o.crops, resizeKernel: o.resize });
  const loader = new MultiCropLoader(source, { batchSize: o.batch, augment, workers: o.workers, seed: o.seed ?? 0, stats });
  const t0 = process.hrtime.bigint();
  let tSteady = t0;
  let cpuSteady = process.cpuUsage();
  let n = 0;
  let end = t0;
  let cpu: NodeJS.CpuUsage = cpuSteady;
  try {
    for await (const batch of loader) {
      batch.dispose();
      n++;
      if (n === warmup) {
        tSteady = process.hrtime.bigint();
        cpuSteady = process.cpuUsage();
      }
      if (n === warmup + o.batches) {
        end = process.hrtime.bigint();
        cpu = process.cpuUsage(cpuSteady); // this process's threads: the main thread and the decode workers
        break;
      }
    }
  } finally {
    await loader.close();
  }
  if (n < warmup + o.batches) throw new Error(`bench data: only ${n} batches of ${o.batch} from ${source.description}`);
  const seconds = Number(end - tSteady) / 1e9;
  const images = o.batches * o.batch;
  return {
    engine: `seerkit, ${o.workers > 0 ? `${o.workers} worker threads` : "in process"}, ${augment.resizeKernel} resize (libtorch ${torchVersion()}, sharp)`,
    workers: o.workers,
    threads: getNumThreads(),
    batch: o.batch,
    images,
    seconds,
    images_per_s: images / seconds,
    startup_s: Number(tSteady - t0) / 1e9,
    cpu_ms_per_image: (cpu.user + cpu.system) / 1e3 / images,
  };
}

function benchTorchvision(listFile: string, cropSpec: string, o: DataBenchOptions, warmup: number): DataEngineResult {
  const script = path.join(PACKAGE_ROOT, "bench", "torchvision_multicrop_bench.py");
  const args = [script, listFile, "--crops", cropSpec, "--workers", String(o.workers), "--batch", String(o.batch), "--batches", String(o.batches)];
  args.push("--warmup", String(warmup), "--threads", String(o.threads), "--seed", String(o.seed ?? 0));
  const out = execFileSync(o.python, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return JSON.parse(out.trim().split("\n").pop()!) as DataEngineResult;
}

const fastest = (rs: DataEngineResult[]): DataEngineResult => rs.reduce((a, b) => (b.images_per_s > a.images_per_s ? b : a));

/** Runs both engines, prints the comparison (table or JSON), and returns it. */
export async function runDataBench(o: DataBenchOptions): Promise<DataBenchResult> {
  const print = o.print ?? ((t: string) => console.log(t));
  const warmup = o.warmup ?? 2;
  const rounds = o.rounds ?? 2;
  const checks = [["workers", o.workers, 0], ["batches", o.batches, 1], ["batch", o.batch, 1], ["threads", o.threads, 1], ["rounds", rounds, 1], ["warmup", warmup, 0]] as const;
  for (const [name, v, min] of checks) {
    if (!Number.isInteger(v) || v < min) throw new Error(`Expected integer >= ${min} for ${name} but received ${v}`);
  }
  const config = multiCropConfig({ crops: o.crops });
  // The crop spec with every scale written out, for the Python side.
  const cropSpec = config.crops.map((g) => `${g.count}x${g.size}@${g.scale[0]}-${g.scale[1]}`).join("+");
  const source = await resolveSource(o.data);
  if (!isIndexed(source)) {
    throw new Error(`bench data: ${source.description} is a stream; the baseline needs image files (a folder, a .txt list or builtin:NAME/SPLIT)`);
  }
  // A few more files than needed, so that drop_last and skipped files never run a round short.
  const files = subset(source, (warmup + o.batches) * o.batch + o.batch, o.seed ?? 0);
  const stats = new DecodeStats(() => undefined);

  let listFile: string | undefined;
  const ours: DataEngineResult[] = [];
  const theirs: DataEngineResult[] = [];
  try {
    if (!o.noBaseline) {
      const paths = Array.from({ length: files.length }, (_, i) => files.at(i).path);
      if (paths.some((p) => p === undefined)) throw new Error(`bench data: ${source.description} has records without files; the baseline needs paths`);
      listFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-bench-data-")), "files.txt");
      fs.writeFileSync(listFile, paths.join("\n") + "\n");
    }
    for (let r = 0; r < rounds; r++) {
      ours.push(await benchSeerkit(files, o, warmup, stats));
      if (listFile !== undefined) theirs.push(benchTorchvision(listFile, cropSpec, o, warmup));
    }
  } finally {
    if (listFile !== undefined) fs.rmSync(path.dirname(listFile), { recursive: true, force: true });
  }
  const seerkit = fastest(ours);
  const result: DataBenchResult = {
    data: o.data,
    crops: formatCropSpec(config.crops),
    files: files.length,
    cpus: os.availableParallelism(),
    seerkit,
    skipped: stats.totalSkipped,
  };
  if (theirs.length > 0) {
    result.torchvision = fastest(theirs);
    result.speedup = seerkit.images_per_s / result.torchvision.images_per_s;
  }
  print(o.json ? JSON.stringify(result) : formatDataBench(result));
  return result;
}

export function formatDataBench(r: DataBenchResult): string {
  const row = (e: DataEngineResult): string =>
    `  ${e.images_per_s.toFixed(1).padStart(8)} images/s  ${e.cpu_ms_per_image.toFixed(1).padStart(5)} CPU ms/image  ` +
    `(${e.images} images in ${e.seconds.toFixed(2)} s after ${e.startup_s.toFixed(2)} s start-up)  ${e.engine}`;
  const lines = [
    `multi-crop ${r.crops} from ${r.data}: ${r.files} files, batch ${r.seerkit.batch}, ${r.seerkit.workers} workers, ` +
      `${r.seerkit.threads} libtorch threads, ${r.cpus} CPUs (best round of each engine)`,
    row(r.seerkit),
  ];
  if (r.torchvision) {
    lines.push(
      row(r.torchvision),
      `  speedup (seerkit / torchvision images/s): ${r.speedup!.toFixed(2)}x  (goal >= 2); ` +
        `CPU time per image: ${(r.torchvision.cpu_ms_per_image / r.seerkit.cpu_ms_per_image).toFixed(2)}x less`,
    );
  }
  if (r.skipped > 0) lines.push(`  seerkit skipped ${r.skipped} bad images`);
  return lines.join("\n");
}
