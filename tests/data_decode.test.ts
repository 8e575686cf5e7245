// Decoding (src/data/decode.ts): every format sharp's prebuilt reads comes out as (H, W, 3) uint8 sRGB, EXIF
// orientation is applied, alpha is flattened on black, resize-at-decode keeps the aspect ratio, and bad bytes are
// DecodeErrors with the right reason. Test images are made with sharp itself, at test time.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import sharp from "sharp";
import { DecodeError, DecodeStats, classifyDecodeError, decodeImage, decodeRecord, sniffFormat, type DecodedImage, type SkipReason } from "../src/data/decode";

const W = 24;
const H = 16;
const RED = { r: 200, g: 30, b: 40 };

/** A solid W×H RGB image in sharp's lossless PNG, the start of every variant. */
function solid(colour = RED, width = W, height = H): sharp.Sharp {
  return sharp({ create: { width, height, channels: 3, background: colour } });
}

/** The (R, G, B) at (x, y) of a decoded image. */
function pixel(img: DecodedImage, x: number, y: number): [number, number, number] {
  const i = (y * img.width + x) * 3;
  return [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!];
}

function assertColour(img: DecodedImage, expected: [number, number, number], tol: number, what: string): void {
  const mid = pixel(img, img.width >> 1, img.height >> 1);
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(mid[c]! - expected[c]!) <= tol, `${what}: centre pixel ${mid} vs ${expected} (tol ${tol})`);
}

async function expectReason(bytes: Buffer, reason: SkipReason, options = {}): Promise<void> {
  await assert.rejects(decodeImage(bytes, options), (e: unknown) => e instanceof DecodeError && e.reason === reason, `expected ${reason}`);
}

test("every format decodes to 8-bit RGB of the right size and colour", async (t) => {
  const rgb: [number, number, number] = [RED.r, RED.g, RED.b];
  const cases: Array<[string, Promise<Buffer>, [number, number, number], number]> = [
    ["jpeg", solid().jpeg({ quality: 95 }).toBuffer(), rgb, 6],
    ["png", solid().png().toBuffer(), rgb, 0],
    ["png 16-bit rgb", solid().toColourspace("rgb16").png().toBuffer(), rgb, 1],
    ["png 16-bit grey", solid({ r: 90, g: 90, b: 90 }).toColourspace("grey16").png().toBuffer(), [90, 90, 90], 1],
    // grey 200 at alpha 128 on black: 200 * 128/255 ≈ 100
    ["png grey+alpha", solid({ r: 200, g: 200, b: 200 }).greyscale().ensureAlpha(128 / 255).png().toBuffer(), [100, 100, 100], 2],
    ["webp", solid().webp({ lossless: true }).toBuffer(), rgb, 1],
    ["gif", solid().gif().toBuffer(), rgb, 8],
    ["tiff", solid().tiff({ compression: "lzw" }).toBuffer(), rgb, 0],
    // An in-gamut colour: saturated red does not survive the trip through the CMYK profile.
    ["cmyk jpeg", solid({ r: 150, g: 100, b: 80 }).toColourspace("cmyk").jpeg({ quality: 95 }).toBuffer(), [150, 100, 80], 10],
  ];
  for (const [name, made, colour, tol] of cases) {
    const bytes = await made;
    const img = await decodeImage(bytes);
    assert.equal(img.width, W, name);
    assert.equal(img.height, H, name);
    assert.equal(img.data.length, W * H * 3, `${name}: (H, W, 3) bytes`);
    assert.ok(img.data instanceof Uint8Array, name);
    assertColour(img, colour, tol, name);
  }
  // Check that the CMYK case really was CMYK, and the 16-bit one 16-bit.
  assert.equal((await sharp(await cases[8]![1]).metadata()).space, "cmyk");
  assert.equal((await sharp(await cases[2]![1]).metadata()).depth, "ushort");

  // AVIF: sharp's prebuilt binaries encode and decode AV1 in HEIF; HEVC (HEIC) they do not.
  let avif: Buffer | undefined;
  try {
    avif = await solid().avif({ quality: 90 }).toBuffer();
  } catch {
    t.diagnostic("this sharp build cannot encode AVIF; AVIF decode not tested");
  }
  if (avif) {
    assert.equal(sniffFormat(avif), "avif");
    const img = await decodeImage(avif);
    assert.deepEqual([img.width, img.height], [W, H]);
    assertColour(img, rgb, 12, "avif");
  }
});

test("the first frame of an animated GIF", async () => {
  const w = 8;
  const h = 6;
  const frames = Buffer.alloc(w * h * 2 * 3); // two (h, w, 3) frames stacked: red, then blue
  for (let i = 0; i < w * h; i++) frames[i * 3] = 255;
  for (let i = w * h; i < 2 * w * h; i++) frames[i * 3 + 2] = 255;
  const gif = await sharp(frames, { raw: { width: w, height: 2 * h, channels: 3, pageHeight: h } }).gif().toBuffer();
  assert.equal((await sharp(gif).metadata()).pages, 2);
  const img = await decodeImage(gif);
  assert.deepEqual([img.width, img.height], [w, h]);
  assert.deepEqual(pixel(img, 3, 3), [255, 0, 0]);
});

