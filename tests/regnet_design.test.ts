// RegNet/ResNet designs, the model table and complexity counts: pure arithmetic, no tensors.
//
// References, each pinned below with its source:
// - pycls `dev/model_complexity.json` (2020-09-04): exact params / flops / acts of the RegNetX/Y baselines and R-50;
// - pycls `MODEL_ZOO.md` params (M) and GF, and the stage tables of /work/shared/docs/seer-facts.md §5.3;
// - torchvision 0.14 `num_params` metadata, and torchvision itself (tests/oracle/regnet_torchvision.py) built live;
// - ClassyVision's generator (copied into the oracle) for the pycls/VISSL rounding convention.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  type RegNetParams,
  type RoundingConvention,
  generateRegNet,
  makeDivisible,
  regnetBlocks,
  resnetBlocks,
  roundHalfEven,
  seWidth,
} from "../src/models/regnet_design";
import { complexity } from "../src/models/complexity";
import { MODEL_TABLE, type RegNetEntry, closeModelNames, getModelEntry, listModelNames, modelDesign, resolveModelName } from "../src/models/registry_table";
import { PACKAGE_ROOT } from "../src/util/paths";

// ---------------------------------------------------------------------------------------------------------------
// Pinned reference numbers

/** pycls dev/model_complexity.json (configs/dds_baselines/*, 224x224, 1000 classes, pycls rounding). */
const PYCLS_COMPLEXITY: Record<string, { params: number; flops: number; acts: number }> = {
  regnet_x_200mf: { params: 2684792, flops: 199040872, acts: 2164056 },
  regnet_x_400mf: { params: 5157512, flops: 397678568, acts: 3143272 },
  regnet_x_600mf: { params: 6196040, flops: 600891112, acts: 3975096 },
  regnet_x_800mf: { params: 7259656, flops: 799700712, acts: 5148744 },
  regnet_x_1_6gf: { params: 9190136, flops: 1602850792, acts: 7933512 },
  regnet_x_3_2gf: { params: 15296552, flops: 3176622952, acts: 11367432 },
  regnet_x_4gf: { params: 22118248, flops: 3964499816, acts: 12201608 },
  regnet_x_6_4gf: { params: 26209256, flops: 6460292264, acts: 16369744 },
  regnet_x_8gf: { params: 39572648, flops: 7995133416, acts: 14059688 },
  regnet_x_12gf: { params: 46106056, flops: 12086679016, acts: 21366568 },
  regnet_x_16gf: { params: 54278536, flops: 15940756456, acts: 25515496 },
  regnet_x_32gf: { params: 107811560, flops: 31735930792, acts: 36302160 },
  regnet_y_200mf: { params: 3162996, flops: 199519076, acts: 2168052 },
  regnet_y_400mf: { params: 4344144, flops: 401849056, acts: 3892496 },
  regnet_y_600mf: { params: 6055160, flops: 601227608, acts: 4334296 },
  regnet_y_800mf: { params: 6263168, flops: 797183328, acts: 5249888 },
  regnet_y_1_6gf: { params: 11202430, flops: 1612087326, acts: 8044814 },
  regnet_y_3_2gf: { params: 19436338, flops: 3176496162, acts: 11263418 },
  regnet_y_4gf: { params: 20646656, flops: 3973301344, acts: 12287200 },
  regnet_y_6_4gf: { params: 30583252, flops: 6355221876, acts: 16407188 },
  regnet_y_8gf: { params: 39180068, flops: 7963074196, acts: 17968916 },
  regnet_y_12gf: { params: 51822544, flops: 12092395504, acts: 21384496 },
  regnet_y_16gf: { params: 83590140, flops: 15911534044, acts: 23041228 },
  regnet_y_32gf: { params: 145046770, flops: 32279583362, acts: 30261570 },
  resnet50: { params: 25557032, flops: 4089185256, acts: 11315688 }, // R-50-1x64d_dds (stride on the 3x3)
};

