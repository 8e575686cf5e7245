// Image sources (src/data/sources.ts, tar.ts, builtin.ts) and the scan (src/data/scan.ts): folder trees with and
// without labels, a folder salted with bad files of every kind, file lists, WebDataset tar shards written by the
// system `tar` in GNU, pax and ustar formats, brace expansion, and the built-in tiny COCO extraction.
// Everything is made in a temporary folder at test time; no image data is committed.
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import sharp from "sharp";
import { BUILTIN_DATASETS, builtinDataset, ensureBuiltinExtracted } from "../src/data/builtin";
import { DecodeStats, decodeRecord, type SkipReason } from "../src/data/decode";
import { formatScanReport, resolveSource, scanSource } from "../src/data/scan";
import { expandBraces, folderSource, isIndexed, listSource, splitMemberName, tarShardSource, type ImageRecord, type ImageSource } from "../src/data/sources";
import { readTar, readTarFile } from "../src/data/tar";

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-data-"));
after(() => fs.rmSync(TMP, { recursive: true, force: true }));

/** A w×h RGB image of deterministic pseudo-random pixels (distinct per seed), as raw input for sharp. */
function noise(w: number, h: number, seed: number): sharp.Sharp {
  const px = Buffer.alloc(w * h * 3);
  let s = seed * 2654435761 + 1;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    px[i] = s >>> 24;
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } });
}

/** Writes a file, making its folder. */
function put(file: string, bytes: Buffer | string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
}

