// The multi-crop data loader: SwAV/SEER batches as tensors, decoded ahead of the training loop, resumable mid-epoch.
//
// Per batch of B images: the sampler (sampler.ts) picks this rank's next B records → the decode pool
// (decode_worker.ts: worker threads, or sharp's libuv pool) decodes each image and writes its RandomResizedCrops as
// 8-bit RGB planes into the batch's staging buffers → on the main thread, each resolution group becomes one uint8
// tensor on the device, then float in [0, 1], then goes through the photometric chain as batched tensor ops
// (transforms.ts) → one (count * B, 3, S, S) tensor per group, crop-major as in SwAV (rows j * B + b: crop j of
// image b). Up to `prefetch` batches are decoding while the consumer trains on the current one.
//
// Reproducibility: every random choice comes from rng.ts keyed by (seed, epoch, image, ...), so the same seed gives
// the same batches whatever the number of workers or their timing. Bad images are skipped, counted in DecodeStats,
// and replaced (deterministically) so that every batch has exactly B images. `state()` is what a checkpoint stores;
// `loadState()` continues the epoch where it stopped.
//
// Not like torch's DataLoader: batches are handed out in order only (no out-of-order fast path), the last partial
// batch of a rank's epoch is dropped (VISSL's DROP_LAST), and output buffers are reused: disposing a batch hands its
// tensors back to the loader, so clone() anything that must outlive it.
import * as os from "os";
import { DecodeStats, type DecodeOptions } from "./decode";
import { DecodePool, type CropResult, type CropTask } from "./decode_worker";
import { SEER_MULTICROP, drawBatchPhotometric, type MultiCropConfig, type PhotometricParams, type SampleKey } from "./multicrop";
import { Rng, hashString } from "./rng";
import { DistributedSampler, checkShard, shuffledStream, type SamplerState, type StreamSample } from "./sampler";
import { resolveSource, type ResolveOptions } from "./scan";
import { isIndexed, type ImageRecord, type ImageSource, type IndexedImageSource } from "./sources";
import { applyPhotometric_, fromUint8_ } from "./transforms";
import { empty, keep, tensor, tidy, type Device, type Tensor } from "../tensor";

export interface LoaderOptions {
  /** Images per batch on this rank. */
  batchSize: number;
  /** The augmentation; default SEER's 2x224 + 4x96 (see multiCropConfig for overrides). */
  augment?: MultiCropConfig;
  /** Seed of permutations, crops and photometric parameters. Default 0. */
  seed?: number;
  /** New image order every epoch. Default true. */
  shuffle?: boolean;
  /** Distributed data parallel: this rank and the number of ranks. Default 0 of 1. */
  rank?: number;
  worldSize?: number;
  /** Indexed sources: cut each epoch to a multiple of worldSize instead of padding it. Default false. */
  dropLast?: boolean;
  /** Decode worker threads; 0 decodes with sharp's asynchronous calls on libuv's pool. Default: CPU count, at most 8. */
  workers?: number;
  /** Images decoding at once: per worker thread (default 2), or in process (default 8). */
  inFlight?: number;
  /** Nice value added to the worker threads (Linux), so that the main thread's tensor work goes first. Default 10. */
  workerNiceness?: number;
  /** Batches decoded ahead of the consumer. Default 3. */
  prefetch?: number;
  /** Where the batches go. Default "cpu". */
  device?: Device;
  /** Streaming sources: records held by the shuffle buffer. Default 1000. */
  shuffleBuffer?: number;
  /** Decoder settings (pixel limit, strictness). */
  decode?: DecodeOptions;
  /** Where skipped images are counted; default a new DecodeStats that logs each bad file once with console.warn. */
  stats?: DecodeStats;
  /** Replacement attempts for one batch slot before giving up. Default 16. */
  maxReplacements?: number;
  /** Photometric ops: rows per op call (see transforms.ts). Default: about 2^18 floats per call on CPU. */
  maxRowsPerCall?: number;
}