/** seer-facts.md §5.3 (pycls rounding): depths, widths, groups, and pycls MODEL_ZOO params (M) / GF. */
const PYCLS_TABLE: Record<string, { d: number[]; w: number[]; g: number[]; paramsM: number; gf: number }> = {
  regnet_x_200mf: { d: [1, 1, 4, 7], w: [24, 56, 152, 368], g: [3, 7, 19, 46], paramsM: 2.7, gf: 0.2 },
  regnet_x_400mf: { d: [1, 2, 7, 12], w: [32, 64, 160, 384], g: [2, 4, 10, 24], paramsM: 5.2, gf: 0.4 },
  regnet_x_600mf: { d: [1, 3, 5, 7], w: [48, 96, 240, 528], g: [2, 4, 10, 22], paramsM: 6.2, gf: 0.6 },
  regnet_x_800mf: { d: [1, 3, 7, 5], w: [64, 128, 288, 672], g: [4, 8, 18, 42], paramsM: 7.3, gf: 0.8 },
  regnet_x_1_6gf: { d: [2, 4, 10, 2], w: [72, 168, 408, 912], g: [3, 7, 17, 38], paramsM: 9.2, gf: 1.6 },
  regnet_x_3_2gf: { d: [2, 6, 15, 2], w: [96, 192, 432, 1008], g: [2, 4, 9, 21], paramsM: 15.3, gf: 3.2 },
  regnet_x_4gf: { d: [2, 5, 14, 2], w: [80, 240, 560, 1360], g: [2, 6, 14, 34], paramsM: 22.1, gf: 4.0 },
  regnet_x_6_4gf: { d: [2, 4, 10, 1], w: [168, 392, 784, 1624], g: [3, 7, 14, 29], paramsM: 26.2, gf: 6.5 },
  regnet_x_8gf: { d: [2, 5, 15, 1], w: [80, 240, 720, 1920], g: [1, 2, 6, 16], paramsM: 39.6, gf: 8.0 },
  regnet_x_12gf: { d: [2, 5, 11, 1], w: [224, 448, 896, 2240], g: [2, 4, 8, 20], paramsM: 46.1, gf: 12.1 },
  regnet_x_16gf: { d: [2, 6, 13, 1], w: [256, 512, 896, 2048], g: [2, 4, 7, 16], paramsM: 54.3, gf: 15.9 },
  regnet_x_32gf: { d: [2, 7, 13, 1], w: [336, 672, 1344, 2520], g: [2, 4, 8, 15], paramsM: 107.8, gf: 31.7 },
  regnet_y_200mf: { d: [1, 1, 4, 7], w: [24, 56, 152, 368], g: [3, 7, 19, 46], paramsM: 3.2, gf: 0.2 },
  regnet_y_400mf: { d: [1, 3, 6, 6], w: [48, 104, 208, 440], g: [6, 13, 26, 55], paramsM: 4.3, gf: 0.4 },
  regnet_y_600mf: { d: [1, 3, 7, 4], w: [48, 112, 256, 608], g: [3, 7, 16, 38], paramsM: 6.1, gf: 0.6 },
  regnet_y_800mf: { d: [1, 3, 8, 2], w: [64, 128, 320, 768], g: [4, 8, 20, 48], paramsM: 6.3, gf: 0.8 },
  regnet_y_1_6gf: { d: [2, 6, 17, 2], w: [48, 120, 336, 888], g: [2, 5, 14, 37], paramsM: 11.2, gf: 1.6 },
  regnet_y_3_2gf: { d: [2, 5, 13, 1], w: [72, 216, 576, 1512], g: [3, 9, 24, 63], paramsM: 19.4, gf: 3.2 },
  regnet_y_4gf: { d: [2, 6, 12, 2], w: [128, 192, 512, 1088], g: [2, 3, 8, 17], paramsM: 20.6, gf: 4.0 },
  regnet_y_6_4gf: { d: [2, 7, 14, 2], w: [144, 288, 576, 1296], g: [2, 4, 8, 18], paramsM: 30.6, gf: 6.4 },
  regnet_y_8gf: { d: [2, 4, 10, 1], w: [168, 448, 896, 2016], g: [3, 8, 16, 36], paramsM: 39.2, gf: 8.0 },
  regnet_y_12gf: { d: [2, 5, 11, 1], w: [224, 448, 896, 2240], g: [2, 4, 8, 20], paramsM: 51.8, gf: 12.1 },
  regnet_y_16gf: { d: [2, 4, 11, 1], w: [224, 448, 1232, 3024], g: [2, 4, 11, 27], paramsM: 83.6, gf: 15.9 },
  regnet_y_32gf: { d: [2, 5, 12, 1], w: [232, 696, 1392, 3712], g: [1, 3, 6, 16], paramsM: 145.0, gf: 32.3 },
};

