// The geometric half of multi-crop, off the main thread: read → decode (decode.ts, sharp) → per crop, torchvision's
// RandomResizedCrop box (multicrop.ts) → resize to the crop side, with Pillow's BILINEAR in JS (resample.ts, the
// default) or a libvips kernel (sharp extract + resize) → 8-bit RGB planes written straight into the batch's
// staging buffer, crop-major (SwAV's layout: crop j of image b is row j * B + b of its group), so that the main
// thread's conversion to a float (N, 3, S, S) tensor is one contiguous copy.
//
// Two ways to run it, both behind `DecodePool`:
// - in process (`workers: 0`): sharp's own asynchronous calls, whose work runs on libuv's thread pool
//   (UV_THREADPOOL_SIZE threads), a bounded number of images in flight (the JS resize then runs on this thread);
// - worker threads (`workers: N`, node:worker_threads, like sharp inside a PyTorch-style DataLoader): each thread runs
//   this file, queues the tasks it is sent, and writes into SharedArrayBuffers, so the main thread only hands out
//   work. The threads run at a lower priority (nice +10): the main thread's tensor work is the critical path.
// Measured on Imagenette with 2 CPUs, worker threads with the JS resize were the fastest (see src/bench/data_bench.ts);
// sharp's per-crop libvips pipelines cost about twice the CPU time of the JS resize.
// This file imports no tensor code: the native torch addon is only ever loaded on the main thread.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import sharp from "sharp";
import { isMainThread, parentPort, Worker, workerData } from "worker_threads";
import { DecodeError, decodeImage, type DecodeOptions, type SkipReason } from "./decode";
import { drawCropBoxes, type CropGroup, type ResizeKernel, type SampleKey } from "./multicrop";
import { resizedCropBilinear } from "./resample";

/** One image to crop into slot `slot` of a batch of `batchSize`. */
export interface CropTask {
  /** Where the bytes are: a file, or the bytes themselves (tar members). `where` names the image in logs. */
  path?: string;
  bytes?: Uint8Array;
  where: string;
  key: SampleKey;
  slot: number;
  batchSize: number;
  /** Per crop group, the group's staging buffer: (count * batchSize, 3, size, size) uint8, crops as RGB planes. */
  targets: Uint8Array[];
}

export type CropResult =
  | { ok: true; width: number; height: number; /** (crops, 4): top, left, height, width per crop, group by group */ boxes: number[] }
  | { ok: false; reason: SkipReason; detail: string };

/** What every task of a pool shares. */
export interface CropSettings {
  crops: readonly CropGroup[];
  resizeKernel: ResizeKernel;
  decode: DecodeOptions;
}

/** Copies (h, w, 3) interleaved pixels, rows `stride` pixels apart from (top, left), as (3, h, w) planes. */
function toPlanes(src: Uint8Array, stride: number, top: number, left: number, h: number, w: number, dst: Uint8Array, offset: number): void {
  const plane = h * w;
  for (let y = 0; y < h; y++) {
    let p = ((top + y) * stride + left) * 3;
    const o = offset + y * w;
    for (let x = 0; x < w; x++, p += 3) {
      dst[o + x] = src[p]!;
      dst[o + plane + x] = src[p + 1]!;
      dst[o + 2 * plane + x] = src[p + 2]!;
    }
  }
}