/** What ended up in one slot of a batch. */
export interface SampleInfo {
  /** The record's key in its source. */
  key: string;
  /** Index in an indexed source; -1 for streams. */
  index: number;
  label?: number;
  /** Decoded size (EXIF orientation applied). */
  width: number;
  height: number;
  /** True when the slot's own image was bad and this is its replacement. */
  replaced: boolean;
}

/**
 * One batch: a tensor per crop resolution, and what went into it. The tensors are views of buffers the loader
 * reuses: dispose() the batch (or `using`) when done with it, and clone() what must outlive it.
 */
export class MultiCropBatch implements Disposable {
  /** Per crop group: (count * B, 3, size, size) float32, normalized, crop-major (row j * B + b). */
  readonly crops: Tensor[];

  constructor(
    private readonly buffers: Tensor[],
    readonly epoch: number,
    /** Batch number within the epoch on this rank. */
    readonly step: number,
    readonly samples: SampleInfo[],
    /** Per crop group: (count * B, 4) int32 rows top, left, height, width of each crop in its decoded image. */
    readonly boxes: Int32Array[],
    /** Per crop group: the photometric parameters each crop got. */
    readonly params: PhotometricParams[],
    private readonly release: (buffers: Tensor[]) => void,
  ) {
    this.crops = buffers.map((t) => t.view(...t.shape));
  }

  get batchSize(): number {
    return this.samples.length;
  }

