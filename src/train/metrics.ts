// What a pretraining run reports: metrics.jsonl in the run folder (one JSON object a line, as VISSL's
// metrics.json / stdout.json), and the throughput window behind its images_per_s and data_wait_share.
//
// A resumed run first drops the lines of steps after the checkpoint it resumes from (they will be computed again),
// so the file reads as one uninterrupted run.
import * as fs from "fs";

/** One line of metrics.jsonl. `step` counts completed iterations (the line for step 5 reports the 5th). */
export interface MetricsLine {
  step: number;
  /** Epoch (0-based) of the step's batch. */
  epoch: number;
  /** The step's loss (the last of the window). */
  loss: number;
  /** The learning rate the step used (of the first parameter group). */
  lr: number;
  /** Images per second of wall time over the window since the previous line. */
  images_per_s: number;
  /** Share of that wall time spent waiting for the data loader. */
  data_wait_share: number;
  /** Top-1 kNN accuracy in [0, 1] of the monitor, on lines where it ran. */
  knn?: number;
}

/** The line a fresh run writes before training: the monitor's kNN accuracy of the random init. */
export interface InitialKnnLine {
  step: 0;
  epoch: 0;
  knn: number;
}

export class MetricsLog {
  constructor(readonly file: string) {}

  /** Keeps only lines with step <= `step` (a resumed run recomputes the rest); creates the file if needed. */
  truncateAfter(step: number): void {
    if (!fs.existsSync(this.file)) {
      fs.writeFileSync(this.file, "");
      return;
    }
    const kept = fs
      .readFileSync(this.file, "utf8")
      .split("\n")
      .filter((line) => {
        if (line.trim() === "") return false;
        try {
          const parsed = JSON.parse(line) as { step?: unknown };
          return typeof parsed.step === "number" && parsed.step <= step;
        } catch {
          return false; // a line cut by a kill
        }
      });
    fs.writeFileSync(this.file, kept.map((l) => l + "\n").join(""));
  }

  append(line: MetricsLine | InitialKnnLine): void {
    fs.appendFileSync(this.file, JSON.stringify(line) + "\n");
  }

  /** Every line, parsed (for summaries and tests). */
  read(): (MetricsLine | InitialKnnLine)[] {
    if (!fs.existsSync(this.file)) return [];
    return fs
      .readFileSync(this.file, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as MetricsLine | InitialKnnLine];
        } catch {
          return [];
        }
      });
  }
}

/** Wall time, images and data-loader waits since the last take(). */
export class ThroughputWindow {
  private start = performance.now();
  private images = 0;
  private waitMs = 0;

  /** Counts one step of `images` images that waited `waitMs` for its batch. */
  add(images: number, waitMs: number): void {
    this.images += images;
    this.waitMs += waitMs;
  }

  /** images/s and the data-wait share over the window, then starts a new window. */
  take(): { imagesPerS: number; dataWaitShare: number } {
    const now = performance.now();
    const ms = Math.max(now - this.start, 1e-6);
    const r = { imagesPerS: (this.images * 1000) / ms, dataWaitShare: Math.min(1, this.waitMs / ms) };
    this.start = now;
    this.images = 0;
    this.waitMs = 0;
    return r;
  }

  /** Starts a new window without reporting (e.g. after a kNN evaluation or a checkpoint). */
  reset(): void {
    this.take();
  }
}