/** Decodes one image and writes its crops; bad data is a result, not an exception. */
export async function runCropTask(task: CropTask, settings: CropSettings): Promise<CropResult> {
  let bytes: Buffer;
  if (task.bytes !== undefined) bytes = Buffer.from(task.bytes.buffer, task.bytes.byteOffset, task.bytes.byteLength);
  else if (task.path !== undefined) {
    try {
      // A worker thread may block on its own reads (cheaper than libuv's round trips); the main thread may not.
      bytes = isMainThread ? await fs.promises.readFile(task.path) : fs.readFileSync(task.path);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return { ok: false, reason: "unreadable", detail: `cannot read (${err.code ?? err.message})` };
    }
  } else return { ok: false, reason: "no_image", detail: "record has no image bytes and no path" };

  let image: Awaited<ReturnType<typeof decodeImage>>;
  try {
    image = await decodeImage(bytes, settings.decode);
  } catch (e) {
    if (e instanceof DecodeError) return { ok: false, reason: e.reason, detail: e.message };
    throw e;
  }
  const { width, height, data } = image;
  const boxes = drawCropBoxes(task.key, width, height, settings.crops);
  const flat: number[] = [];
  const jobs: Promise<void>[] = [];
  settings.crops.forEach((g, gi) => {
    const target = task.targets[gi]!;
    const cropBytes = g.size * g.size * 3;
    boxes[gi]!.forEach((box, j) => {
      flat.push(box.top, box.left, box.height, box.width);
      const offset = (j * task.batchSize + task.slot) * cropBytes;
      if (box.width === g.size && box.height === g.size) {
        toPlanes(data, width, box.top, box.left, box.height, box.width, target, offset);
        return;
      }
      if (settings.resizeKernel === "pil-bilinear") {
        resizedCropBilinear(data, width, box, g.size, g.size, target, offset, "chw");
        return;
      }
      jobs.push(
        sharp(data, { raw: { width, height, channels: 3 } })
          .extract({ left: box.left, top: box.top, width: box.width, height: box.height })
          .resize(g.size, g.size, { fit: "fill", kernel: settings.resizeKernel })
          .raw()
          .toBuffer()
          .then((out) => {
            if (out.length !== cropBytes) throw new Error(`crop resize gave ${out.length} bytes, expected ${cropBytes}`);
            toPlanes(out, g.size, 0, 0, g.size, g.size, target, offset);
          }),
      );
    });
  });
  await Promise.all(jobs);
  return { ok: true, width, height, boxes: flat };
}

// ---------------------------------------------------------------------------------------------------------------
// Worker side

const WORKER_KIND = "seerkit-crop-worker";

interface WorkerInit {
  kind: typeof WORKER_KIND;
  settings: CropSettings;
  /** Tasks a worker runs at once (one can wait on sharp while another resizes in JS). */
  concurrency: number;
  /** Added to this thread's nice value (Linux), so that the main thread, which runs the tensor ops, goes first. */
  niceness: number;
}

/**
 * Raises the calling thread's nice value by `niceness` (Linux: setpriority on the thread id from /proc/thread-self;
 * unprivileged, only ever lowering priority). Elsewhere, or if refused, nothing happens.
 */
function lowerThreadPriority(niceness: number): void {
  try {
    const tid = Number(path.basename(fs.readlinkSync("/proc/thread-self")));
    if (Number.isInteger(tid)) os.setPriority(tid, Math.min(19, os.getPriority(tid) + niceness));
  } catch {
    // not Linux, or not allowed: run at normal priority
  }
}

interface WorkerRequest {
  id: number;
  task: CropTask;
}

type WorkerReply = { id: number; result: CropResult } | { id: number; error: string };

