// Multi-crop augmentation (src/data/multicrop.ts, resample.ts, transforms.ts): configuration and presets,
// RandomResizedCrop boxes against torchvision's statistics, crops bit-exact with Pillow's bilinear resize, the
// photometric tensor ops on known inputs and against torchvision.transforms.functional (tests/oracle/multicrop.py),
// and the batched per-crop chain against torchvision applied crop by crop with the same parameters.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import sharp from "sharp";
import { builtinDataset } from "../src/data/builtin";
import { decodeImage } from "../src/data/decode";
import { runCropTask } from "../src/data/decode_worker";
import {
  MULTICROP_PRESETS,
  SEER_MULTICROP,
  SIMCLR_TWO_VIEW,
  blurKernelSize,
  drawBatchPhotometric,
  drawCropBoxes,
  emptyPhotometricParams,
  formatCropSpec,
  multiCropConfig,
  parseCropSpec,
  randomResizedCrop,
  roundHalfEven,
} from "../src/data/multicrop";
import { resizedCropBilinear } from "../src/data/resample";
import { Rng } from "../src/data/rng";
import {
  GRAY_WEIGHTS,
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  applyPhotometric_,
  fromUint8_,
  gaussianBlur,
  gaussianKernel1d,
  hflip,
  normalize_,
  reflectPad,
  rgbToGrayscale,
  solarize,
} from "../src/data/transforms";
import { empty, manualSeed, rand, tensor, tidy, type Tensor } from "../src/tensor";
import { assertClose, assertNoLeak } from "./helpers/assert";
import { oracleTensor, runOracle } from "./helpers/oracle";

test("configuration: SEER defaults, presets, crop specs, and errors that name the key", () => {
  const c = multiCropConfig();
  assert.deepEqual(c.crops.map((g) => [g.count, g.size, [...g.scale]]), [[2, 224, [0.14, 1]], [4, 96, [0.05, 0.14]]]);
  assert.deepEqual([...c.crops[0]!.ratio], [3 / 4, 4 / 3]);
  assert.deepEqual({ ...c.colorJitter }, { prob: 0.8, brightness: 0.8, contrast: 0.8, saturation: 0.8, hue: 0.2 });
  assert.equal(c.flipProb, 0.5);
  assert.equal(c.grayscaleProb, 0.2);
  assert.deepEqual([c.blur.prob, ...c.blur.sigma, c.blur.kernelFraction], [0.5, 0.1, 2.0, 0.1]);
  assert.equal(c.solarize.prob, 0);
  assert.deepEqual([...c.mean, ...c.std], [0.485, 0.456, 0.406, 0.229, 0.224, 0.225]);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.crops[0]) && Object.isFrozen(c.colorJitter));
  assert.equal(formatCropSpec(MULTICROP_PRESETS.swav.crops), "2x224+6x96");
  assert.deepEqual(SIMCLR_TWO_VIEW.crops.map((g) => [g.count, g.size, ...g.scale]), [[2, 224, 0.08, 1]]);

  const spec = parseCropSpec("2x160+4x96");
  assert.deepEqual(spec.map((g) => [g.count, g.size, ...g.scale]), [[2, 160, 0.14, 1], [4, 96, 0.05, 0.14]]);
  assert.deepEqual(parseCropSpec("2x224@0.08-1+6x96@0.05-0.2").map((g) => [...g.scale]), [[0.08, 1], [0.05, 0.2]]);
  const custom = multiCropConfig({ crops: "1x64", colorJitter: { hue: 0.1 }, blur: { prob: 1 }, solarize: { prob: 0.2 } });
  assert.deepEqual([custom.colorJitter.hue, custom.colorJitter.brightness, custom.blur.prob, custom.blur.sigma[1], custom.solarize.prob], [0.1, 0.8, 1, 2, 0.2]);

  assert.throws(() => multiCropConfig({ crop: "2x224" } as never), /unknown key "crop"/);
  assert.throws(() => multiCropConfig({ blur: { radius: 2 } } as never), /multiCropConfig\.blur: unknown key "radius"/);
  assert.throws(() => multiCropConfig({ colorJitter: { hue: 0.7 } }), /colorJitter\.hue/);
  assert.throws(() => multiCropConfig({ flipProb: 2 }), /flipProb but received 2/);
  assert.throws(() => multiCropConfig({ crops: [{ count: 2, size: 96, scale: [0.5, 0.2] }] }), /crops\[0\]\.scale/);
  assert.throws(() => parseCropSpec("2x224,4x96"), /COUNTxSIZE/);
  assert.throws(() => parseCropSpec("0x224"), /crop count/);
  assert.equal(blurKernelSize(224, 0.1), 23);
  assert.equal(blurKernelSize(96, 0.1), 9);
  assert.equal(blurKernelSize(32, 0.1), 3);
  assert.deepEqual([roundHalfEven(2.5), roundHalfEven(3.5), roundHalfEven(-0.5), roundHalfEven(2.4)], [2, 4, -0, 2]);
});