/** seer-facts.md §5.3 "TV widths if different": the five models where torchvision's rounding disagrees. */
const TV_WIDTHS_DIFFER: Record<string, number[]> = {
  regnet_x_400mf: [32, 64, 160, 400],
  regnet_x_4gf: [120, 240, 560, 1360],
  regnet_y_800mf: [64, 144, 320, 784],
  regnet_y_4gf: [128, 256, 512, 1088],
  regnet_y_8gf: [224, 448, 896, 2016],
};

/** torchvision 0.14 weights `meta["num_params"]` (1000-class FC included). */
const TV_NUM_PARAMS: Record<string, number> = {
  regnet_x_400mf: 5495976, regnet_x_800mf: 7259656, regnet_x_1_6gf: 9190136, regnet_x_3_2gf: 15296552,
  regnet_x_8gf: 39572648, regnet_x_16gf: 54278536, regnet_x_32gf: 107811560,
  regnet_y_400mf: 4344144, regnet_y_800mf: 6432512, regnet_y_1_6gf: 11202430, regnet_y_3_2gf: 19436338,
  regnet_y_8gf: 39381472, regnet_y_16gf: 83590140, regnet_y_32gf: 145046770, regnet_y_128gf: 644812894,
  resnet18: 11689512, resnet50: 25557032,
};

/** seer-facts.md §5.3 "Large / SEER RegNets" (pycls rounding; trunk = stem + stages, no FC). */
const LARGE: Record<string, { d: number[]; w: number[]; g: number[]; trunk: number }> = {
  seer_regnet_y_64gf: { d: [2, 5, 12, 1], w: [328, 984, 1968, 4920], g: [1, 3, 6, 15], trunk: 276457786 },
  seer_regnet_y_64gf_old: { d: [2, 5, 11, 2], w: [368, 992, 1488, 2976], g: [1, 2, 3, 6], trunk: 239997996 },
  seer_regnet_y_128gf: { d: [2, 7, 17, 1], w: [528, 1056, 2904, 7392], g: [2, 4, 11, 28], trunk: 637419894 },
  regnet_y_128gf: { d: [2, 7, 17, 1], w: [528, 1056, 2904, 7392], g: [2, 4, 11, 28], trunk: 637419894 },
  classy_regnet_y_256gf: { d: [3, 7, 16, 1], w: [640, 1696, 2544, 5088], g: [1, 2, 3, 6], trunk: 821051008 },
  seer_regnet_y_256gf: { d: [2, 7, 17, 1], w: [746, 1492, 4103, 10444], g: [2, 4, 11, 28], trunk: 1272156138 },
  seer_regnet_10b: { d: [2, 7, 17, 1], w: [2020, 4040, 11110, 28280], g: [2, 4, 11, 28], trunk: 9323934872 },
};

const regnetEntries = (): RegNetEntry[] => MODEL_TABLE.filter((e): e is RegNetEntry => e.family === "regnet");
const stagesOf = (name: string, rounding?: RoundingConvention) => {
  const d = modelDesign(name, { rounding });
  assert.equal(d.family, "regnet");
  return d.family === "regnet" ? d.stages : [];
};

// ---------------------------------------------------------------------------------------------------------------
// Rounding primitives

test("roundHalfEven rounds ties to even like Python's round; Math.round does not", () => {
  const cases: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [24.5, 24], [48.5, 48], [186.5, 186], [-2.5, -2], [-1.5, -2], [2.4999999, 2], [2.5000001, 3], [7, 7], [0, 0]];
  for (const [x, want] of cases) assert.equal(roundHalfEven(x), want, `roundHalfEven(${x})`);
  assert.equal(Math.round(24.5), 25, "the trap this exists for");
});

test("makeDivisible is torchvision's _make_divisible (ties up, 10% floor)", () => {
  assert.equal(makeDivisible(392, 16), 400); // X-400MF last stage: 24.5 rounds up
  assert.equal(makeDivisible(136, 16), 144); // Y-800MF stage 2: 8.5 rounds up
  assert.equal(makeDivisible(96, 40), 120); // X-4.0GF: 80 < 0.9·96, bumped
  assert.equal(makeDivisible(192, 56), 224); // Y-8.0GF: 168 < 172.8, bumped
  assert.equal(makeDivisible(160, 16), 160);
  assert.equal(makeDivisible(3, 8), 8); // never below the divisor
});

