// The multi-crop loader (src/data/loader.ts, sampler.ts, decode_worker.ts): shapes and crop-major layout, the same
// seed giving the same batches with or without worker threads, resuming mid-epoch from a saved state, disjoint
// shards across ranks, bad files skipped, counted and replaced, streaming tar shards through a shuffle buffer, real
// photos with the SEER preset, and no native tensors left behind. Test images are made with sharp at test time.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import sharp from "sharp";
import { DecodeStats } from "../src/data/decode";
import { MultiCropLoader, type MultiCropBatch } from "../src/data/loader";
import { multiCropConfig } from "../src/data/multicrop";
import { DistributedSampler, shuffledStream } from "../src/data/sampler";
import { folderSource, tarShardSource, type ImageSource } from "../src/data/sources";
import { memory } from "../src/tensor";

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-loader-"));
process.on("exit", () => fs.rmSync(TMP, { recursive: true, force: true }));

const GOOD = 22;
const SMALL = multiCropConfig({ crops: "2x32+2x16", solarize: { prob: 0.2 } });

/** Random pixels of a given size, as a JPEG. */
function noiseJpeg(w: number, h: number, seed: number): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3);
  let s = seed * 2654435761 + 1;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    px[i] = s >>> 24;
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

/** 22 good images of assorted sizes and 2 bad files, in a folder. */
const folder = (async () => {
  const dir = path.join(TMP, "images");
  fs.mkdirSync(dir);
  for (let i = 0; i < GOOD; i++) fs.writeFileSync(path.join(dir, `img${String(i).padStart(2, "0")}.jpg`), await noiseJpeg(40 + 3 * i, 70 - i, i));
  fs.writeFileSync(path.join(dir, "empty.jpg"), Buffer.alloc(0));
  fs.writeFileSync(path.join(dir, "notes.jpg"), "this is not a picture");
  return dir;
})();

const quiet = (): DecodeStats => new DecodeStats(() => undefined);

/** Reads every batch of the current epoch, keeping plain copies of what is compared. */
async function drain(loader: MultiCropLoader, max = Infinity): Promise<{ keys: string[][]; data: number[][][]; replaced: boolean[][] }> {
  const keys: string[][] = [];
  const data: number[][][] = [];
  const replaced: boolean[][] = [];
  for await (const batch of loader) {
    keys.push(batch.samples.map((s) => s.key));
    replaced.push(batch.samples.map((s) => s.replaced));
    data.push(batch.crops.map((t) => t.toArray()));
    batch.dispose();
    if (keys.length >= max) break;
  }
  return { keys, data, replaced };
}

test("DistributedSampler: per-epoch permutations, disjoint covering shards, padding or dropping, resumable state", () => {
  const L = 10;
  for (const dropLast of [false, true]) {
    const W = 3;
    const shards = Array.from({ length: W }, (_, rank) => new DistributedSampler({ length: L, seed: 4, rank, worldSize: W, dropLast }));
    const per = shards[0]!.numSamples;
    assert.equal(per, dropLast ? 3 : 4);
    assert.ok(shards.every((s) => s.numSamples === per), "equal shares");
    const all = shards.flatMap((s) => [...s.indices(2)]);
    assert.equal(all.length, per * W);
    if (dropLast) assert.equal(new Set(all).size, all.length, "disjoint");
    else {
      assert.deepEqual([...new Set(all)].sort((a, b) => a - b), Array.from({ length: L }, (_, i) => i), "every image of the epoch is seen");
      assert.equal(all.length - new Set(all).size, per * W - L, "only the padding repeats");
    }
    // Positions r, r + W, ... of one shared permutation.
    const perm = shards[0]!.permutation(2);
    shards.forEach((s, r) => assert.deepEqual([...s.indices(2)], Array.from({ length: per }, (_, i) => perm[(r + i * W) % L])));
  }
  const a = new DistributedSampler({ length: 50, seed: 9 });
  const b = new DistributedSampler({ length: 50, seed: 9 });
  assert.deepEqual(a.indices(0), b.indices(0));
  assert.notDeepEqual([...a.indices(0)], [...a.indices(1)]);
  assert.deepEqual([...new DistributedSampler({ length: 5, shuffle: false }).indices(3)], [0, 1, 2, 3, 4]);
  a.advance(20);
  const saved = a.state();
  assert.deepEqual(saved, { seed: 9, epoch: 0, position: 20 });
  b.loadState(saved);
  assert.deepEqual(b.state(), saved);
  assert.throws(() => b.loadState({ seed: 1, epoch: 0, position: 0 }), /seed 1, this sampler has seed 9/);
  assert.throws(() => b.loadState({ seed: 9, epoch: 0, position: 51 }), /position/);
  assert.throws(() => new DistributedSampler({ length: 5, rank: 2, worldSize: 2 }), /rank/);
  a.nextEpoch();
  assert.deepEqual(a.state(), { seed: 9, epoch: 1, position: 0 });
});