test("the PRNG is deterministic per key and roughly uniform", () => {
  const a = Rng.forKey(7, 1, 123, 0, 1);
  const b = Rng.forKey(7, 1, 123, 0, 1);
  const c = Rng.forKey(7, 1, 124, 0, 1);
  const xs = Array.from({ length: 2000 }, () => a.float());
  assert.deepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => b.float()));
  assert.notEqual(xs[0], c.float());
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.03, `mean ${mean}`);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const perm = Rng.forKey(1).permutation(50);
  assert.deepEqual([...perm].sort((p, q) => p - q), Array.from({ length: 50 }, (_, i) => i));
  assert.throws(() => Rng.forKey(-1), /non-negative safe integers/);
});

/** Mean and standard deviation. */
function meanSd(xs: number[]): [number, number] {
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  return [m, Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1))];
}

/** One oracle run for the whole file: inputs and expectations shared by the tests below. */
const W = 640;
const H = 480;
const DRAWS = 3000;
const fixture = (async () => {
  const coco = await builtinDataset("tiny_coco", "train");
  const image = await decodeImage(await fs.promises.readFile(coco.at(3).path!));
  manualSeed(3);
  const x = rand([6, 3, 20, 20]);
  const n = 6;
  const rng = Rng.forKey(99);
  const u = (lo: number, hi: number): number[] => Array.from({ length: n }, () => Math.fround(rng.uniform(lo, hi)));
  const chainConfig = multiCropConfig({ crops: "1x20", solarize: { prob: 0.5, threshold: 0.6 }, blur: { kernelFraction: 0.35 } });
  // Every crop draws every op with probability 1/2, so the chain covers each op and each order position.
  const chainParams = emptyPhotometricParams(n);
  for (let i = 0; i < n; i++) {
    chainParams.flip[i] = i % 2;
    chainParams.jitter[i] = i === 5 ? 0 : 1;
    chainParams.order.set(rng.permutation(4), 4 * i);
    chainParams.factors.set([rng.uniform(0.2, 1.8), rng.uniform(0.2, 1.8), rng.uniform(0.2, 1.8), rng.uniform(-0.2, 0.2)].map(Math.fround), 4 * i);
    chainParams.grayscale[i] = i % 3 === 0 ? 1 : 0;
    chainParams.blur[i] = i % 2 === 0 ? 0 : 1;
    chainParams.sigma[i] = Math.fround(rng.uniform(0.1, 2));
    chainParams.solarize[i] = i >= 3 ? 1 : 0;
  }
  const boxes: [number, number, number, number, number][] = [
    [0, 0, image.height, image.width, 224], // whole image, shrunk
    [10, 20, 100, 80, 224], // enlarged, non-square
    [image.height - 180, image.width - 140, 180, 140, 96], // touching the bottom-right corner
    [0, 0, 1, 1, 16], // one pixel
    [37, 51, 333, 97, 96], // shrunk in one direction, enlarged in the other
    [5, 7, 224, 224, 224], // no resize
  ];
  const args = {
    brightness: u(0, 2),
    contrast: u(0, 2),
    saturation: u(0, 2),
    hue: u(-0.5, 0.5),
    sigma: u(0.1, 2),
    kernel: 7,
    threshold: 0.6,
    mean: [...SEER_MULTICROP.mean],
    std: [...SEER_MULTICROP.std],
    chain: {
      flip: Array.from(chainParams.flip),
      jitter: Array.from(chainParams.jitter),
      order: Array.from({ length: n }, (_, i) => Array.from(chainParams.order.subarray(4 * i, 4 * i + 4))),
      factors: Array.from({ length: n }, (_, i) => Array.from(chainParams.factors.subarray(4 * i, 4 * i + 4))),
      gray: Array.from(chainParams.grayscale),
      blur: Array.from(chainParams.blur),
      sigma: Array.from(chainParams.sigma),
      solarize: Array.from(chainParams.solarize),
    },
    boxes,
    rrc: { width: W, height: H, scale: [0.14, 1], draws: DRAWS },
  };
  const img = tensor(image.data, { shape: [image.height, image.width, 3], dtype: "uint8" });
  const oracle = runOracle("multicrop.py", { x, img }, args);
  img.dispose();
  return { x, image, args, chainConfig, chainParams, boxes, oracle };
})();