test("SE width is int(round(se_ratio · w_in)), half to even", () => {
  assert.equal(seWidth(746, 0.25), 186); // 186.5 -> 186 (SEER RG-256GF stage 2, block 1)
  assert.equal(seWidth(4103, 0.25), 1026); // 1025.75
  assert.equal(seWidth(32, 0.25), 8);
  assert.equal(seWidth(32, 0), 0);
});

// ---------------------------------------------------------------------------------------------------------------
// generateRegNet

test("generateRegNet validates its parameters with errors that name them", () => {
  const ok: RegNetParams = { depth: 13, w0: 24, wa: 36.44, wm: 2.49, groupWidth: 8, rounding: "pycls" };
  assert.doesNotThrow(() => generateRegNet(ok));
  assert.throws(() => generateRegNet({ ...ok, w0: 20 }), /Expected a positive multiple of q=8 for w0 but received 20/);
  assert.throws(() => generateRegNet({ ...ok, wm: 1 }), /for wm but received 1/);
  assert.throws(() => generateRegNet({ ...ok, wa: -1 }), /for wa but received -1/);
  assert.throws(() => generateRegNet({ ...ok, depth: 0 }), /positive integer for depth/);
  assert.throws(() => generateRegNet({ ...ok, depth: 2.5 }), /positive integer for depth/);
  assert.throws(() => generateRegNet({ ...ok, groupWidth: 0 }), /for groupWidth/);
  assert.throws(() => generateRegNet({ ...ok, wa: Number.NaN }), /for wa but received NaN/);
  assert.throws(() => generateRegNet({ ...ok, rounding: "timm" as RoundingConvention }), /torchvision, pycls for rounding but received "timm"/);
  assert.throws(() => generateRegNet({ ...ok, q: 16 }), /multiple of q=16 for w0 but received 24/);
});

test("a design is a frozen named struct with per-block widths, raw stage widths and strides", () => {
  const d = generateRegNet({ depth: 22, w0: 24, wa: 24.48, wm: 2.54, groupWidth: 16, rounding: "torchvision" });
  assert.equal(d.family, "regnet");
  assert.ok(Object.isFrozen(d) && Object.isFrozen(d.stages) && Object.isFrozen(d.stages[0]));
  assert.equal(d.blockWidths.length, 22);
  assert.deepEqual(d.rawStageWidths, [24, 64, 152, 392]); // seer-facts.md "raw widths" for X-400MF
  assert.deepEqual(d.stages.map((s) => s.stride), [2, 2, 2, 2]);
  assert.deepEqual(d.stages.map((s) => s.width), [32, 64, 160, 400]);
  assert.equal(d.numFeatures, 400);
  assert.equal(d.stemWidth, 32);
  assert.deepEqual(d.params, { depth: 22, w0: 24, wa: 24.48, wm: 2.54, groupWidth: 16, bottleneckRatio: 1, seRatio: 0, q: 8, rounding: "torchvision", stemWidth: 32 });
  const blocks = regnetBlocks(d);
  assert.equal(blocks.length, 22);
  assert.deepEqual(blocks[0], { stage: 1, index: 1, wIn: 32, wOut: 32, stride: 2, bottleneckWidth: 32, groupWidth: 16, groups: 2, seWidth: 0, projection: true });
  assert.equal(blocks[1]!.projection, true); // 32 -> 64, stride 2
  assert.equal(blocks[2]!.projection, false);
});

test("torchvision's float32 block widths are emulated: w0 400, wm 2.11 rounds 105.5 in float64 but 105.49999 in float32", () => {
  const p = { depth: 30, w0: 400, wa: 167.12, wm: 2.11, groupWidth: 8 };
  assert.deepEqual(generateRegNet({ ...p, rounding: "pycls" }).rawStageWidths, [400, 848, 1784, 3760]);
  assert.deepEqual(generateRegNet({ ...p, rounding: "torchvision" }).rawStageWidths, [400, 840, 1784, 3760]);
});

test("pycls rounding reproduces the seer-facts.md stage tables for all 24 RegNetX/Y baselines", () => {
  for (const [name, want] of Object.entries(PYCLS_TABLE)) {
    const stages = stagesOf(name, "pycls");
    assert.deepEqual(stages.map((s) => s.depth), want.d, `${name} depths`);
    assert.deepEqual(stages.map((s) => s.width), want.w, `${name} widths`);
    assert.deepEqual(stages.map((s) => s.groups), want.g, `${name} groups`);
  }
});