/** A source that streams records with keys s00..s(n-1), without random access. */
function streamOf(n: number): ImageSource {
  return {
    description: "test stream",
    async *[Symbol.asyncIterator]() {
      for (let i = 0; i < n; i++) yield { key: `s${String(i).padStart(2, "0")}`, bytes: Buffer.from([i]) };
    },
  };
}

test("shuffledStream: each record once per epoch, disjoint shards, deterministic, resumable with skip", async () => {
  const collect = async (o: Parameters<typeof shuffledStream>[1]): Promise<string[]> => {
    const keys: string[] = [];
    for await (const s of shuffledStream(streamOf(23), o)) keys.push(s.record.key);
    return keys;
  };
  const full = await collect({ seed: 1, epoch: 0, bufferSize: 5 });
  assert.equal(full.length, 23);
  assert.equal(new Set(full).size, 23);
  assert.notDeepEqual(full, [...full].sort(), "shuffled");
  assert.deepEqual(await collect({ seed: 1, epoch: 0, bufferSize: 5 }), full, "deterministic");
  assert.notDeepEqual(await collect({ seed: 1, epoch: 1, bufferSize: 5 }), full, "another epoch, another order");
  assert.deepEqual(await collect({ seed: 1, epoch: 0, bufferSize: 5, skip: 9 }), full.slice(9), "skip resumes");
  const r0 = await collect({ seed: 1, epoch: 0, bufferSize: 4, rank: 0, worldSize: 2 });
  const r1 = await collect({ seed: 1, epoch: 0, bufferSize: 4, rank: 1, worldSize: 2 });
  assert.equal(r0.length + r1.length, 23);
  assert.equal(new Set([...r0, ...r1]).size, 23, "disjoint and covering");
  assert.deepEqual(await collect({ seed: 1, epoch: 0, bufferSize: 1 }), Array.from({ length: 23 }, (_, i) => `s${String(i).padStart(2, "0")}`));
});

test("batches: crop-major tensors of the requested sizes; same seed, same batches with and without worker threads", async () => {
  const dir = await folder;
  const before = memory().numTensors;
  const open = async (workers: number, seed: number): Promise<MultiCropLoader> => new MultiCropLoader(await folderSource(dir), { batchSize: 4, augment: SMALL, seed, workers, stats: quiet() });
  const a = await open(0, 5);
  assert.equal(a.batchesPerEpoch, 6); // 24 files / 4
  let first: MultiCropBatch | undefined;
  for await (const batch of a) {
    first = batch;
    break;
  }
  assert.ok(first);
  assert.deepEqual(first.crops.map((t) => t.shape), [[8, 3, 32, 32], [8, 3, 16, 16]]);
  assert.deepEqual(first.crops.map((t) => t.dtype), ["float32", "float32"]);
  assert.equal(first.batchSize, 4);
  assert.deepEqual(first.boxes.map((b) => b.length), [8 * 4, 8 * 4]);
  // Row j * B + b is crop j of image b: its box lies inside image b.
  first.boxes.forEach((boxes) => {
    for (let row = 0; row < 8; row++) {
      const s = first!.samples[row % 4]!;
      const [top, left, h, w] = boxes.subarray(4 * row, 4 * row + 4);
      assert.ok(top! + h! <= s.height && left! + w! <= s.width, `row ${row}: box inside image ${s.key}`);
    }
  });
  const firstData = first.crops.map((t) => t.toArray());
  first.dispose();
  assert.throws(() => first!.crops[0]!.toArray(), /used after dispose/, "a disposed batch's tensors cannot be read");
  first.dispose(); // idempotent
  await a.close();

  const x = await open(0, 7);
  const y = await open(2, 7);
  const z = await open(0, 8);
  const [dx, dy, dz] = [await drain(x, 3), await drain(y, 3), await drain(z, 1)];
  assert.deepEqual(dx.keys, dy.keys);
  assert.deepEqual(dx.data, dy.data, "identical pixels with 0 and 2 worker threads");
  assert.notDeepEqual(dx.data[0], dz.data[0], "another seed, other batches");
  assert.notDeepEqual(dx.data[0], firstData);
  await Promise.all([x.close(), y.close(), z.close()]);
  assert.equal(memory().numTensors, before, "no native tensors left after close");
});

