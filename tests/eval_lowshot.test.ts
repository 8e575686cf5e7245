// Low-shot subsets (src/eval/lowshot.ts): exact per-class counts (CIFAR-10: 50 and 500 per class), the same file
// content from run to run with one seed and a different draw with another, files written once and then reused
// (not rewritten), and a changed source refused. Sources are in-memory record lists: no images are needed.
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { drawLowShotSubset, lowShotFile, lowShotSourceSlug, lowShotSubset } from "../src/eval/lowshot";
import type { ImageRecord, IndexedImageSource } from "../src/data/sources";

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-lowshot-"));
after(() => fs.rmSync(TMP, { recursive: true, force: true }));

/** A labelled indexed source of `counts[c]` records per class, interleaved as a folder listing would not be. */
function fakeSource(counts: number[], description = "builtin:fake/train", classes?: string[]): IndexedImageSource {
  const records: ImageRecord[] = [];
  const left = [...counts];
  for (let round = 0; left.some((n) => n > 0); round++) {
    left.forEach((n, c) => {
      if (n === 0) return;
      records.push({ key: `${classes?.[c] ?? c}/${String(round).padStart(5, "0")}.jpg`, label: c });
      left[c]!--;
    });
  }
  return {
    description,
    classes,
    length: records.length,
    at: (i) => records[i]!,
    async *[Symbol.asyncIterator]() {
      yield* records;
    },
  };
}

const perClass = (source: IndexedImageSource, indices: number[], C: number): number[] => {
  const n = new Array<number>(C).fill(0);
  for (const i of indices) n[source.at(i).label!]!++;
  return n;
};

test("CIFAR-10-shaped source: exactly 50 and 500 per class, sorted, distinct", () => {
  const cifar = fakeSource(new Array(10).fill(5000), "builtin:cifar10/train");
  for (const [pct, m] of [[1, 50], [10, 500]] as const) {
    const s = drawLowShotSubset(cifar, pct, 0);
    assert.deepEqual(s.classCounts, new Array(10).fill(m));
    assert.deepEqual(perClass(cifar, s.indices, 10), new Array(10).fill(m));
    assert.equal(s.indices.length, 10 * m);
    assert.ok(s.indices.every((v, i) => i === 0 || v > s.indices[i - 1]!), "ascending and distinct");
    assert.deepEqual(s.keys, s.indices.map((i) => cifar.at(i).key));
    assert.deepEqual(s.sourceClassCounts, new Array(10).fill(5000));
  }
  assert.equal(path.basename(lowShotFile("builtin:cifar10/train", 10, 0)), "cifar10-train-10pct-seed0.json");
});

test("unbalanced classes: round(n_c · pct / 100), at least one per class", () => {
  const src = fakeSource([500, 300, 125, 7, 0, 44]);
  assert.deepEqual(drawLowShotSubset(src, 10, 3).classCounts, [50, 30, 13, 1, 0, 4]); // 12.5 → 13, 0.7 → 1
  assert.deepEqual(drawLowShotSubset(src, 1, 3).classCounts, [5, 3, 1, 1, 0, 1]); // 1.25 → 1, 0.07 → 1
  assert.deepEqual(perClass(src, drawLowShotSubset(src, 10, 3).indices, 6), [50, 30, 13, 1, 0, 4]);
  assert.throws(() => drawLowShotSubset(src, 0), /percentage in \(0, 100\] for pct/);
  assert.throws(() => drawLowShotSubset(src, 10, -1), /non-negative integer for seed/);
  const unlabelled: IndexedImageSource = { ...src, at: (i) => ({ key: src.at(i).key }), [Symbol.asyncIterator]: src[Symbol.asyncIterator] };
  assert.throws(() => drawLowShotSubset(unlabelled, 10), /has no label/);
});