test("torchvision rounding differs exactly for X-400MF, X-4.0GF, Y-800MF, Y-4.0GF, Y-8.0GF", () => {
  for (const [name, want] of Object.entries(PYCLS_TABLE)) {
    const tv = stagesOf(name, "torchvision");
    assert.deepEqual(tv.map((s) => s.width), TV_WIDTHS_DIFFER[name] ?? want.w, `${name} torchvision widths`);
    assert.deepEqual(tv.map((s) => s.depth), want.d, `${name} torchvision depths`);
  }
  // X-8.0GF: g = 120 is capped to the 80-wide first stage.
  assert.deepEqual(stagesOf("regnet_x_8gf").map((s) => s.groupWidth), [80, 120, 120, 120]);
});

test("large SEER RegNets: stage layouts and trunk parameters match seer-facts.md", () => {
  for (const [name, want] of Object.entries(LARGE)) {
    const d = modelDesign(name);
    assert.equal(d.family, "regnet");
    if (d.family !== "regnet") continue;
    assert.deepEqual(d.stages.map((s) => s.depth), want.d, `${name} depths`);
    assert.deepEqual(d.stages.map((s) => s.width), want.w, `${name} widths`);
    assert.deepEqual(d.stages.map((s) => s.groups), want.g, `${name} groups`);
    assert.equal(complexity(d, { numClasses: 0 }).params, want.trunk, `${name} trunk params`);
    // Both conventions agree on all of these.
    const other = modelDesign(name, { rounding: d.rounding === "pycls" ? "torchvision" : "pycls" });
    assert.equal(complexity(other, { numClasses: 0 }).params, want.trunk, `${name} trunk params, other rounding`);
  }
  const seer256 = modelDesign("regnety_2560");
  assert.equal(seer256.numFeatures, 10444); // the SEER head's input width (VISSL dims [10444, 8192, 8192, 256])
  assert.equal(modelDesign("RG-10B").numFeatures, 28280); // VISSL 10B head dims [28280, ...]
});

// ---------------------------------------------------------------------------------------------------------------
// Complexity

test("params, FLOPs and activations equal pycls dev/model_complexity.json exactly (pycls rounding, 224px)", () => {
  for (const [name, want] of Object.entries(PYCLS_COMPLEXITY)) {
    const d = name.startsWith("regnet") ? modelDesign(name, { rounding: "pycls" }) : modelDesign(name);
    const c = complexity(d);
    assert.deepEqual({ params: c.params, flops: c.flops, acts: c.acts }, want, name);
  }
});

test("params (M) and GF round to the pycls MODEL_ZOO numbers", () => {
  for (const [name, want] of Object.entries(PYCLS_TABLE)) {
    const c = complexity(modelDesign(name, { rounding: "pycls" }));
    assert.ok(Math.abs(c.params / 1e6 - want.paramsM) <= 0.05 + 1e-9, `${name}: ${c.params} params vs ${want.paramsM}M`);
    assert.ok(Math.abs(c.flops / 1e9 - want.gf) <= 0.05 + 1e-9, `${name}: ${c.flops} flops vs ${want.gf} GF`);
  }
});

test("with each entry's default rounding, parameter counts equal torchvision's num_params", () => {
  for (const [name, want] of Object.entries(TV_NUM_PARAMS)) {
    assert.equal(complexity(modelDesign(name)).params, want, name);
  }
});

test("the report splits stem, stages and head, and numClasses 0 drops the head", () => {
  const d = modelDesign("regnet_y_400mf");
  const c = complexity(d);
  const sum = (k: "params" | "flops" | "acts") => c.stem[k] + c.stages.reduce((a, s) => a + s[k], 0) + c.head[k];
  assert.equal(sum("params"), c.params);
  assert.equal(sum("flops"), c.flops);
  assert.equal(sum("acts"), c.acts);
  assert.deepEqual(c.head, { params: 440 * 1000 + 1000, flops: 440 * 1000 + 1000, acts: 1000 });
  assert.deepEqual(c.stem, { params: 27 * 32 + 64, flops: 27 * 32 * 112 * 112, acts: 32 * 112 * 112 });
  assert.deepEqual(c.featureSize, [7, 7]);
  const trunk = complexity(d, { numClasses: 0 });
  assert.equal(trunk.params, c.params - c.head.params);
  assert.deepEqual(trunk.head, { params: 0, flops: 0, acts: 0 });
  assert.equal(complexity(d, { numClasses: 10 }).params, trunk.params + 440 * 10 + 10);
});