test("EXIF orientation 6 is applied: a 40×20 JPEG decodes as 20×40, rotated clockwise", async () => {
  // Left half red, right half blue; rotating 90° clockwise puts the left half on top.
  const left = await sharp({ create: { width: 20, height: 20, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toBuffer();
  const jpeg = await sharp({ create: { width: 40, height: 20, channels: 3, background: { r: 0, g: 0, b: 255 } } })
    .composite([{ input: left, left: 0, top: 0 }])
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const meta = await sharp(jpeg).metadata();
  assert.deepEqual([meta.width, meta.height, meta.orientation], [40, 20, 6]);
  const img = await decodeImage(jpeg);
  assert.deepEqual([img.width, img.height], [20, 40]);
  const top = pixel(img, 10, 5);
  const bottom = pixel(img, 10, 35);
  assert.ok(top[0] > 200 && top[2] < 60, `top ${top} should be red`);
  assert.ok(bottom[2] > 200 && bottom[0] < 60, `bottom ${bottom} should be blue`);
});

test("resize at decode sets the short side and keeps the aspect ratio; no enlarging unless asked", async () => {
  const png = await solid(RED, 64, 48).png().toBuffer();
  const small = await decodeImage(png, { resizeShortSide: 24 });
  assert.deepEqual([small.width, small.height, small.data.length], [32, 24, 32 * 24 * 3]);
  const same = await decodeImage(png, { resizeShortSide: 96 });
  assert.deepEqual([same.width, same.height], [64, 48]);
  const big = await decodeImage(png, { resizeShortSide: 96, upscale: true });
  assert.deepEqual([big.width, big.height], [128, 96]);
  await assert.rejects(decodeImage(png, { resizeShortSide: 0 }), /positive integer for resizeShortSide/);
});

test("bad bytes are DecodeErrors with a reason", async () => {
  const jpeg = await sharp(Buffer.from(Array.from({ length: 96 * 64 * 3 }, (_, i) => (i * 7919) % 251)), { raw: { width: 96, height: 64, channels: 3 } })
    .jpeg()
    .toBuffer();
  await expectReason(Buffer.alloc(0), "empty");
  await expectReason(Buffer.from("this is not an image\n"), "not_image");
  await expectReason(jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), "truncated");
  const png = await solid().png().toBuffer();
  await expectReason(png.subarray(0, png.length - 20), "truncated");
  // Damage in the middle, end marker intact: corrupt, not truncated.
  const damaged = Buffer.from(jpeg);
  damaged.fill(0x07, 200, 400);
  await expectReason(damaged, "corrupt");
  await expectReason(jpeg, "too_large", { limitInputPixels: 96 * 64 - 1 });
  assert.equal((await decodeImage(jpeg, { limitInputPixels: 96 * 64 })).width, 96);
  // A tiny hand-made BMP: an image format, but not one sharp's prebuilt reads.
  const bmp = Buffer.alloc(58);
  bmp.write("BM", 0, "latin1");
  bmp.writeUInt32LE(58, 2);
  bmp.writeUInt32LE(54, 10);
  bmp.writeUInt32LE(40, 14);
  bmp.writeInt32LE(1, 18);
  bmp.writeInt32LE(1, 22);
  bmp.writeUInt16LE(1, 26);
  bmp.writeUInt16LE(24, 28);
  await expectReason(bmp, "unsupported");
  // Classification from messages alone, for errors that do not come from a decode.
  assert.equal(classifyDecodeError(jpeg, new Error("Input image exceeds pixel limit")), "too_large");
});

test("decodeRecord never throws for bad data; DecodeStats counts every skip and logs each file once", async () => {
  const lines: string[] = [];
  const stats = new DecodeStats((m) => lines.push(m));
  const good = await solid().png().toBuffer();
  for (let epoch = 0; epoch < 2; epoch++) {
    assert.ok(await decodeRecord({ key: "good", bytes: good }, stats));
    assert.equal(await decodeRecord({ key: "empty", bytes: Buffer.alloc(0) }, stats), undefined);
    assert.equal(await decodeRecord({ key: "gone", path: "/nonexistent/x.jpg" }, stats), undefined);
    assert.equal(await decodeRecord({ key: "k", origin: "shard.tar:k.json" }, stats), undefined);
  }
  assert.equal(stats.decoded, 2);
  assert.deepEqual([stats.skipped.empty, stats.skipped.unreadable, stats.skipped.no_image, stats.totalSkipped], [2, 2, 2, 6]);
  assert.deepEqual(lines, [
    "empty: skipped (empty: empty file)",
    "/nonexistent/x.jpg: skipped (unreadable: cannot read (ENOENT))",
    "shard.tar:k.json: skipped (no_image: record has no image bytes and no path)",
  ]);
  assert.deepEqual(stats.badFiles.map((b) => b.reason), ["empty", "unreadable", "no_image"]);
  // Bugs in the options are not data problems: they throw.
  await assert.rejects(decodeRecord({ key: "good", bytes: good }, stats, { resizeShortSide: -1 }), /resizeShortSide/);
});