test("resuming from a saved state yields exactly the rest of the epoch, then the next epochs", async () => {
  const dir = await folder;
  const source = await folderSource(dir);
  const options = { batchSize: 4, augment: SMALL, seed: 3, workers: 1, stats: quiet(), prefetch: 3 };
  const whole = new MultiCropLoader(source, options);
  const epoch0 = await drain(whole);
  const epoch1 = await drain(whole);
  assert.equal(epoch0.keys.length, 6);
  assert.deepEqual(whole.state(), { seed: 3, epoch: 2, position: 0 });

  const first = new MultiCropLoader(source, options);
  const head = await drain(first, 2); // stops early: 2 batches handed out, more were being decoded
  const saved = first.state();
  assert.deepEqual(saved, { seed: 3, epoch: 0, position: 8 });
  await first.close();

  const resumed = new MultiCropLoader(source, options);
  resumed.loadState(JSON.parse(JSON.stringify(saved)) as typeof saved); // as a checkpoint would
  const tail = await drain(resumed);
  assert.deepEqual([...head.keys, ...tail.keys], epoch0.keys, "no image repeated or skipped");
  assert.deepEqual([...head.data, ...tail.data], epoch0.data, "and the same crops");
  assert.deepEqual(await drain(resumed), epoch1, "the next epoch as in an uninterrupted run");
  assert.throws(() => resumed.loadState({ seed: 3, epoch: 0, position: 5 }), /not a multiple of the batch size/);
  await Promise.all([whole.close(), resumed.close()]);
});

test("bad files are skipped, counted and replaced: every batch keeps its size", async () => {
  const dir = await folder;
  const stats = quiet();
  const loader = new MultiCropLoader(await folderSource(dir), { batchSize: 4, augment: SMALL, seed: 1, stats, shuffle: false });
  const run = await drain(loader);
  await loader.close();
  assert.equal(run.keys.length, 6);
  assert.ok(run.keys.every((k) => k.length === 4));
  assert.ok(stats.skipped.empty >= 1 && stats.skipped.not_image >= 1, JSON.stringify(stats.skipped));
  assert.equal(stats.totalSkipped, stats.skipped.empty + stats.skipped.not_image);
  assert.deepEqual(stats.badFiles.map((b) => path.basename(b.where)).sort(), ["empty.jpg", "notes.jpg"], "each bad file listed once");
  assert.equal(stats.decoded, 24, "one good image per slot");
  // In file order ("empty.jpg", "img00.jpg" ... "img21.jpg", "notes.jpg") the bad files open the first batch and
  // close the last one: those slots hold replacements.
  assert.deepEqual(run.replaced[0], [true, false, false, false]);
  assert.deepEqual(run.replaced[5], [false, false, false, true]);
  assert.equal(run.replaced.flat().filter(Boolean).length, 2);
  assert.ok(run.keys.flat().every((k) => k.startsWith("img")));
});