test("FLOPs and activations follow the input size; non-square and odd sizes use pycls's output-size rule", () => {
  const d = modelDesign("regnet_x_200mf");
  const c224 = complexity(d);
  const c448 = complexity(d, { imageSize: 448 });
  assert.equal(c448.params, c224.params);
  // Every conv output doubles in each dimension except the head's 1x1: trunk FLOPs and acts scale by exactly 4.
  // (RegNetX has no SE, whose convs run at 1x1 and would not scale.)
  const trunkFlops = (c: typeof c224) => c.flops - c.head.flops;
  const trunkActs = (c: typeof c224) => c.acts - c.head.acts;
  assert.equal(trunkFlops(c448), 4 * trunkFlops(c224));
  assert.equal(trunkActs(c448), 4 * trunkActs(c224));
  assert.deepEqual(complexity(d, { imageSize: [224, 160] }).featureSize, [7, 5]);
  assert.deepEqual(complexity(d, { imageSize: 225 }).featureSize, [8, 8]); // 225 -> 113 -> 57 -> 29 -> 15 -> 8
  assert.throws(() => complexity(d, { imageSize: 0 }), /positive integer for imageSize height but received 0/);
  assert.throws(() => complexity(d, { numClasses: -1 }), /numClasses but received -1/);
});

test("the small-image stem (3x3 stride 1) changes FLOPs and activations, not a RegNet's parameters", () => {
  const d = modelDesign("regnet_y_400mf");
  const big = complexity(d, { imageSize: 224 });
  const small = complexity(d, { imageSize: 32, smallImageStem: true });
  assert.equal(small.params, big.params);
  assert.ok(small.flops < big.flops && small.acts < big.acts);
  assert.deepEqual(small.featureSize, [2, 2]); // 32 -> 32 -> 16 -> 8 -> 4 -> 2
  assert.deepEqual(small.stem, { params: 27 * 32 + 64, flops: 27 * 32 * 32 * 32, acts: 32 * 32 * 32 });
  // The stem output at 112 is 112 either way: a 112px input with the small stem costs what a 224px one does.
  assert.deepEqual(complexity(d, { imageSize: 112, smallImageStem: true }), big);

  // ResNet: 3x3 conv instead of 7x7, and no max-pool. At 56px the stages see what they see at 224px.
  const r = modelDesign("resnet50");
  const rBig = complexity(r);
  const rSmall = complexity(r, { imageSize: 56, smallImageStem: true });
  assert.deepEqual(rSmall.stages, rBig.stages);
  assert.equal(rSmall.stem.params, 3 * 3 * 3 * 64 + 128);
  assert.equal(rBig.stem.params, 7 * 7 * 3 * 64 + 128);
  assert.equal(rBig.stem.acts, 64 * 112 * 112 + 64 * 56 * 56); // conv output + max-pool output
  assert.equal(rSmall.params, rBig.params - (7 * 7 - 3 * 3) * 3 * 64);
});

test("ResNet designs follow torchvision's layout", () => {
  const r18 = modelDesign("resnet18");
  const r50 = modelDesign("ResNet-50");
  assert.equal(r18.family, "resnet");
  assert.equal(r50.family, "resnet");
  if (r18.family !== "resnet" || r50.family !== "resnet") return;
  assert.deepEqual(r18.stages.map((s) => [s.depth, s.width, s.stride]), [[2, 64, 1], [2, 128, 2], [2, 256, 2], [2, 512, 2]]);
  assert.deepEqual(r50.stages.map((s) => [s.depth, s.width, s.bottleneckWidth]), [[3, 256, 64], [4, 512, 128], [6, 1024, 256], [3, 2048, 512]]);
  assert.equal(r18.numFeatures, 512);
  assert.equal(r50.numFeatures, 2048);
  const b = resnetBlocks(r50);
  assert.equal(b.length, 16);
  assert.deepEqual(b.filter((x) => x.projection).map((x) => [x.stage, x.index]), [[1, 1], [2, 1], [3, 1], [4, 1]]);
  assert.deepEqual(resnetBlocks(r18).filter((x) => x.projection).map((x) => x.stage), [2, 3, 4]);
});

