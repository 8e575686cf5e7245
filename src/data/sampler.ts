// Which images each rank sees, in which order, and where a resumed run picks up.
//
// - `DistributedSampler` (indexed sources): torch.utils.data.DistributedSampler's scheme. Each epoch has a
//   permutation of 0..L-1 drawn from (seed, epoch); it is padded with its own head to a multiple of worldSize (or,
//   with dropLast, cut to one), and rank r takes positions r, r + W, r + 2W, ... So the ranks' shares are disjoint
//   apart from the padding, cover the data set, and have equal lengths. The permutation comes from rng.ts rather
//   than torch.randperm, so it does not depend on the libtorch build.
// - `shuffledStream` (streaming sources, e.g. WebDataset tar shards, which have no random access): rank r keeps
//   records r, r + W, ... of the stream and shuffles them through a buffer (WebDataset's `shuffle(bufsize)`):
//   each incoming record swaps with a random buffered one, which is emitted; the buffer drains in random order.
//
// The state a checkpoint stores is { seed, epoch, position }: `position` counts the samples this rank has been
// handed in the epoch. Resuming draws the same permutation (or replays the same stream, skipping `position`
// records without decoding them), so a resumed run neither repeats nor skips images.
import { Rng } from "./rng";
import type { ImageRecord, ImageSource } from "./sources";

/** Where a rank is in its data: what a checkpoint stores. */
export interface SamplerState {
  seed: number;
  epoch: number;
  /** Samples of this epoch already handed out on this rank. */
  position: number;
}

export interface ShardOptions {
  /** This process's rank, 0 <= rank < worldSize. Default 0. */
  rank?: number;
  /** Number of ranks. Default 1. */
  worldSize?: number;
}

export interface DistributedSamplerOptions extends ShardOptions {
  /** Images in the data set. */
  length: number;
  /** Seed of the epoch permutations. Default 0. */
  seed?: number;
  /** Draw a new permutation every epoch; false keeps 0..L-1. Default true. */
  shuffle?: boolean;
  /** Cut the permutation to a multiple of worldSize instead of padding it with its head. Default false. */
  dropLast?: boolean;
}