test("stable from run to run with a seed, different with another seed", () => {
  const src = fakeSource([200, 200, 200], "folder /data/some/train", ["cat", "dog", "emu"]);
  const a = lowShotSubset(src, { pct: 10, seed: 1, dir: path.join(TMP, "a") });
  const b = lowShotSubset(src, { pct: 10, seed: 1, dir: path.join(TMP, "b") });
  assert.ok(a.created && b.created);
  assert.equal(fs.readFileSync(a.file, "utf8"), fs.readFileSync(b.file, "utf8"), "same seed, same file content");
  const c = lowShotSubset(src, { pct: 10, seed: 2, dir: path.join(TMP, "a") });
  assert.notEqual(c.file, a.file);
  assert.notDeepEqual(c.subset.indices, a.subset.indices);
  assert.deepEqual(c.subset.classCounts, [20, 20, 20]);
  const saved = JSON.parse(fs.readFileSync(a.file, "utf8")) as Record<string, unknown>;
  assert.equal(saved.seed, 1);
  assert.equal(saved.pct, 10);
  assert.equal(saved.source, "folder /data/some/train");
  assert.deepEqual(saved.classes, ["cat", "dog", "emu"]);
  assert.deepEqual(saved.classCounts, [20, 20, 20]);
  assert.match(path.basename(a.file), /^train-[0-9a-f]{8}-10pct-seed1\.json$/);
  assert.notEqual(lowShotSourceSlug("folder /x/train"), lowShotSourceSlug("folder /y/train"));
});

test("golden draw: the subsets of a fixed source and seed never change (a change to data/rng.ts would show here)", () => {
  // 60 records, labels 0, 1, 2, 0, 1, 2, ...: 10% of each class of 20 is 2 records.
  const records: ImageRecord[] = Array.from({ length: 60 }, (_, i) => ({ key: `k${i}`, label: i % 3 }));
  const src: IndexedImageSource = { description: "builtin:golden/train", length: 60, at: (i) => records[i]!, async *[Symbol.asyncIterator]() { yield* records; } };
  assert.deepEqual(drawLowShotSubset(src, 10, 0).indices, [7, 15, 28, 35, 42, 44]);
  assert.deepEqual(drawLowShotSubset(src, 10, 1).indices, [0, 1, 9, 10, 23, 59]);
});

test("written once, then reused as is; a changed source is refused", () => {
  const dir = path.join(TMP, "reuse");
  const src = fakeSource([100, 100], "builtin:fake/reuse");
  const first = lowShotSubset(src, { pct: 10, dir });
  assert.equal(first.created, true);
  const before = fs.statSync(first.file);
  const second = lowShotSubset(src, { pct: 10, dir });
  assert.equal(second.created, false);
  assert.deepEqual(second.subset, first.subset);
  assert.equal(fs.statSync(first.file).mtimeMs, before.mtimeMs, "not rewritten");
  assert.equal(fs.readdirSync(dir).length, 1, "no temp files left");

  // The stored list wins over a fresh draw: edit it (a valid subset, other records) and it is what comes back.
  const edited = { ...first.subset, indices: [0, 1, 2, 3], keys: [0, 1, 2, 3].map((i) => src.at(i).key), classCounts: [2, 2] };
  fs.writeFileSync(first.file, JSON.stringify(edited));
  assert.deepEqual(lowShotSubset(src, { pct: 10, dir }).subset.indices, [0, 1, 2, 3]);

  // Another source under the same name (one more record) no longer matches the file.
  const grown = fakeSource([101, 100], "builtin:fake/reuse");
  assert.throws(() => lowShotSubset(grown, { pct: 10, dir }), /has changed since; delete the file/);
  const renamed: IndexedImageSource = { ...src, at: (i) => ({ ...src.at(i), key: `x${i}` }), [Symbol.asyncIterator]: src[Symbol.asyncIterator] };
  assert.throws(() => lowShotSubset(renamed, { pct: 10, dir }), /delete the file/);
});