  /** Frees the crop tensors (later use throws) and hands their memory back to the loader. Idempotent. */
  dispose(): void {
    if (this.buffers.length === 0) return;
    for (const t of this.crops) t.dispose();
    this.release(this.buffers.splice(0));
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** One slot of a batch before decoding. */
interface Slot {
  record: ImageRecord;
  index: number;
  key: SampleKey;
  /** Seed material for replacements: the slot's place in the epoch (global position, or stream ordinal). */
  place: number;
}

interface Decoded {
  step: number;
  samples: SampleInfo[];
  keys: SampleKey[];
  boxes: Int32Array[];
  staging: Uint8Array[];
}

let allocatorPrimed = false;

/**
 * NOTE: glibc malloc serves blocks above its mmap threshold (128 KiB at start) with fresh mmap()ed pages, which
 * fault on first touch every time; freeing such a block once raises the threshold to its size (up to 32 MiB) and
 * the trim threshold to twice that, after which batch-sized temporaries are recycled from the heap. One throwaway
 * allocation just under 32 MiB does that for the whole process. Harmless with other allocators.
 */
function primeAllocator(): void {
  if (allocatorPrimed) return;
  allocatorPrimed = true;
  empty([8_000_000], { device: "cpu" }).dispose(); // 32 MB of float32, never touched
}

/** Multi-crop batches from an image source. */
export class MultiCropLoader implements AsyncIterable<MultiCropBatch>, AsyncDisposable {
  readonly config: MultiCropConfig;
  readonly stats: DecodeStats;
  readonly batchSize: number;
  private readonly device: Device;
  private readonly prefetch: number;
  private readonly maxReplacements: number;
  private readonly maxRowsPerCall: number | undefined;
  private readonly sampler: DistributedSampler | undefined;
  private readonly indexed: IndexedImageSource | undefined;
  private readonly stream: { seed: number; epoch: number; position: number; rank: number; worldSize: number; bufferSize: number } | undefined;
  private readonly pool: DecodePool;
  private readonly freeStaging: Uint8Array[][] = [];
  private readonly freeOutputs: Tensor[][];
  private closed = false;
  private iterating = false;

  /** A loader for a source or a source spec (see resolveSource: folder, .txt list, tar shards, builtin:NAME/SPLIT). */
  static async open(source: string | ImageSource, options: LoaderOptions, resolve: ResolveOptions = {}): Promise<MultiCropLoader> {
    return new MultiCropLoader(typeof source === "string" ? await resolveSource(source, resolve) : source, options);
  }

  constructor(readonly source: ImageSource, o: LoaderOptions) {
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new Error(`Expected positive integer for batchSize but received ${o.batchSize}`);
    this.batchSize = o.batchSize;
    this.config = o.augment ?? SEER_MULTICROP;
    this.stats = o.stats ?? new DecodeStats();
    this.device = o.device ?? "cpu";
    this.prefetch = o.prefetch ?? 3;
    if (!Number.isInteger(this.prefetch) || this.prefetch < 1) throw new Error(`Expected positive integer for prefetch but received ${this.prefetch}`);
    this.maxReplacements = o.maxReplacements ?? 16;
    this.maxRowsPerCall = o.maxRowsPerCall;
    const seed = o.seed ?? 0;
    const rank = o.rank ?? 0;
    const worldSize = o.worldSize ?? 1;
    checkShard(rank, worldSize);
    if (isIndexed(source)) {
      this.indexed = source;
      this.sampler = new DistributedSampler({ length: source.length, seed, shuffle: o.shuffle, rank, worldSize, dropLast: o.dropLast });
      if (this.sampler.numSamples < this.batchSize) {
        const n = this.sampler.numSamples;
        throw new Error(`MultiCropLoader: ${source.description} gives rank ${rank} ${n} images per epoch, fewer than one batch of ${this.batchSize}`);
      }
    } else {
      if (o.shuffle === false) {
        throw new Error("MultiCropLoader: a streaming source is always shuffled through its buffer; use shuffleBuffer: 1 for stream order");
      }
      this.stream = { seed, epoch: 0, position: 0, rank, worldSize, bufferSize: o.shuffleBuffer ?? 1000 };
    }
    this.freeOutputs = this.config.crops.map(() => []);
    this.pool = new DecodePool({
      workers: o.workers ?? Math.min(8, os.availableParallelism()),
      inFlight: o.inFlight,
      niceness: o.workerNiceness,
      crops: this.config.crops,
      resizeKernel: this.config.resizeKernel,
      decode: o.decode ?? {},
    });
    primeAllocator();
  }

  /** Batches per epoch on this rank (indexed sources; streams end when they run dry). */
  get batchesPerEpoch(): number | undefined {
    return this.sampler ? Math.floor(this.sampler.numSamples / this.batchSize) : undefined;
  }

  /** Where this rank is: the epoch and the samples of it already handed out. A checkpoint stores this. */
  state(): SamplerState {
    if (this.sampler) return this.sampler.state();
    const s = this.stream!;
    return { seed: s.seed, epoch: s.epoch, position: s.position };
  }

  /** Continues from a saved state (same source, seed, batch size and sharding). Not while iterating. */
  loadState(state: SamplerState): void {
    if (this.iterating) throw new Error("MultiCropLoader: loadState() while a batch iteration is running");
    if (state.position % this.batchSize !== 0) {
      throw new Error(`MultiCropLoader: position ${state.position} is not a multiple of the batch size ${this.batchSize}`);
    }
    if (this.sampler) {
      this.sampler.loadState(state);
      return;
    }
    const s = this.stream!;
    if (state.seed !== s.seed) throw new Error(`MultiCropLoader: state has seed ${state.seed}, this loader has seed ${s.seed}`);
    if (!Number.isInteger(state.epoch) || state.epoch < 0 || !Number.isInteger(state.position) || state.position < 0) {
      throw new Error(`MultiCropLoader: invalid state ${JSON.stringify(state)}`);
    }
    s.epoch = state.epoch;
    s.position = state.position;
  }

  /** The rest of the current epoch. When it has run to the end, the state moves to the next epoch. */
  [Symbol.asyncIterator](): AsyncIterator<MultiCropBatch> {
    return this.epoch();
  }

  /** Stops the decode workers and frees the reusable buffers. Batches already handed out stay valid. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
    for (const list of this.freeOutputs) for (const t of list.splice(0)) t.dispose();
    this.freeStaging.length = 0;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // -------------------------------------------------------------------------------------------------------------

  private async *epoch(): AsyncGenerator<MultiCropBatch> {
    if (this.closed) throw new Error("MultiCropLoader: closed");
    if (this.iterating) throw new Error("MultiCropLoader: only one iteration at a time");
    this.iterating = true;
    const { epoch, position } = this.state();
    const plan = this.sampler ? this.indexedSlots(epoch, position) : this.streamSlots(epoch, position);
    const inflight: Promise<Decoded>[] = [];
    let step = position / this.batchSize;
    let exhausted = false;
    const pull = async (): Promise<void> => {
      while (!exhausted && inflight.length < this.prefetch) {
        const r = await plan.next();
        if (r.done) exhausted = true;
        else {
          const p = this.decodeBatch(r.value, epoch, step++);
          p.catch(() => undefined); // awaited below; this only keeps an early failure from being "unhandled"
          inflight.push(p);
        }
      }
    };
    try {
      await pull();
      while (inflight.length > 0) {
        const decoded = await inflight.shift()!;
        await pull(); // the next decodes start before the synchronous tensor work below
        const batch = this.finish(decoded, epoch);
        if (this.sampler) this.sampler.advance(this.batchSize);
        else this.stream!.position += this.batchSize;
        yield batch;
      }
      if (this.sampler) this.sampler.nextEpoch();
      else {
        this.stream!.epoch++;
        this.stream!.position = 0;
      }
    } finally {
      // Early exit or failure: let the decodes in flight finish before their staging buffers are reused.
      for (const r of await Promise.allSettled(inflight)) if (r.status === "fulfilled") this.freeStaging.push(r.value.staging);
      await plan.return(undefined);
      this.iterating = false;
    }
  }

  /** Slots of an indexed source's epoch from `position` on, a batch at a time. */
  private async *indexedSlots(epoch: number, position: number): AsyncGenerator<Slot[]> {
    const sampler = this.sampler!;
    const seed = sampler.seed;
    const B = this.batchSize;
    for (let start = position; start + B <= sampler.numSamples; start += B) {
      const slots: Slot[] = [];
      for (let i = start; i < start + B; i++) {
        const index = sampler.indexAt(epoch, i);
        const place = sampler.globalPosition(i);
        const padded = place >= sampler.length; // a repeat from padding: its own crops
        slots.push({ record: this.indexed!.at(index), index, key: { seed, epoch, index, salt: padded ? 1 + place * 64 : 0 }, place });
      }
      yield slots;
    }
  }

  /** Slots of a stream's epoch from `position` on, a batch at a time; a last partial batch is dropped. */
  private async *streamSlots(epoch: number, position: number): AsyncGenerator<Slot[]> {
    const s = this.stream!;
    const samples = shuffledStream(this.source, { seed: s.seed, epoch, rank: s.rank, worldSize: s.worldSize, bufferSize: s.bufferSize, skip: position });
    let slots: Slot[] = [];
    const slotOf = ({ record, ordinal }: StreamSample): Slot => ({
      record,
      index: -1,
      key: { seed: s.seed, epoch, index: hashString(record.key), salt: 0 },
      place: ordinal,
    });
    for await (const sample of samples) {
      slots.push(slotOf(sample));
      if (slots.length === this.batchSize) {
        yield slots;
        slots = [];
      }
    }
  }

  /**
   * The slot's stand-in after `attempt` failures: an indexed source draws another image of this rank's epoch; a
   * stream (no random access) reuses another image of the same batch. Either way with fresh crops (its own salt).
   */
  private replacement(slots: readonly Slot[], b: number, attempt: number, epoch: number): Slot {
    const slot = slots[b]!;
    const rng = Rng.forKey(slot.key.seed, epoch, slot.place, attempt, "replacement");
    const salt = 1 + slot.place * 64 + Math.min(attempt, 63);
    if (this.sampler) {
      const index = this.sampler.indexAt(epoch, rng.int(0, this.sampler.numSamples));
      return { record: this.indexed!.at(index), index, key: { seed: slot.key.seed, epoch, index, salt }, place: slot.place };
    }
    const other = slots.length > 1 ? (b + 1 + rng.int(0, slots.length - 1)) % slots.length : b;
    const record = slots[other]!.record;
    return { record, index: -1, key: { seed: slot.key.seed, epoch, index: hashString(record.key), salt }, place: slot.place };
  }

  private acquireStaging(): Uint8Array[] {
    return this.freeStaging.pop() ?? this.config.crops.map((g) => this.pool.allocate(g.count * this.batchSize * g.size * g.size * 3));
  }

  /** Decodes and crops every slot, replacing bad images, into one staging set. */
  private async decodeBatch(slots: Slot[], epoch: number, step: number): Promise<Decoded> {
    const staging = this.acquireStaging();
    const B = this.batchSize;
    const results = await Promise.all(
      slots.map(async (first, b) => {
        let slot = first;
        for (let attempt = 0; ; attempt++) {
          const { record } = slot;
          const where = record.origin ?? record.path ?? record.key;
          const task: CropTask = { path: record.path, bytes: record.bytes, where, key: slot.key, slot: b, batchSize: B, targets: staging };
          const r: CropResult = await this.pool.run(task);
          if (r.ok) {
            this.stats.decoded++;
            return { slot, result: r, replaced: attempt > 0 };
          }
          this.stats.skip(where, r.reason, r.detail);
          if (attempt >= this.maxReplacements) {
            throw new Error(`MultiCropLoader: ${this.maxReplacements + 1} bad images in a row for one batch slot (last: ${where}: ${r.reason})`);
          }
          slot = this.replacement(slots, b, attempt + 1, epoch);
        }
      }),
    );
    const boxes = this.config.crops.map((g) => new Int32Array(g.count * B * 4));
    const samples: SampleInfo[] = results.map(({ slot, result, replaced }, b) => {
      let k = 0;
      this.config.crops.forEach((g, gi) => {
        for (let j = 0; j < g.count; j++, k++) boxes[gi]!.set(result.boxes.slice(4 * k, 4 * k + 4), 4 * (j * B + b));
      });
      const info: SampleInfo = { key: slot.record.key, index: slot.index, width: result.width, height: result.height, replaced };
      if (slot.record.label !== undefined) info.label = slot.record.label;
      return info;
    });
    return { step, samples, keys: results.map((r) => r.slot.key), boxes, staging };
  }

  /** The synchronous tensor half: staging → device → photometric chain → a batch. */
  private finish(d: Decoded, epoch: number): MultiCropBatch {
    const params = drawBatchPhotometric(this.config, d.keys);
    const B = this.batchSize;
    const crops = this.config.crops.map((g, gi) => {
      const N = g.count * B;
      const out = this.freeOutputs[gi]!.pop() ?? keep(empty([N, 3, g.size, g.size], { device: this.device }));
      tidy(() => {
        // (N, 3, S, S) uint8. To CUDA through page-locked memory without blocking: the copy overlaps the kernels
        // still queued (the previous step's backward), and the caching host allocator keeps the pinned block
        // until the copy is done, so disposing it at the end of this scope is safe.
        const host = tensor(d.staging[gi]!, { shape: [N, 3, g.size, g.size], dtype: "uint8" });
        const planes = this.device === "cpu" ? host : host.pinMemory().to(this.device, { nonBlocking: true });
        fromUint8_(out, planes);
        applyPhotometric_(out, params[gi]!, this.config, { maxRowsPerCall: this.maxRowsPerCall });
      });
      return out;
    });
    this.freeStaging.push(d.staging);
    return new MultiCropBatch(crops, epoch, d.step, d.samples, d.boxes, params, (ts) => this.recycle(ts));
  }

  private recycle(ts: Tensor[]): void {
    ts.forEach((t, gi) => {
      const free = this.freeOutputs[gi]!;
      if (this.closed || t.isDisposed || free.length > this.prefetch) t.dispose();
      else free.push(t);
    });
  }
}