async function collect(source: ImageSource): Promise<ImageRecord[]> {
  const out: ImageRecord[] = [];
  for await (const r of source) out.push(r);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

test("brace expansion: zero-padded ranges, lists, products, errors", () => {
  assert.deepEqual(expandBraces("/d/shard-{000000..000003}.tar"), ["/d/shard-000000.tar", "/d/shard-000001.tar", "/d/shard-000002.tar", "/d/shard-000003.tar"]);
  assert.deepEqual(expandBraces("s{8..11}"), ["s8", "s9", "s10", "s11"]);
  assert.deepEqual(expandBraces("s{08..10}"), ["s08", "s09", "s10"]);
  assert.deepEqual(expandBraces("{3..1}"), ["3", "2", "1"]);
  assert.deepEqual(expandBraces("{a,b}-{0..1}.tar"), ["a-0.tar", "a-1.tar", "b-0.tar", "b-1.tar"]);
  assert.deepEqual(expandBraces("plain.tar"), ["plain.tar"]);
  assert.throws(() => expandBraces("s{0..3.tar"), /unmatched "\{"/);
  assert.throws(() => expandBraces("s{x}.tar"), /neither a range/);
  assert.deepEqual(splitMemberName("a/b.c/0001.seg.PNG"), ["a/b.c/0001", "seg.png"]);
  assert.equal(splitMemberName("README"), undefined);
});

test("folder tree with labels: first-level classes sorted, any depth, non-images skipped, sniffing opt-in", async () => {
  const root = path.join(TMP, "labelled");
  const png = await noise(8, 8, 1).png().toBuffer();
  put(path.join(root, "dog", "a.png"), png);
  put(path.join(root, "dog", "puppies", "deep", "b.PNG"), png);
  put(path.join(root, "cat", "c.png"), png);
  put(path.join(root, "ant", "d.png"), png);
  put(path.join(root, "ant", "notes.txt"), "not an image");
  put(path.join(root, "ant", "e.bin"), png); // an image without an image extension
  put(path.join(root, "cat", ".f.png"), png); // hidden: skipped
  put(path.join(root, "top.png"), png); // no class: left out when labelled
  fs.mkdirSync(path.join(root, "zebra")); // an empty class still gets its index, as in ImageFolder

  const src = await folderSource(root, { labels: true });
  assert.deepEqual(src.classes, ["ant", "cat", "dog", "zebra"]);
  assert.deepEqual([...Array(src.length).keys()].map((i) => [src.at(i).key, src.at(i).label]), [
    ["ant/d.png", 0],
    ["cat/c.png", 1],
    ["dog/a.png", 2],
    ["dog/puppies/deep/b.PNG", 2],
  ]);
  assert.equal(src.at(0).path, path.join(root, "ant", "d.png"));
  assert.throws(() => src.at(4), /out of range/);
  assert.deepEqual((await collect(src)).map((r) => r.key), ["ant/d.png", "cat/c.png", "dog/a.png", "dog/puppies/deep/b.PNG"]);

  const sniffed = await folderSource(root, { sniff: true });
  assert.deepEqual([...Array(sniffed.length).keys()].map((i) => sniffed.at(i).key), ["ant/d.png", "ant/e.bin", "cat/c.png", "dog/a.png", "dog/puppies/deep/b.PNG", "top.png"]);
  assert.equal(sniffed.classes, undefined);
  assert.equal(sniffed.at(0).label, undefined);
  await assert.rejects(folderSource(path.join(root, "top.png")), /is not a folder/);
});

test("a folder salted with bad files: every good image decodes, every bad one is counted by reason and logged once", async () => {
  const root = path.join(TMP, "salted");
  const good = await noise(32, 24, 2).jpeg().toBuffer();
  const other = await noise(32, 24, 3).jpeg().toBuffer();
  put(path.join(root, "a.jpg"), good);
  put(path.join(root, "dup_of_a.jpg"), good);
  put(path.join(root, "b.png"), await noise(30, 20, 4).png().toBuffer());
  put(path.join(root, "c.webp"), await noise(20, 30, 5).webp().toBuffer());
  put(path.join(root, "nested", "deeper", "d.gif"), await noise(16, 16, 6).gif().toBuffer());
  put(path.join(root, "png_named.jpg"), await noise(24, 24, 7).png().toBuffer()); // wrong extension: decoded by content
  put(path.join(root, "photo.bin"), other); // found only by sniffing
  put(path.join(root, "dir.jpg", "inner.png"), await noise(10, 10, 8).png().toBuffer()); // a folder named like an image is walked
  put(path.join(root, "notes.txt"), "plain text, not listed even when sniffing");
  put(path.join(root, ".hidden.jpg"), good);
  // The bad ones.
  const damaged = Buffer.from(good);
  damaged.fill(0x07, 200, 400); // damage in the middle, end marker intact
  put(path.join(root, "corrupt.jpg"), damaged);
  put(path.join(root, "truncated.jpg"), good.subarray(0, Math.floor(good.length / 2)));
  put(path.join(root, "empty.jpg"), Buffer.alloc(0));
  put(path.join(root, "text.jpg"), "this is a text file with a .jpg name\n");
  const bmp = Buffer.alloc(58); // a real (1×1) BMP, which sharp's prebuilt does not read
  bmp.write("BM", 0, "latin1");
  bmp.writeUInt32LE(58, 2);
  bmp.writeUInt32LE(54, 10);
  bmp.writeUInt32LE(40, 14);
  bmp.writeInt32LE(1, 18);
  bmp.writeInt32LE(1, 22);
  bmp.writeUInt16LE(1, 26);
  bmp.writeUInt16LE(24, 28);
  put(path.join(root, "legacy.bmp"), bmp);
  put(path.join(root, "big.png"), await noise(300, 300, 9).png().toBuffer()); // 90,000 pixels: over the limit below
  fs.symlinkSync(path.join(root, "no-such-file.jpg"), path.join(root, "dangling.jpg"));
  // NOTE: tests usually run as root here, and root reads a chmod-000 file anyway; then noperm.jpg is a good image.
  put(path.join(root, "noperm.jpg"), await noise(32, 24, 10).jpeg().toBuffer());
  fs.chmodSync(path.join(root, "noperm.jpg"), 0o000);
  const permissionsBite = (() => {
    try {
      fs.readFileSync(path.join(root, "noperm.jpg"));
      return false;
    } catch {
      return true;
    }
  })();

  const expectedGood = 8 + (permissionsBite ? 0 : 1);
  const expectedSkips: Partial<Record<SkipReason, number>> = {
    corrupt: 1, truncated: 1, empty: 1, not_image: 1, unsupported: 1, too_large: 1, unreadable: permissionsBite ? 2 : 1,
  };
  const limitInputPixels = 50_000;

  const src = await folderSource(root, { sniff: true });
  assert.equal(src.length, 9 + 7); // 8 good + noperm.jpg + 7 bad
  const lines: string[] = [];
  const stats = new DecodeStats((m) => lines.push(m));
  for (let epoch = 0; epoch < 2; epoch++) {
    const decoded: string[] = [];
    for await (const record of src) {
      const img = await decodeRecord(record, stats, { limitInputPixels });
      if (img) {
        assert.equal(img.data.length, img.width * img.height * 3, record.key);
        decoded.push(record.key);
      }
    }
    const goodKeys = ["a.jpg", "b.png", "c.webp", "dir.jpg/inner.png", "dup_of_a.jpg", "nested/deeper/d.gif", "photo.bin", "png_named.jpg"];
    if (!permissionsBite) goodKeys.push("noperm.jpg");
    assert.deepEqual(decoded.sort(), goodKeys.sort());
  }
  assert.equal(stats.decoded, 2 * expectedGood);
  for (const [reason, n] of Object.entries(expectedSkips)) assert.equal(stats.skipped[reason as SkipReason], 2 * n, reason);
  assert.equal(stats.skipped.no_image, 0);
  assert.equal(lines.length, 8 - (permissionsBite ? 0 : 1), "each bad file logged once over two epochs");
  const reasonOf = new Map(stats.badFiles.map((b) => [path.basename(b.where), b.reason]));
  assert.deepEqual(Object.fromEntries([...reasonOf].sort()), {
    "big.png": "too_large", "corrupt.jpg": "corrupt", "dangling.jpg": "unreadable", "empty.jpg": "empty",
    "legacy.bmp": "unsupported", "text.jpg": "not_image", "truncated.jpg": "truncated",
    ...(permissionsBite ? { "noperm.jpg": "unreadable" } : {}),
  });
  assert.ok(lines.some((l) => l.startsWith(path.join(root, "truncated.jpg")) && l.includes("truncated")), lines.join("\n"));

  // The scan sees the same thing, plus formats, sizes, duplicates and bytes.
  const report = await scanSource(await resolveSource(root, { sniff: true }), { limitInputPixels, concurrency: 4 });
  assert.equal(report.records, src.length);
  assert.equal(report.images, expectedGood);
  for (const [reason, n] of Object.entries(expectedSkips)) assert.equal(report.skipped[reason as SkipReason], n, reason);
  assert.deepEqual(report.formats, permissionsBite ? { jpeg: 3, png: 3, webp: 1, gif: 1 } : { jpeg: 4, png: 3, webp: 1, gif: 1 });
  assert.deepEqual(report.duplicates, { groups: [[path.join(root, "a.jpg"), path.join(root, "dup_of_a.jpg")]], extraCopies: 1 });
  // widths 10 16 20 24 30 32 32 32 (+32 for noperm.jpg when readable); the median is the lower middle value
  assert.deepEqual(report.width, { min: 10, median: permissionsBite ? 24 : 30, max: 32 });
  assert.deepEqual(report.height, { min: 10, median: 24, max: 30 });
  assert.deepEqual(report.shortSide.filter((b) => b.count > 0).map((b) => [b.label, b.count]), [["<32", expectedGood]]);
  let bytes = 0;
  for (let i = 0; i < src.length; i++) {
    try {
      bytes += fs.readFileSync(src.at(i).path!).length;
    } catch {
      // unreadable: not counted
    }
  }
  assert.equal(report.totalBytes, bytes);
  const text = formatScanReport(report);
  assert.match(text, /duplicates +1 groups, 1 extra copies/);
  assert.match(text, /truncated\.jpg: truncated/);
  assert.doesNotThrow(() => JSON.parse(JSON.stringify(report)));
  fs.chmodSync(path.join(root, "noperm.jpg"), 0o644);
});

test("a file list: paths relative to the list, optional labels, comments; a directory in it is unreadable", async () => {
  const root = path.join(TMP, "list");
  put(path.join(root, "imgs", "a.png"), await noise(8, 8, 11).png().toBuffer());
  const abs = path.join(TMP, "list-abs.png");
  put(abs, await noise(8, 8, 12).png().toBuffer());
  fs.mkdirSync(path.join(root, "x.jpg"));
  const list = path.join(root, "files.txt");
  put(list, `# images\nimgs/a.png\t3\n${abs}\t0\n\nx.jpg\n`);
  const src = await listSource(list);
  assert.equal(src.length, 3);
  assert.deepEqual([0, 1, 2].map((i) => [src.at(i).path, src.at(i).label]), [
    [path.join(root, "imgs", "a.png"), 3],
    [abs, 0],
    [path.join(root, "x.jpg"), undefined],
  ]);
  const stats = new DecodeStats(() => {});
  for await (const r of src) await decodeRecord(r, stats);
  assert.equal(stats.decoded, 2);
  assert.equal(stats.skipped.unreadable, 1);
  assert.match(stats.badFiles[0]!.detail, /EISDIR/);

  put(path.join(root, "bad.txt"), "a.png\t1\nb.png\tcat\n");
  await assert.rejects(listSource(path.join(root, "bad.txt")), /bad\.txt:2: expected a non-negative integer label but received "cat"/);
  assert.ok(isIndexed(await resolveSource(list)));
});

test("WebDataset tar shards: members grouped by key, labels from cls, long names (GNU, pax, ustar), gzip", async () => {
  const dir = path.join(TMP, "wds");
  const m = path.join(dir, "members");
  const longDir = `deep/${"d".repeat(120)}`;
  const files: Record<string, Buffer> = {
    "000000.jpg": await noise(12, 10, 20).jpeg().toBuffer(),
    "000000.cls": Buffer.from("3"),
    "000001.png": await noise(10, 12, 21).png().toBuffer(),
    "000001.cls": Buffer.from("1\n"),
    "000002.jpg": await noise(9, 9, 22).jpeg().toBuffer(),
    "000003.json": Buffer.from("{}"),
    [`${longDir}/000004.webp`]: await noise(14, 14, 23).webp().toBuffer(),
    [`${longDir}/000004.cls`]: Buffer.from("7"),
    "000005.seg.png": await noise(5, 5, 24).png().toBuffer(),
    "000005.jpg": await noise(6, 6, 25).jpeg().toBuffer(),
  };
  for (const [name, data] of Object.entries(files)) put(path.join(m, name), data);
  fs.mkdirSync(path.join(m, "emptydir"));
  const tar = (format: string, out: string, members: string[], gzip = false): void => {
    execFileSync("tar", [`--format=${format}`, gzip ? "-czf" : "-cf", out, "-C", m, ...members]);
  };
  tar("gnu", path.join(dir, "shard-000000.tar"), ["000000.jpg", "000000.cls", "emptydir", "000001.png", "000001.cls", "000002.jpg"]);
  const second = ["000003.json", `${longDir}/000004.webp`, `${longDir}/000004.cls`, "000005.seg.png", "000005.jpg"];
  tar("pax", path.join(dir, "shard-000001.tar"), second);

  const src = tarShardSource(path.join(dir, "shard-{000000..000001}.tar"));
  assert.equal(src.shards.length, 2);
  assert.equal(isIndexed(src), false);
  const records = await collect(src);
  assert.deepEqual(records.map((r) => [r.key, r.label, r.bytes !== undefined]), [
    ["000000", 3, true],
    ["000001", 1, true],
    ["000002", undefined, true],
    ["000003", undefined, false],
    [`${longDir}/000004`, 7, true],
    ["000005", undefined, true],
  ]);
  assert.ok(records[0]!.bytes!.equals(files["000000.jpg"]!));
  assert.ok(records[4]!.bytes!.equals(files[`${longDir}/000004.webp`]!), "pax long name");
  assert.ok(records[5]!.bytes!.equals(files["000005.jpg"]!), "jpg is the image, not seg.png");
  assert.equal(records[4]!.origin, `${path.join(dir, "shard-000001.tar")}:${longDir}/000004.webp`);

  // The same long names in GNU ('L' members) and ustar (prefix field) archives, and through gzip.
  for (const format of ["gnu", "ustar"]) {
    const out = path.join(dir, `long-${format}.tar`);
    tar(format, out, second);
    const names: string[] = [];
    for await (const e of readTarFile(out)) if (e.type === "file") names.push(e.name);
    assert.deepEqual(names, second, format);
  }
  tar("pax", path.join(dir, "gz.tar.gz"), second, true);
  assert.deepEqual((await collect(tarShardSource(path.join(dir, "gz.tar.gz")))).map((r) => r.key), ["000003", `${longDir}/000004`, "000005"]);

  // Directories come out of the reader as such, and never as samples.
  const types: string[] = [];
  for await (const e of readTarFile(path.join(dir, "shard-000000.tar"))) types.push(`${e.type}:${e.name}`);
  assert.ok(types.includes("directory:emptydir"), types.join(" "));

  // Decoding and scanning a shard: the sample without an image is a "no_image" skip.
  const report = await scanSource(await resolveSource(path.join(dir, "shard-{000000..000001}.tar")), { concurrency: 3 });
  assert.deepEqual([report.records, report.images, report.skipped.no_image], [6, 5, 1]);
  assert.deepEqual(report.formats, { jpeg: 3, png: 1, webp: 1 });

  // Damaged archives are clear errors.
  const whole = fs.readFileSync(path.join(dir, "shard-000000.tar"));
  const cut = async function* (): AsyncGenerator<Buffer> {
    yield whole.subarray(0, 700);
  };
  await assert.rejects(async () => {
    for await (const _ of readTar(cut(), { source: "cut.tar" })) void _;
  }, /cut\.tar: unexpected end of archive/);
  const garbage = async function* (): AsyncGenerator<Buffer> {
    yield Buffer.alloc(1024, 0x41);
  };
  await assert.rejects(async () => {
    for await (const _ of readTar(garbage(), { source: "junk.tar" })) void _;
  }, /junk\.tar: bad header checksum at offset 0/);
  assert.throws(() => tarShardSource(path.join(dir, "shard-{000000..000002}.tar")), /shard-000002\.tar does not exist/);
});

test("builtin tiny_coco: extracted once, atomically, into the cache; counts checked on every load", async () => {
  const cacheDir = path.join(TMP, "cache");
  const log: string[] = [];
  const train = await builtinDataset("tiny_coco", "train", { cacheDir, log: (l) => log.push(l) });
  assert.equal(train.length, 50);
  assert.equal(train.classes, undefined);
  assert.equal(train.description, "builtin:tiny_coco/train");
  assert.ok(/\.jpg$/.test(train.at(0).key) && train.at(0).label === undefined);
  const val = await resolveSource("builtin:tiny_coco/val", { builtin: { cacheDir, log: (l) => log.push(l) } });
  assert.ok(isIndexed(val) && val.length === 50);
  assert.equal(log.length, 1, "extracted once");
  assert.deepEqual(fs.readdirSync(path.join(cacheDir, "datasets")), ["tiny_coco"], "no temporary folders left");
  const stats = new DecodeStats();
  const first = await decodeRecord(train.at(0), stats);
  assert.ok(first && first.width > 200 && first.height > 200);

  // A damaged cache is a clear error.
  fs.unlinkSync(val.at(0).path!);
  await assert.rejects(builtinDataset("tiny_coco", "val", { cacheDir }), /tiny_coco\/val: expected 50 images in .* found 49 \(delete .* to extract it again\)/);
  await assert.rejects(builtinDataset("tiny_coco", "test", { cacheDir }), /unknown split "test" \(known: train, val\)/);
  await assert.rejects(resolveSource("builtin:mnist/train"), /unknown built-in data set "mnist"/);
  await assert.rejects(resolveSource(path.join(TMP, "nothing-here")), /is not a folder, a \.txt file list/);

  // An archive with the wrong contents fails before anything lands in the cache.
  const fakeArchives = path.join(TMP, "fake-archives");
  put(path.join(fakeArchives, "src", "tiny_coco", "tiny_coco", "train2017", "one.jpg"), await noise(4, 4, 30).jpeg().toBuffer());
  execFileSync("tar", ["-czf", path.join(fakeArchives, BUILTIN_DATASETS.tiny_coco.archive), "-C", path.join(fakeArchives, "src"), "tiny_coco"]);
  const otherCache = path.join(TMP, "cache2");
  await assert.rejects(
    ensureBuiltinExtracted("tiny_coco", { cacheDir: otherCache, archivesDir: fakeArchives }),
    /does not have the expected contents: tiny_coco\/train: expected 50 images .* found 1; tiny_coco\/val: expected 50 images .* found 0/,
  );
  assert.deepEqual(fs.readdirSync(path.join(otherCache, "datasets")), []);
});