test("sharding: ranks see disjoint images of each epoch", async () => {
  const dir = await folder;
  const source = await folderSource(dir);
  const seen: string[][] = [];
  for (const rank of [0, 1]) {
    const loader = new MultiCropLoader(source, { batchSize: 3, augment: SMALL, seed: 2, rank, worldSize: 2, stats: quiet() });
    assert.equal(loader.batchesPerEpoch, 4);
    const run = await drain(loader);
    await loader.close();
    seen.push(run.keys.flat().filter((_, i) => !run.replaced.flat()[i]));
  }
  assert.equal(seen[0]!.filter((k) => seen[1]!.includes(k)).length, 0, "disjoint");
  assert.ok(seen[0]!.length + seen[1]!.length >= 20);
});

test("streaming tar shards: shuffle buffer, full batches, determinism and resume", async () => {
  const dir = await folder;
  const shardDir = path.join(TMP, "shards");
  fs.mkdirSync(shardDir);
  const names = fs.readdirSync(dir).filter((n) => n.startsWith("img")).sort();
  for (const [s, part] of [names.slice(0, 11), names.slice(11)].entries()) {
    const staging = path.join(TMP, `stage${s}`);
    fs.mkdirSync(staging);
    for (const n of part) fs.copyFileSync(path.join(dir, n), path.join(staging, n));
    execFileSync("tar", ["-cf", path.join(shardDir, `shard-${s}.tar`), "-C", staging, ...part]);
  }
  const source = tarShardSource(path.join(shardDir, "shard-{0..1}.tar"));
  const options = { batchSize: 5, augment: SMALL, seed: 6, workers: 1, shuffleBuffer: 6, stats: quiet() };
  const a = new MultiCropLoader(source, options);
  assert.equal(a.batchesPerEpoch, undefined);
  const run = await drain(a);
  assert.equal(run.keys.length, 4, "22 records → 4 full batches, the rest dropped");
  assert.equal(new Set(run.keys.flat()).size, 20, "no record twice in an epoch");
  assert.notDeepEqual(run.keys.flat(), [...run.keys.flat()].sort(), "shuffled");
  assert.deepEqual(a.state(), { seed: 6, epoch: 1, position: 0 });

  const b = new MultiCropLoader(source, options);
  const head = await drain(b, 1);
  const saved = b.state();
  await b.close();
  const c = new MultiCropLoader(source, options);
  c.loadState(saved);
  const tail = await drain(c);
  assert.deepEqual([...head.keys, ...tail.keys], run.keys);
  assert.deepEqual([...head.data, ...tail.data], run.data);
  await Promise.all([a.close(), c.close()]);
});

test("real photos with the SEER preset: 2x224 + 4x96, areas in their scale ranges, normalized values", async () => {
  const before = memory().numTensors;
  const loader = await MultiCropLoader.open("builtin:tiny_coco/val", { batchSize: 3, seed: 0, workers: 2, stats: quiet() });
  const areas: number[][] = [[], []];
  let n = 0;
  for await (const batch of loader) {
    assert.deepEqual(batch.crops.map((t) => t.shape), [[6, 3, 224, 224], [12, 3, 96, 96]]);
    batch.boxes.forEach((boxes, g) => {
      for (let row = 0; row < boxes.length / 4; row++) {
        const s = batch.samples[row % 3]!;
        areas[g]!.push((boxes[4 * row + 2]! * boxes[4 * row + 3]!) / (s.width * s.height));
      }
    });
    const values = batch.crops[1]!.toArray();
    assert.ok(values.every(Number.isFinite));
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    const [lo, hi] = values.reduce(([a, b], v) => [Math.min(a, v), Math.max(b, v)], [Infinity, -Infinity]);
    assert.ok(Math.abs(mean) < 1.5 && lo >= -2.2 && hi <= 2.7, `normalized range [${lo}, ${hi}], mean ${mean}`);
    batch.dispose();
    if (++n === 3) break;
  }
  await loader.close();
  const slack = 0.01;
  assert.ok(areas[0]!.every((a) => a >= 0.14 - slack && a <= 1), `224 crops: ${areas[0]!.map((a) => a.toFixed(3))}`);
  assert.ok(areas[1]!.every((a) => a >= 0.05 - slack && a <= 0.14 + slack), `96 crops: ${areas[1]!.map((a) => a.toFixed(3))}`);
  assert.equal(memory().numTensors, before);
});