test("RandomResizedCrop boxes: inside the image, area and aspect in range, same statistics as torchvision", async () => {
  const { oracle } = await fixture;
  for (const [w, h, scale] of [[W, H, [0.14, 1]], [W, H, [0.05, 0.14]], [224, 224, [0.14, 1]], [224, 224, [0.05, 0.14]], [60, 400, [0.14, 1]]] as const) {
    const rng = Rng.forKey(5, w, h);
    const areas: number[] = [];
    for (let i = 0; i < DRAWS; i++) {
      const b = randomResizedCrop(rng, w, h, scale, [3 / 4, 4 / 3]);
      assert.ok(b.top >= 0 && b.left >= 0 && b.height >= 1 && b.width >= 1 && b.top + b.height <= h && b.left + b.width <= w, JSON.stringify(b));
      const area = (b.width * b.height) / (w * h);
      const slack = 2 * (b.width + b.height) / (w * h); // integer rounding of the sides
      if (w / h >= 3 / 4 && w / h <= 4 / 3) {
        // No fallback is possible to outside the range here, except the whole image for scale up to 1.
        assert.ok(area >= scale[0] - slack && area <= scale[1] + slack, `area ${area} for ${w}x${h} scale ${scale}`);
        assert.ok(b.width / b.height >= 0.75 - 2 / b.height && b.width / b.height <= 4 / 3 + 2 / b.height, `ratio ${b.width}/${b.height}`);
      }
      areas.push(area);
    }
    const [m] = meanSd(areas);
    if (scale[1] < 0.5) {
      // Small crops always fit at the first try: the area is uniform in the range.
      assert.ok(Math.abs(m - (scale[0] + scale[1]) / 2) < 0.05 * (scale[1] - scale[0]) + 0.002, `mean area ${m} for scale ${scale}`);
    }
  }
  // Against torchvision's own draws on a 640x480 image with scale (0.14, 1).
  const tv = oracleTensor(oracle, "rrc");
  const tvBoxes = tv.toArray();
  tv.dispose();
  const stats = (boxes: number[][]): number[][] => [
    boxes.map(([, , bh, bw]) => (bh! * bw!) / (W * H)),
    boxes.map(([, , bh, bw]) => Math.log(bw! / bh!)),
    boxes.map(([t, , bh]) => (t! + bh! / 2) / H),
    boxes.map(([, l, , bw]) => (l! + bw! / 2) / W),
  ];
  const theirs = stats(Array.from({ length: DRAWS }, (_, i) => tvBoxes.slice(4 * i, 4 * i + 4)));
  const rng = Rng.forKey(11);
  const ours = stats(Array.from({ length: DRAWS }, () => {
    const b = randomResizedCrop(rng, W, H, [0.14, 1], [3 / 4, 4 / 3]);
    return [b.top, b.left, b.height, b.width];
  }));
  ["area", "log aspect", "centre y", "centre x"].forEach((name, k) => {
    const [m1, s1] = meanSd(ours[k]!);
    const [m2, s2] = meanSd(theirs[k]!);
    const se = Math.sqrt((s1 * s1 + s2 * s2) / DRAWS);
    assert.ok(Math.abs(m1 - m2) < 4.5 * se, `${name}: mean ${m1} vs torchvision ${m2} (se ${se})`);
    assert.ok(Math.abs(s1 - s2) < 0.1 * s2, `${name}: sd ${s1} vs torchvision ${s2}`);
  });
});