// ---------------------------------------------------------------------------------------------------------------
// Names

test("names resolve case-insensitively through torchvision, timm and paper spellings", () => {
  const cases: [string, string][] = [
    ["regnet_y_400mf", "regnet_y_400mf"], ["REGNET_Y_400MF", "regnet_y_400mf"], ["RegNetY-400MF", "regnet_y_400mf"],
    ["regnety_004", "regnet_y_400mf"], ["regnetx_016", "regnet_x_1_6gf"], ["RegNetX-1.6GF", "regnet_x_1_6gf"],
    ["regnety_040", "regnet_y_4gf"], ["RegNetY-4.0GF", "regnet_y_4gf"], ["RegNetY-4GF", "regnet_y_4gf"],
    ["regnety_1280", "seer_regnet_y_128gf"], ["RG-128GF", "seer_regnet_y_128gf"], ["RegNetY-128GF", "regnet_y_128gf"],
    ["regnety_2560", "seer_regnet_y_256gf"], ["RegNetY-256GF", "seer_regnet_y_256gf"], ["rg-256gf", "seer_regnet_y_256gf"],
    ["regnety_640", "seer_regnet_y_64gf"], ["regnet_y_64gf", "seer_regnet_y_64gf"], ["RegNetY-64GF", "seer_regnet_y_64gf"], ["RG-10B", "seer_regnet_10b"],
    ["RG-32GF", "regnet_y_32gf"], ["resnet50", "resnet50"], ["ResNet-18", "resnet18"],
  ];
  for (const [alias, want] of cases) assert.equal(resolveModelName(alias), want, alias);
  assert.equal(listModelNames().length, MODEL_TABLE.length);
  assert.equal(new Set(listModelNames()).size, MODEL_TABLE.length);
});

test("an unknown name is an error listing close matches", () => {
  assert.throws(() => resolveModelName("regnet_y_400gf"), (e: Error) => e instanceof RangeError && /Unknown model 'regnet_y_400gf'\. Did you mean: .*regnet_y_400mf/.test(e.message));
  assert.throws(() => resolveModelName("regnet_y_256gf"), /Did you mean: .*seer_regnet_y_256gf/);
  assert.throws(() => resolveModelName("regnet_y_256gf"), /classy_regnet_y_256gf/);
  assert.throws(() => resolveModelName("resnet_50"), /Did you mean: resnet50/);
  assert.throws(() => resolveModelName("vit_b_16"), /Known models: regnet_x_200mf, .*resnet50/);
  assert.ok(closeModelNames("regnety_0400").includes("regnet_y_400mf"));
});

test("each entry's default rounding: torchvision's for what torchvision ships, pycls's otherwise; overridable", () => {
  for (const e of regnetEntries()) assert.equal(e.rounding, e.inTorchvision ? "torchvision" : "pycls", e.name);
  assert.equal(getModelEntry("regnety_080").name, "regnet_y_8gf");
  assert.deepEqual(stagesOf("regnety_080").map((s) => s.width), [224, 448, 896, 2016]);
  assert.deepEqual(stagesOf("regnety_080", "pycls").map((s) => s.width), [168, 448, 896, 2016]);
  assert.deepEqual(stagesOf("regnety_080", undefined).map((s) => s.width), [224, 448, 896, 2016]); // undefined is dropped
  const d = modelDesign("regnet_y_400mf", { seRatio: 0, w0: 56 });
  assert.equal(d.family === "regnet" && d.seRatio, 0);
  assert.throws(() => modelDesign("regnet_y_400mf", { width: 3 } as never), /Unknown override\(s\) width for regnet_y_400mf/);
  assert.throws(() => modelDesign("resnet50", { rounding: "pycls" }), /resnet50 is a ResNet: overrides rounding do not apply/);
});

// ---------------------------------------------------------------------------------------------------------------
// Live oracle: torchvision 0.14 and ClassyVision's generator

const PYTHON = process.env.SEERKIT_PYTHON ?? "/usr/bin/python3";
const NO_PYTHON = fs.existsSync(PYTHON) ? false : `no oracle interpreter at ${PYTHON} (set SEERKIT_PYTHON)`;

