// Pretraining test support.
// - runChildUntil runs `seer pretrain ARGS...` in a child process (the compiled train/pretrain.js, which is its own
//   entry point), so tests can kill it (SIGKILL, SIGINT) mid-run.
// - Imported, it makes the tests' fixture: a folder of small deterministic images and a tiny run config.
import { spawn, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import sharp from "sharp";
export const CHILD_SCRIPT = require.resolve("../../src/train/pretrain");

/** `count` images of side `size` in `dir` (PNG): seeded noise over a per-image colour gradient and a square. */
export async function makeImages(dir: string, count: number, size = 24): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  let state = 12345;
  const rand = (): number => {
    state = (state * 1103515245 + 12345) >>> 0; // an LCG: the same pixels on every machine
    return state / 2 ** 32;
  };
  for (let i = 0; i < count; i++) {
    const px = Buffer.alloc(size * size * 3);
    const [r, g, b] = [rand() * 255, rand() * 255, rand() * 255];
    const sq = Math.floor(rand() * (size / 2));
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const o = (y * size + x) * 3;
        const inSquare = x >= sq && x < sq + size / 2 && y >= sq && y < sq + size / 2;
        px[o] = Math.min(255, (inSquare ? 255 - r : r) * (x / size) + 40 * rand());
        px[o + 1] = Math.min(255, (inSquare ? 255 - g : g) * (y / size) + 40 * rand());
        px[o + 2] = Math.min(255, b + 40 * rand());
      }
    }
    await sharp(px, { raw: { width: size, height: size, channels: 3 } }).png().toFile(path.join(dir, `img${String(i).padStart(3, "0")}.png`));
  }
}

/** A tiny SwAV run over `imagesDir` (a narrow RegNetY, 16/8 px crops, batch 8, LARC, queue, frozen prototypes). */
export function tinyRunConfig(imagesDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, Record<string, unknown> | string> = {
    preset: "swav-cifar-tiny",
    model: { arch: "regnet_y_200mf", smallImageStem: true, depth: 3, w0: 8, wa: 8, wm: 2, groupWidth: 8 },
    data: { source: imagesDir, crops: "2x16@0.3-1+2x8@0.1-0.3", batchSize: 8, workers: 0 },
    optim: { larc: true, baseLrPer256: 4.8, warmupIters: 2 },
    schedule: { iterations: 15 },
    swav: { headDims: [32, 16], prototypes: 16, freezePrototypesIters: 4, queueLength: 16, queueStartEpoch: 1 },
    run: { seed: 3, threads: 1, checkpointEvery: 3, keep: 10, logEvery: 1 },
    knn: { enabled: false },
  };
  for (const [k, v] of Object.entries(extra)) {
    const cur = base[k];
    base[k] = typeof cur === "object" && typeof v === "object" && v !== null ? { ...cur, ...(v as Record<string, unknown>) } : (v as string);
  }
  return base;
}

/** A fresh temp folder with `images/` (40 images) and `tiny.json` (tinyRunConfig, with `extra` merged in). */
export async function makeFixture(extra: Record<string, unknown> = {}): Promise<{ dir: string; configFile: string; imagesDir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-pretrain-"));
  const imagesDir = path.join(dir, "images");
  await makeImages(imagesDir, 40);
  const configFile = path.join(dir, "tiny.json");
  fs.writeFileSync(configFile, JSON.stringify(tinyRunConfig(imagesDir, extra), null, 1));
  return { dir, configFile, imagesDir };
}

/** The largest `step` in a run folder's metrics.jsonl (-1 when there is none yet). */
export function lastMetricsStep(runDir: string): number {
  const file = path.join(runDir, "metrics.jsonl");
  if (!fs.existsSync(file)) return -1;
  let last = -1;
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    try {
      const step = (JSON.parse(line) as { step?: unknown }).step;
      if (typeof step === "number") last = Math.max(last, step);
    } catch {
      // a partial line
    }
  }
  return last;
}

/**
 * Runs the child with `args`, sends `signal` once metrics.jsonl shows a step >= `atStep`, and resolves with how it
 * ended and what it printed.
 */
export function runChildUntil(args: string[], runDir: string, atStep: number, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string; sentAt: number }> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [CHILD_SCRIPT, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    let sentAt = -1;
    const timer = setInterval(() => {
      const step = lastMetricsStep(runDir);
      if (sentAt < 0 && step >= atStep) {
        sentAt = step;
        child.kill(signal);
      }
    }, 10);
    child.on("error", (e) => {
      clearInterval(timer);
      reject(e);
    });
    child.on("exit", (code, sig) => {
      clearInterval(timer);
      resolve({ code, signal: sig, output, sentAt });
    });
  });
}