test("crops are bit-exact with Pillow's bilinear resized_crop (torchvision RandomResizedCrop on PIL images)", async () => {
  const { image, boxes, oracle } = await fixture;
  boxes.forEach(([top, left, h, w, size], j) => {
    const out = new Uint8Array(size * size * 3);
    resizedCropBilinear(image.data, image.width, { top, left, height: h, width: w }, size, size, out, 0);
    const expected = oracle[`crop${j}`]!.data as Uint8Array;
    assert.equal(out.length, expected.length, `crop ${j}`);
    let diffs = 0;
    for (let i = 0; i < out.length; i++) if (out[i] !== expected[i]) diffs++;
    assert.equal(diffs, 0, `crop ${j} (${w}x${h} -> ${size}): ${diffs} bytes differ from Pillow`);
    // The planar layout holds the same values.
    const planes = new Uint8Array(size * size * 3 + 5);
    resizedCropBilinear(image.data, image.width, { top, left, height: h, width: w }, size, size, planes, 5, "chw");
    for (let i = 0; i < size * size; i++) {
      for (let c = 0; c < 3; c++) if (planes[5 + c * size * size + i] !== out[3 * i + c]) assert.fail(`crop ${j}: planar pixel ${i} channel ${c}`);
    }
  });
});

test("the decode path writes each crop at its crop-major row with the requested size", async () => {
  // A gradient image: R encodes x, G encodes y, so a crop's corners tell where it came from.
  const w = 200;
  const h = 150;
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.set([x, y, 128], (y * w + x) * 3);
  const png = await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
  const crops = parseCropSpec("2x32+3x16");
  const B = 3;
  const targets = crops.map((g) => new Uint8Array(g.count * B * g.size * g.size * 3));
  const key = { seed: 1, epoch: 0, index: 4, salt: 0 };
  const r = await runCropTask({ bytes: png, where: "gradient", key, slot: 1, batchSize: B, targets }, { crops, resizeKernel: "pil-bilinear", decode: {} });
  assert.ok(r.ok);
  assert.deepEqual([r.width, r.height], [w, h]);
  const boxes = drawCropBoxes(key, w, h, crops);
  assert.deepEqual(r.boxes, boxes.flat().flatMap((b) => [b.top, b.left, b.height, b.width]));
  crops.forEach((g, gi) => {
    boxes[gi]!.forEach((b, j) => {
      const base = (j * B + 1) * g.size * g.size * 3; // row j * B + slot
      const plane = g.size * g.size;
      const at = (x: number, y: number): number[] => [0, 1, 2].map((c) => targets[gi]![base + c * plane + y * g.size + x]!); // planes
      const [r0, g0] = at(0, 0);
      const [r1, g1] = at(g.size - 1, g.size - 1);
      const tol = Math.max(b.width, b.height) / g.size + 1;
      assert.ok(Math.abs(r0! - b.left) <= tol && Math.abs(g0! - b.top) <= tol, `group ${gi} crop ${j}: top-left ${r0},${g0} vs box ${JSON.stringify(b)}`);
      assert.ok(Math.abs(r1! - (b.left + b.width - 1)) <= tol && Math.abs(g1! - (b.top + b.height - 1)) <= tol, `bottom-right ${r1},${g1}`);
    });
    // Other slots' rows are untouched.
    assert.ok(targets[gi]!.subarray(0, g.size * g.size * 3).every((v) => v === 0));
  });
  const bad = await runCropTask({ bytes: Buffer.from("not an image"), where: "junk", key, slot: 0, batchSize: B, targets }, { crops, resizeKernel: "pil-bilinear", decode: {} });
  assert.deepEqual(bad.ok ? "ok" : bad.reason, "not_image");
});