export function checkShard(rank: number, worldSize: number): void {
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new Error(`Expected positive integer for worldSize but received ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new Error(`Expected integer in [0, ${worldSize - 1}] for rank but received ${rank}`);
}

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`Expected non-negative integer for seed but received ${seed}`);
}

/** torch's DistributedSampler with a JS permutation, plus a resumable position. */
export class DistributedSampler {
  readonly length: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly rank: number;
  readonly worldSize: number;
  readonly dropLast: boolean;
  /** Samples per rank per epoch. */
  readonly numSamples: number;
  /** Samples per epoch over all ranks (padded or cut). */
  readonly totalSize: number;
  private epochNow = 0;
  private positionNow = 0;
  private cache: { epoch: number; perm: Int32Array } | undefined;

  constructor(o: DistributedSamplerOptions) {
    if (!Number.isInteger(o.length) || o.length < 1) throw new Error(`Expected positive integer for length but received ${o.length}`);
    this.length = o.length;
    this.seed = o.seed ?? 0;
    checkSeed(this.seed);
    this.shuffle = o.shuffle ?? true;
    this.rank = o.rank ?? 0;
    this.worldSize = o.worldSize ?? 1;
    checkShard(this.rank, this.worldSize);
    this.dropLast = o.dropLast ?? false;
    this.numSamples = this.dropLast ? Math.floor(this.length / this.worldSize) : Math.ceil(this.length / this.worldSize);
    if (this.numSamples === 0) {
      throw new Error(`DistributedSampler: ${this.length} images cannot give every one of ${this.worldSize} ranks a sample with dropLast`);
    }
    this.totalSize = this.numSamples * this.worldSize;
  }

  /** The epoch's permutation of 0..L-1 (shared by all ranks). */
  permutation(epoch: number): Int32Array {
    if (this.cache?.epoch !== epoch) {
      const perm = this.shuffle
        ? Rng.forKey(this.seed, epoch, "epoch-permutation").permutation(this.length)
        : Int32Array.from({ length: this.length }, (_, i) => i);
      this.cache = { epoch, perm };
    }
    return this.cache.perm;
  }

  /** Position in the epoch's padded permutation of this rank's i-th sample: rank + i * worldSize. */
  globalPosition(i: number): number {
    return this.rank + i * this.worldSize;
  }

  /** This rank's i-th image of an epoch, 0 <= i < numSamples. */
  indexAt(epoch: number, i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.numSamples) {
      throw new RangeError(`DistributedSampler: sample ${i} out of range [0, ${this.numSamples})`);
    }
    const perm = this.permutation(epoch);
    return perm[this.globalPosition(i) % this.length]!; // past the end: padding repeats the head
  }

  /** This rank's images of an epoch, in order. */
  indices(epoch: number): Int32Array {
    return Int32Array.from({ length: this.numSamples }, (_, i) => this.indexAt(epoch, i));
  }

  get epoch(): number {
    return this.epochNow;
  }

  get position(): number {
    return this.positionNow;
  }

  /** Marks `n` more samples of the current epoch as handed out. */
  advance(n: number): void {
    if (this.positionNow + n > this.numSamples) throw new RangeError(`DistributedSampler: advancing past the end of epoch ${this.epochNow}`);
    this.positionNow += n;
  }

  /** Moves to the start of the next epoch. */
  nextEpoch(): void {
    this.epochNow++;
    this.positionNow = 0;
  }

  state(): SamplerState {
    return { seed: this.seed, epoch: this.epochNow, position: this.positionNow };
  }

  /** Continues from a saved state; its seed must be this sampler's. */
  loadState(s: SamplerState): void {
    if (s.seed !== this.seed) throw new Error(`DistributedSampler: state has seed ${s.seed}, this sampler has seed ${this.seed}`);
    if (!Number.isInteger(s.epoch) || s.epoch < 0) throw new Error(`Expected non-negative integer for epoch but received ${s.epoch}`);
    if (!Number.isInteger(s.position) || s.position < 0 || s.position > this.numSamples) {
      throw new Error(`Expected integer in [0, ${this.numSamples}] for position but received ${s.position}`);
    }
    this.epochNow = s.epoch;
    this.positionNow = s.position;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Streams

export interface ShuffledStreamOptions extends ShardOptions {
  seed: number;
  epoch: number;
  /** Records held for shuffling; 1 keeps the stream's order. Default 1000. */
  bufferSize?: number;
  /** Records of this rank's shuffled stream to pass over (a resumed epoch). Default 0. */
  skip?: number;
}

/** One record of a rank's shuffled stream, with its place in the source stream. */
export interface StreamSample {
  record: ImageRecord;
  /** Position of the record in the source's (unsharded) stream. */
  ordinal: number;
}

/**
 * This rank's records of a stream for one epoch, shuffled through a buffer seeded by (seed, epoch, rank). The
 * same arguments give the same order, so `skip` resumes an epoch exactly.
 */
export async function* shuffledStream(source: ImageSource, o: ShuffledStreamOptions): AsyncGenerator<StreamSample> {
  const rank = o.rank ?? 0;
  const worldSize = o.worldSize ?? 1;
  checkShard(rank, worldSize);
  checkSeed(o.seed);
  const bufferSize = o.bufferSize ?? 1000;
  if (!Number.isInteger(bufferSize) || bufferSize < 1) throw new Error(`Expected positive integer for bufferSize but received ${bufferSize}`);
  let skip = o.skip ?? 0;
  const rng = Rng.forKey(o.seed, o.epoch, rank, "shuffle-buffer");
  const buffer: StreamSample[] = [];
  let ordinal = 0;
  for await (const record of source) {
    const mine = ordinal % worldSize === rank;
    const sample = { record, ordinal };
    ordinal++;
    if (!mine) continue;
    if (buffer.length < bufferSize) {
      buffer.push(sample);
      continue;
    }
    const j = rng.int(0, bufferSize);
    const out = buffer[j]!;
    buffer[j] = sample;
    if (skip > 0) skip--;
    else yield out;
  }
  const order = rng.permutation(buffer.length);
  for (const i of order) {
    if (skip > 0) skip--;
    else yield buffer[i]!;
  }
}