if (!isMainThread && (workerData as Partial<WorkerInit> | null)?.kind === WORKER_KIND) {
  const { settings, concurrency, niceness } = workerData as WorkerInit;
  const port = parentPort!;
  if (niceness !== 0) lowerThreadPriority(niceness);
  // The main thread posts tasks as soon as it knows them, so this thread keeps working while the main thread is
  // busy with tensor work; the queue lives here.
  const queue: WorkerRequest[] = [];
  let running = 0;
  const pump = (): void => {
    while (running < concurrency && queue.length > 0) {
      const m = queue.shift()!;
      running++;
      runCropTask(m.task, settings)
        .then(
          (result) => port.postMessage({ id: m.id, result } satisfies WorkerReply),
          (e: unknown) => port.postMessage({ id: m.id, error: e instanceof Error ? e.stack ?? e.message : String(e) } satisfies WorkerReply),
        )
        .finally(() => {
          running--;
          pump();
        });
    }
  };
  port.on("message", (m: WorkerRequest) => {
    queue.push(m);
    pump();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Main side

export interface DecodePoolOptions extends CropSettings {
  /** Worker threads; 0 runs sharp's asynchronous calls on this thread (its work still runs on libuv's pool). */
  workers: number;
  /** Images decoding at once: per worker thread (default 2), or in process (default 8). */
  inFlight?: number;
  /** Nice value added to worker threads (Linux), so the main thread's tensor work goes first. Default 10; 0 off. */
  niceness?: number;
}

interface Pending {
  task: CropTask;
  resolve: (r: CropResult) => void;
  reject: (e: Error) => void;
}

/**
 * Crop tasks in process or on worker threads. With workers, every task is posted at once to the thread with the
 * fewest outstanding tasks and queued there; in process, at most `inFlight` run at once.
 */
export class DecodePool {
  private readonly workers: Worker[] = [];
  private readonly outstanding: number[] = [];
  private readonly queue: Pending[] = [];
  private readonly waiting = new Map<number, Pending & { worker: number }>();
  private readonly inFlight: number;
  private running = 0;
  private nextId = 0;
  private closed = false;
  private failure: Error | undefined;

  constructor(private readonly o: DecodePoolOptions) {
    if (!Number.isInteger(o.workers) || o.workers < 0) throw new Error(`Expected non-negative integer for workers but received ${o.workers}`);
    this.inFlight = o.inFlight ?? (o.workers === 0 ? 8 : 2);
    if (!Number.isInteger(this.inFlight) || this.inFlight < 1) throw new Error(`Expected positive integer for inFlight but received ${this.inFlight}`);
    const settings: CropSettings = { crops: o.crops, resizeKernel: o.resizeKernel, decode: o.decode };
    for (let i = 0; i < o.workers; i++) {
      const init: WorkerInit = { kind: WORKER_KIND, settings, concurrency: this.inFlight, niceness: o.niceness ?? 10 };
      const w = new Worker(__filename, { workerData: init });
      w.on("message", (m: WorkerReply) => this.onReply(i, m));
      w.on("error", (e) => this.fail(new Error(`decode worker ${i} failed: ${e.message}`)));
      w.on("exit", (code) => {
        if (!this.closed) this.fail(new Error(`decode worker ${i} exited with code ${code}`));
      });
      w.unref(); // referenced only while it has work (below), so an idle pool never keeps the process alive
      this.workers.push(w);
      this.outstanding.push(0);
    }
  }

  /** Staging memory the tasks can write into: shared with the worker threads when there are any. */
  allocate(bytes: number): Uint8Array {
    return this.o.workers > 0 ? new Uint8Array(new SharedArrayBuffer(bytes)) : new Uint8Array(bytes);
  }

  /** Decodes and crops one image; resolves with the result once its crops are in the staging buffers. */
  run(task: CropTask): Promise<CropResult> {
    if (this.closed) return Promise.reject(new Error("DecodePool: closed"));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<CropResult>((resolve, reject) => {
      if (this.workers.length > 0) this.post({ task, resolve, reject });
      else {
        this.queue.push({ task, resolve, reject });
        this.pump();
      }
    });
  }

  /** In process: start queued tasks while fewer than `inFlight` run. */
  private pump(): void {
    while (this.running < this.inFlight && this.queue.length > 0) {
      const p = this.queue.shift()!;
      this.running++;
      runCropTask(p.task, this.o)
        .then(p.resolve, (e: unknown) => p.reject(e instanceof Error ? e : new Error(String(e))))
        .finally(() => {
          this.running--;
          this.pump();
        });
    }
  }

  /** Worker threads: hand the task to the thread with the fewest outstanding tasks. */
  private post(p: Pending): void {
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.outstanding[i]! < this.outstanding[w]!) w = i;
    const id = this.nextId++;
    if (this.outstanding[w]!++ === 0) this.workers[w]!.ref();
    this.waiting.set(id, { ...p, worker: w });
    const task = p.task;
    // Tar members are slices of bigger buffers: send a copy of just the bytes, transferred, not cloned.
    const bytes = task.bytes !== undefined ? task.bytes.slice() : undefined;
    const message: WorkerRequest = { id, task: { ...task, bytes } };
    this.workers[w]!.postMessage(message, bytes !== undefined ? [bytes.buffer as ArrayBuffer] : []);
  }

  private onReply(worker: number, m: WorkerReply): void {
    const p = this.waiting.get(m.id);
    if (p === undefined) return;
    this.waiting.delete(m.id);
    if (--this.outstanding[worker]! === 0) this.workers[worker]!.unref();
    if ("error" in m) p.reject(new Error(`decode worker ${worker}: ${m.error}`));
    else p.resolve(m.result);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.waiting.values()) p.reject(e);
    this.waiting.clear();
    for (const p of this.queue.splice(0)) p.reject(e);
  }

  /** Stops the worker threads; tasks not finished yet are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new Error("DecodePool: closed"));
    await Promise.all(this.workers.map((w) => w.terminate()));
    for (const p of this.waiting.values()) p.reject(new Error("DecodePool: closed"));
    this.waiting.clear();
  }
}