test("photometric ops on known inputs: grayscale weights, brightness, contrast, saturation, hue, blur of a delta", () => {
  assertNoLeak(() =>
    tidy(() => {
      // Pure R, G, B, white and a mid grey as 1x1 images.
      const px = tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0.5, 0.5, 0.5]]).view(5, 3, 1, 1);
      assertClose(rgbToGrayscale(px).flatten(), [GRAY_WEIGHTS[0], GRAY_WEIGHTS[1], GRAY_WEIGHTS[2], 1, 0.5], { atol: 1e-4, what: "grayscale" });
      assert.deepEqual([...GRAY_WEIGHTS], [0.2989, 0.587, 0.114]);
      assertClose(adjustBrightness(px, [0.5, 2, 1, 0.25, 1.5]).flatten(), [0.5, 0, 0, 0, 1, 0, 0, 0, 1, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75], { what: "brightness" });
      // Contrast 0 gives the mean grey everywhere; saturation 0 gives the grey of each pixel.
      const two = tensor([[[[0.2, 0.8]], [[0.4, 0.4]], [[0.6, 0]]]]); // (1, 3, 1, 2)
      const mean = (0.2989 * 0.5 + 0.587 * 0.4 + 0.114 * 0.3);
      assertClose(adjustContrast(two, [0]).flatten(), new Array(6).fill(mean), { what: "contrast 0" });
      const g0 = 0.2989 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6;
      const g1 = 0.2989 * 0.8 + 0.587 * 0.4;
      assertClose(adjustSaturation(two, [0]).flatten(), [g0, g1, g0, g1, g0, g1], { what: "saturation 0" });
      assertClose(adjustSaturation(two, [1]), two, { what: "saturation 1 is the identity" });
      // A third of a turn takes red to green, green to blue, blue to red; grey and white stay.
      assertClose(adjustHue(px, [1 / 3, 1 / 3, 1 / 3, 0.25, -0.4]).flatten(), [0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0.5, 0.5, 0.5], { atol: 1e-6, what: "hue" });
      const some = rand([2, 3, 5, 4]);
      assertClose(adjustHue(some, [0, 0]), some, { atol: 1e-6, what: "hue 0 is the identity" });
      assertClose(adjustHue(adjustHue(some, [0.3, -0.1]), [-0.3, 0.1]), some, { atol: 1e-5, what: "hue there and back" });
      // Blurring a centred delta gives the 2-d Gaussian kernel, the outer product of the 1-d one.
      const k = 7;
      const sigma = 1.3;
      const delta = empty([1, 3, 15, 15]).zero_();
      delta.narrow(2, 7, 1).narrow(3, 7, 1).fill_(1);
      const blurred = gaussianBlur(delta, [sigma], k).select(0, 0).select(0, 1).toArray();
      const g = Array.from({ length: k }, (_, i) => Math.exp(-0.5 * ((i - 3) / sigma) ** 2));
      const sum = g.reduce((s, v) => s + v, 0);
      for (let y = 0; y < 15; y++) {
        for (let x = 0; x < 15; x++) {
          const inside = Math.abs(y - 7) <= 3 && Math.abs(x - 7) <= 3;
          const want = inside ? (g[y - 4]! * g[x - 4]!) / (sum * sum) : 0;
          assert.ok(Math.abs(blurred[y * 15 + x]! - want) < 1e-6, `blur(${x}, ${y}) = ${blurred[y * 15 + x]}, expected ${want}`);
        }
      }
      assertClose(gaussianKernel1d(k, sigma), g.map((v) => v / sum), { atol: 1e-7, what: "1-d kernel" });
      // Reflect padding repeats no edge pixel, on both axes and with several bounces.
      const row = tensor([[[[1, 2, 3, 4]]]]);
      assert.deepEqual(reflectPad(row, 3, 2).toArray(), [3, 2, 1, 2, 3, 4, 3, 2]);
      assert.deepEqual(reflectPad(row.transpose(2, 3), 2, 2).flatten().toArray(), [3, 2, 1, 2, 3, 4, 3, 2]);
      assert.deepEqual(reflectPad(row, 3, 5).toArray(), [2, 3, 4, 3, 2, 1, 2, 3, 4, 3, 2, 1, 2, 3]);
      assertClose(solarize(tensor([0.1, 0.5, 0.7, 1]).view(1, 1, 1, 4), 0.5).flatten(), [0.1, 0.5, 0.30000001, 0]);
      assert.deepEqual(hflip(row).toArray(), [4, 3, 2, 1]);
      const u8 = tensor(Uint8Array.from([0, 51, 255, 102, 204, 0]), { shape: [1, 1, 2, 3], dtype: "uint8" }); // (N, S, S, 3) with S = 1x2
      const unit = fromUint8_(empty([1, 3, 1, 2]), u8, "nhwc");
      assertClose(fromUint8_(empty([1, 3, 1, 2]), u8.permute(0, 3, 1, 2).contiguous()), unit, { what: "planes" });
      assertClose(unit.flatten(), [0, 102 / 255, 51 / 255, 204 / 255, 1, 0], { what: "ToTensor" });
      assertClose(normalize_(unit, [0.5, 0.5, 0.5], [0.5, 0.25, 1]).flatten(), [-1, (0.4 - 0.5) / 0.5, (0.2 - 0.5) / 0.25, (0.8 - 0.5) / 0.25, 0.5, -0.5], { atol: 1e-6, what: "normalize" });
    }),
  );
});