interface OracleBlock { stage: number; index: number; wIn: number; wOut: number; stride: number; bottleneckWidth: number; groups?: number; seWidth?: number; projection: boolean }
interface OracleLayout { depths: number[]; widths: number[]; groupWidths: number[] }
interface OracleOut {
  torchvisionNames: string[];
  models: Record<string, { params: number; stemWidth: number; fcIn: number; blocks: OracleBlock[] }>;
  params: { torchvision: OracleLayout; classy: OracleLayout }[];
}

/** A deterministic PRNG (mulberry32) for the parameter sweep. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type SweepParams = Omit<RegNetParams, "rounding">;

function sweepParams(): SweepParams[] {
  const rand = mulberry32(20200330);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const out: SweepParams[] = regnetEntries().map((e) => ({ ...e.params, bottleneckRatio: e.params.bottleneckRatio ?? 1 }));
  for (let i = 0; i < 1500; i++) {
    const groupWidth = pick([1, 4, 8, 16, 24, 40, 56, 64, 112, 120, 232, 373]);
    out.push({
      depth: 1 + Math.floor(rand() * 30),
      w0: 8 * (1 + Math.floor(rand() * 60)),
      wa: Math.round(rand() * 25000) / 100,
      wm: 1.5 + Math.round(rand() * 150) / 100,
      groupWidth,
      // An odd group width with b != 1 leaves width·b off the group grid (an invalid model in every implementation).
      bottleneckRatio: groupWidth % 2 === 1 && groupWidth > 1 ? 1 : pick([1, 1, 1, 2, 4, 0.5]),
    });
  }
  return out;
}

let oracleCache: { out: OracleOut; sweep: SweepParams[] } | undefined;
function oracle(): { out: OracleOut; sweep: SweepParams[] } {
  if (oracleCache) return oracleCache;
  const sweep = sweepParams();
  const models = MODEL_TABLE.filter((e) => e.inTorchvision).map((e) => e.name);
  const input = JSON.stringify({ models, params: sweep });
  const stdout = execFileSync(PYTHON, [path.join(PACKAGE_ROOT, "tests", "oracle", "regnet_torchvision.py")], { input, encoding: "utf8", maxBuffer: 64 << 20 });
  oracleCache = { out: JSON.parse(stdout) as OracleOut, sweep };
  return oracleCache;
}

test("oracle: the table flags exactly the RegNets and ResNets torchvision 0.14 ships", { skip: NO_PYTHON }, () => {
  const shipped = MODEL_TABLE.filter((e) => e.inTorchvision).map((e) => e.name).sort();
  assert.deepEqual(shipped, [...oracle().out.torchvisionNames].sort());
});

test("oracle: parameter counts and block structure equal torchvision's, model by model", { skip: NO_PYTHON }, () => {
  const { out } = oracle();
  for (const [name, tv] of Object.entries(out.models)) {
    const d = modelDesign(name);
    assert.equal(complexity(d).params, tv.params, `${name} params`);
    assert.equal(d.stemWidth, tv.stemWidth, `${name} stem`);
    assert.equal(d.numFeatures, tv.fcIn, `${name} numFeatures`);
    const ours = d.family === "regnet"
      ? regnetBlocks(d).map(({ stage, index, wIn, wOut, stride, bottleneckWidth, groups, seWidth: se, projection }) => ({ stage, index, wIn, wOut, stride, bottleneckWidth, groups, seWidth: se, projection }))
      : resnetBlocks(d);
    assert.deepEqual(ours, tv.blocks, `${name} blocks`);
  }
});

test("oracle: stage layouts match torchvision BlockParams and ClassyVision over a random parameter sweep", { skip: NO_PYTHON }, () => {
  const { out, sweep } = oracle();
  assert.equal(out.params.length, sweep.length);
  sweep.forEach((p, i) => {
    const ref = out.params[i]!;
    for (const [rounding, want] of [["torchvision", ref.torchvision], ["pycls", ref.classy]] as const) {
      const d = generateRegNet({ ...p, rounding });
      const got = { depths: d.stages.map((s) => s.depth), widths: d.stages.map((s) => s.width), groupWidths: d.stages.map((s) => s.groupWidth) };
      assert.deepEqual(got, want, `${rounding} ${JSON.stringify(p)}`);
    }
  });
});
