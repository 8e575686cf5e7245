// The training images of a pretraining run: one or several sources, labels dropped, optionally a seeded subset,
// turned into SwAV/SimCLR multi-crop batches by the data loader (data/loader.ts).
//
// SEER trains on uncurated images without labels or metadata (Goyal et al. 2021, §3.3); here a pool is any mix of
// sources joined by "+", e.g. "builtin:imagenette/train+builtin:tiny_coco/train" (object-centric photos and scene
// photos of mixed sizes). Indexed sources concatenate into one indexed source (random access: the sampler shuffles
// across all of them and a resumed epoch continues exactly); if any part is a stream (tar shards) the pool is the
// streams one after the other, shuffled through the loader's buffer.
import * as fs from "fs";
import { MultiCropLoader } from "../data/loader";
import { SEER_MULTICROP, colorJitterOfStrength, multiCropConfig, type CropGroup, type MultiCropConfig } from "../data/multicrop";
import { Rng } from "../data/rng";
import { resolveSource } from "../data/scan";
import { isIndexed, type ImageRecord, type ImageSource, type IndexedImageSource } from "../data/sources";
import { ConfigError } from "../config/overrides";
import type { Device } from "../tensor";
import type { PretrainConfig } from "./presets";

/** The parts of a "+"-joined source spec; a spec that names an existing path is one part even if it has a "+". */
export function splitSourceSpec(spec: string): string[] {
  if (fs.existsSync(spec)) return [spec];
  const parts = spec.split("+").map((s) => s.trim());
  if (parts.some((p) => p === "")) throw new ConfigError(`data.source: empty part in "${spec}" (sources are joined by "+")`);
  return parts;
}

/** A record without its label, its key prefixed by its part so that keys stay unique across parts. */
function unlabelled(r: ImageRecord, part: number, parts: number): ImageRecord {
  const out: ImageRecord = { key: parts > 1 ? `${part}:${r.key}` : r.key };
  if (r.path !== undefined) out.path = r.path;
  if (r.bytes !== undefined) out.bytes = r.bytes;
  if (r.origin !== undefined) out.origin = r.origin;
  return out;
}

/** Indexed sources back to back, labels dropped. */
function concatIndexed(sources: IndexedImageSource[]): IndexedImageSource {
  const offsets: number[] = [];
  let total = 0;
  for (const s of sources) {
    offsets.push(total);
    total += s.length;
  }
  const at = (index: number): ImageRecord => {
    if (!Number.isInteger(index) || index < 0 || index >= total) throw new RangeError(`pretraining pool: index ${index} out of range [0, ${total})`);
    let p = sources.length - 1;
    while (offsets[p]! > index) p--;
    return unlabelled(sources[p]!.at(index - offsets[p]!), p, sources.length);
  };
  return {
    description: sources.map((s) => s.description).join(" + "),
    length: total,
    at,
    [Symbol.asyncIterator]: async function* () {
      for (let i = 0; i < total; i++) yield at(i);
    },
  };
}

/** Any sources one after the other (a stream), labels dropped. */
function concatStreams(sources: ImageSource[]): ImageSource {
  return {
    description: sources.map((s) => s.description).join(" + "),
    [Symbol.asyncIterator]: async function* () {
      for (const [p, s] of sources.entries()) for await (const r of s) yield unlabelled(r, p, sources.length);
    },
  };
}

/** A seeded subset of `limit` images of an indexed source (in index order). */
function subset(source: IndexedImageSource, limit: number, seed: number): IndexedImageSource {
  if (limit <= 0 || limit >= source.length) return source;
  const picked = Array.from(Rng.forKey(seed, "pretrain-subset").permutation(source.length).subarray(0, limit)).sort((a, b) => a - b);
  return {
    description: `${source.description} (seeded subset of ${limit})`,
    length: limit,
    at: (i: number) => source.at(picked[i]!),
    [Symbol.asyncIterator]: async function* () {
      for (const i of picked) yield source.at(i);
    },
  };
}

/** The pretraining pool of a config: its source spec resolved, labels dropped, the subset taken. */
export async function pretrainSource(c: PretrainConfig): Promise<ImageSource> {
  const parts = await Promise.all(splitSourceSpec(c.data.source).map((spec) => resolveSource(spec)));
  if (parts.every(isIndexed)) return subset(concatIndexed(parts as IndexedImageSource[]), c.data.limit, c.run.seed);
  if (c.data.limit > 0) throw new ConfigError(`data.limit: a subset needs an indexed source, but ${c.data.source} includes a stream (tar shards)`);
  return concatStreams(parts);
}

/** The multi-crop augmentation of a config: SwAV/SEER's chain with the config's crops, colour strength and blur. */
export function pretrainAugment(c: PretrainConfig, crops: readonly CropGroup[]): MultiCropConfig {
  return multiCropConfig(
    {
      crops: crops.map((g) => ({ count: g.count, size: g.size, scale: g.scale, ratio: g.ratio })),
      colorJitter: colorJitterOfStrength(c.data.colorStrength, c.data.colorStrength > 0 ? 0.8 : 0),
      grayscaleProb: c.data.grayscaleProb,
      blur: { prob: c.data.blurProb },
    },
    SEER_MULTICROP,
  );
}

/** Where this process sits in a data-parallel run (default: rank 0 of 1). */
export interface PretrainShard {
  rank: number;
  worldSize: number;
  /** Where the batches' crops are made (the photometric chain runs there too). Default cpu. */
  device?: Device;
}

/**
 * The loader of a run: seeded by run.seed, so the batches depend on nothing else (not on workers or timing).
 * data.batchSize is the global batch: with worldSize ranks each gets batchSize / worldSize images per iteration,
 * rank r the epoch permutation's positions r, r + W, ... (sampler.ts). A crop is keyed by (seed, epoch, image), not
 * by rank or slot, so the ranks' batches of an iteration together hold exactly the images and crops that one
 * process with the whole batch gets (in another order), and an epoch has floor(L / batchSize) iterations for any
 * world size.
 */
export async function openPretrainLoader(c: PretrainConfig, crops: readonly CropGroup[], shard: PretrainShard = { rank: 0, worldSize: 1 }): Promise<MultiCropLoader> {
  const { rank, worldSize, device } = shard;
  if (c.data.batchSize % worldSize !== 0) {
    throw new ConfigError(`data.batchSize: the global batch ${c.data.batchSize} does not split evenly over ${worldSize} processes (rank ${rank})`);
  }
  const source = await pretrainSource(c);
  return new MultiCropLoader(source, {
    batchSize: c.data.batchSize / worldSize, augment: pretrainAugment(c, crops), seed: c.run.seed, workers: c.data.workers, rank, worldSize,
    device: device ?? "cpu",
    dropLast: true, // epochs of floor(L / batch) iterations whatever the world size (no padded repeats)
  });
}