test("photometric ops match torchvision.transforms.functional image by image", async () => {
  const { x, args, oracle } = await fixture;
  assertNoLeak(() =>
    tidy(() => {
      const check = (name: string, ours: Tensor, atol = 2e-6): void => {
        const theirs = oracleTensor(oracle, name);
        assertClose(ours, theirs, { atol, rtol: 0, what: name });
      };
      check("brightness", adjustBrightness(x, args.brightness));
      check("contrast", adjustContrast(x, args.contrast));
      check("saturation", adjustSaturation(x, args.saturation));
      check("hue", adjustHue(x, args.hue), 1e-5);
      check("gray", rgbToGrayscale(x));
      check("blur", gaussianBlur(x, args.sigma, args.kernel));
      check("solarize", solarize(x, args.threshold));
      check("normalize", normalize_(x.clone(), args.mean, args.std), 1e-5);
    }),
  );
});

test("the batched chain equals torchvision's per-crop chain with the same parameters, for any rows per call", async () => {
  const { x, chainConfig, chainParams, oracle } = await fixture;
  assert.equal(blurKernelSize(20, chainConfig.blur.kernelFraction), 7);
  assertNoLeak(() =>
    tidy(() => {
      const expected = oracleTensor(oracle, "chain");
      for (const maxRowsPerCall of [1, 2, 6]) {
        const y = x.clone();
        applyPhotometric_(y, chainParams, chainConfig, { maxRowsPerCall });
        assertClose(y, expected, { atol: 5e-5, rtol: 0, what: `chain, ${maxRowsPerCall} rows per call` });
      }
    }),
  );
});

test("photometric parameters: crop-major rows, per-image streams, probabilities as configured", () => {
  const keys = Array.from({ length: 64 }, (_, i) => ({ seed: 3, epoch: 1, index: i, salt: 0 }));
  const params = drawBatchPhotometric(SEER_MULTICROP, keys);
  assert.deepEqual(params.map((p) => p.n), [128, 256]);
  // Image b's crops come from its own generator: a batch of one gives the same rows.
  const single = drawBatchPhotometric(SEER_MULTICROP, [keys[5]!]);
  assert.equal(single[1]!.sigma[3], params[1]!.sigma[3 * 64 + 5]);
  assert.equal(single[0]!.factors[4 + 2], params[0]!.factors[4 * (64 + 5) + 2]);
  const p = params[1]!;
  const rate = (a: Uint8Array): number => a.reduce((s, v) => s + v, 0) / a.length;
  assert.ok(Math.abs(rate(p.flip) - 0.5) < 0.1 && Math.abs(rate(p.jitter) - 0.8) < 0.08 && Math.abs(rate(p.grayscale) - 0.2) < 0.08 && Math.abs(rate(p.blur) - 0.5) < 0.1);
  assert.equal(rate(p.solarize), 0);
  for (let i = 0; i < p.n; i++) {
    assert.deepEqual([...p.order.subarray(4 * i, 4 * i + 4)].sort(), [0, 1, 2, 3]);
    const [b, c, s, h] = p.factors.subarray(4 * i, 4 * i + 4);
    if (p.jitter[i]) assert.ok(b! >= 0.2 && b! <= 1.8 && c! >= 0.2 && c! <= 1.8 && s! >= 0.2 && s! <= 1.8 && h! >= -0.2 && h! <= 0.2);
    else assert.deepEqual([b, c, s, h], [1, 1, 1, 0]);
    assert.ok(p.sigma[i]! >= 0.1 && p.sigma[i]! <= 2);
  }
});

test("fixture tensors are freed", async () => {
  const { x } = await fixture;
  x.dispose();
});
