// RegNet (and ResNet) designs as plain data: stage depths, widths, groups and strides, with no tensors involved.
//
// Paper: Radosavovic, Kosaraju, Girshick, He, Dollár 2020, "Designing Network Design Spaces" (arXiv 2003.13678),
// §3.3: the quantized linear parameterization
//   u_j = w0 + wa·j                      (j = 0..d-1, continuous per-block widths)
//   s_j = round(ln(u_j / w0) / ln(wm))   (per-block exponent)
//   w_j = round(w0 · wm^s_j / q) · q     (quantized per-block widths; consecutive equal w_j form one stage)
// followed by a per-stage compatibility fix so that the bottleneck width is a multiple of the group width.
//
// Mirrors pycls `pycls/models/regnet.py:generate_regnet` (+ `adjust_ws_gs_comp`), ClassyVision
// `classy_vision/models/regnet.py:RegNetParams.get_expanded_params` (what VISSL and SEER build), timm `regnet.py`,
// and torchvision `torchvision/models/regnet.py:BlockParams.from_init_params` (+ `models/_utils.py:_make_divisible`).
//
// NOTE the two rounding conventions (seer-facts.md §5.1). Every `round` in pycls/ClassyVision/VISSL/timm is
// round-half-to-even (numpy / Python 3); torchvision rounds the bottleneck width with `_make_divisible` (half-up, plus
// "never go below 90%"). They disagree for RegNetX-400MF, X-4.0GF, Y-800MF, Y-4.0GF and Y-8.0GF. JS `Math.round` is
// half-up, so neither convention may use it: see `roundHalfEven` and `makeDivisible` below.
//
// NOTE torchvision also computes the per-block widths in float32 tensors where pycls uses float64 numpy, and the two
// round differently when w0·wm^s/q lands near a .5: w0 = 400, wm = 2.11 gives 105.5 in float64 (-> 106 -> 848) but
// 105.49999 in float32 (-> 105 -> 840). The "torchvision" convention emulates float32 with Math.fround (exact for
// + - * /; log and pow are rounded from float64, where torch may differ by an ulp). The float32 difference changes no
// named model; the tests sweep random parameter sets against torchvision and ClassyVision.
//
// What differs from the originals:
// - newer pycls (2021+) quantizes to lcm(g, b) when b > 1; we follow ClassyVision/VISSL and pycls 2020 (quantize to g),
//   which is identical whenever b = 1 (all RegNetX/Y) or b divides g.

/** Which implementation's rounding to reproduce. */
export type RoundingConvention = "torchvision" | "pycls";

/** The RegNet design-space parameters of one model (pycls `REGNET.*` config keys in comments). */
export interface RegNetParams {
  /** d: total number of blocks (`DEPTH`). */
  depth: number;
  /** w0 > 0, a multiple of q: initial width (`W0`). */
  w0: number;
  /** wa >= 0: slope of the continuous widths (`WA`). */
  wa: number;
  /** wm > 1: width multiplier between stages (`WM`). */
  wm: number;
  /** g: group width of the 3x3 conv (`GROUP_W`); capped per stage at the bottleneck width. */
  groupWidth: number;
  /** b: bottleneck width / block width (`BOT_MUL`); 1 for all RegNetX/Y. Default 1. */
  bottleneckRatio?: number;
  /** SE width / block *input* width (`SE_R`); 0 = no SE (RegNetX), 0.25 for RegNetY. Default 0. */
  seRatio?: number;
  /** Width quantum q. Default 8. */
  q?: number;
  /** Whose rounding to reproduce (see the file header). */
  rounding: RoundingConvention;
  /** Stem output width (`STEM_W`). Default 32. */
  stemWidth?: number;
}

/** One stage: `depth` identical-width blocks; the first has stride `stride`, the rest stride 1. */
export interface RegNetStage {
  /** Number of blocks in the stage. */
  depth: number;
  /** Block output width W_i (after the compatibility fix). */
  width: number;
  /** Group width of the 3x3 conv, g_i = min(g, bottleneck width). */
  groupWidth: number;
  /** Groups of the 3x3 conv = bottleneckWidth / groupWidth. */
  groups: number;
  /** Bottleneck width w_b = round(W_i · b). */
  bottleneckWidth: number;
  /** Stride of the stage's first block. */
  stride: number;
}

/** A RegNet, fully determined: enough to build the modules and to count parameters and FLOPs. */
export interface RegNetDesign {
  readonly family: "regnet";
  /** The inputs, with defaults filled in. */
  readonly params: Readonly<Required<RegNetParams>>;
  readonly rounding: RoundingConvention;
  /** Stem: 3x3 conv 3 -> stemWidth, stride 2 (pycls `SimpleStemIN`). */
  readonly stemWidth: number;
  readonly stages: readonly RegNetStage[];
  /** SE ratio relative to each block's input width; 0 = no SE. */
  readonly seRatio: number;
  readonly bottleneckRatio: number;
  /** Quantized per-block widths w_j before the compatibility fix (pycls `ws_all`). */
  readonly blockWidths: readonly number[];
  /** Per-stage widths before the compatibility fix (where the two conventions can part ways). */
  readonly rawStageWidths: readonly number[];
  /** Width of the trunk output (the last stage's width): what a head or linear probe sees. */
  readonly numFeatures: number;
}

/** One residual bottleneck block, expanded from a design (the order of pycls `s{stage}.b{index}`). */
export interface RegNetBlock {
  /** 1-based stage index (pycls `s1`..`s4`, torchvision `block1`..`block4`). */
  stage: number;
  /** 1-based block index within the stage (pycls `b1`..; torchvision counts from 0). */
  index: number;
  wIn: number;
  wOut: number;
  stride: number;
  bottleneckWidth: number;
  groupWidth: number;
  groups: number;
  /** Squeeze width of the SE module, round(seRatio · wIn) half-to-even; 0 = no SE. */
  seWidth: number;
  /** 1x1 conv + BN shortcut, present when wIn != wOut or stride != 1. */
  projection: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Rounding

/**
 * Round half to even, as Python 3's `round(x)` and numpy's `np.round` do on a double (2.5 -> 2, 3.5 -> 4).
 * `x - floor(x)` is exact in binary floating point, so the tie test is exact.
 */
export function roundHalfEven(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.floor(x);
  const frac = x - f;
  if (frac > 0.5) return f + 1;
  if (frac < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * torchvision `_make_divisible(v, divisor, min_value)`: the nearest multiple of `divisor` (ties up), at least
 * `minValue` (default `divisor`), bumped up one step if rounding down lost more than 10% of `v`.
 */
export function makeDivisible(v: number, divisor: number, minValue: number = divisor): number {
  let newV = Math.max(minValue, Math.floor(Math.trunc(v + divisor / 2) / divisor) * divisor);
  if (newV < 0.9 * v) newV += divisor;
  return newV;
}

/** SE squeeze width as torchvision/pycls/ClassyVision compute it: `int(round(se_ratio * w_in))`. */
export function seWidth(wIn: number, seRatio: number): number {
  return seRatio > 0 ? roundHalfEven(seRatio * wIn) : 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Validation

function expectNumber(name: string, v: unknown, ok: (n: number) => boolean, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) {
    throw new RangeError(`Expected ${what} for ${name} but received ${typeof v === "number" ? v : JSON.stringify(v)}`);
  }
  return v;
}

const isPosInt = (n: number): boolean => Number.isInteger(n) && n > 0;

const ROUNDINGS: readonly RoundingConvention[] = ["torchvision", "pycls"];

// ---------------------------------------------------------------------------------------------------------------
// Generation

/**
 * The quantized linear rule, per block: u_j = w0 + wa·j, s_j = round(ln(u_j/w0) / ln(wm)), w_j = round(w0·wm^s_j / q)·q.
 * Both conventions round half-to-even here (numpy / torch.round); `r` rounds each intermediate to the working
 * precision: identity for pycls's float64 numpy, Math.fround for torchvision's float32 tensors.
 */
function quantizedBlockWidths(depth: number, w0: number, wa: number, wm: number, q: number, r: (x: number) => number): number[] {
  const logWm = r(Math.log(wm));
  const widths: number[] = [];
  for (let j = 0; j < depth; j++) {
    const u = r(r(j * r(wa)) + r(w0)); // torch.arange(d) * w_a + w_0
    const s = roundHalfEven(r(r(Math.log(r(u / r(w0)))) / logWm));
    widths.push(roundHalfEven(r(r(r(w0) * r(Math.pow(r(wm), s))) / q)) * q);
  }
  return widths;
}

/**
 * Generates a RegNet from its design-space parameters, exactly as pycls/ClassyVision (`rounding: "pycls"`) or
 * torchvision (`rounding: "torchvision"`) do. Throws a RangeError naming the parameter on invalid input.
 *
 * "the widths and depths of each stage are determined by a quantized linear function" (paper §3.3).
 */
export function generateRegNet(p: RegNetParams): RegNetDesign {
  const depth = expectNumber("depth", p.depth, isPosInt, "a positive integer");
  const q = expectNumber("q", p.q ?? 8, isPosInt, "a positive integer");
  const w0 = expectNumber("w0", p.w0, (n) => isPosInt(n) && n % q === 0, `a positive multiple of q=${q}`);
  const wa = expectNumber("wa", p.wa, (n) => n >= 0, "a number >= 0");
  const wm = expectNumber("wm", p.wm, (n) => n > 1, "a number > 1");
  const groupWidth = expectNumber("groupWidth", p.groupWidth, isPosInt, "a positive integer");
  const b = expectNumber("bottleneckRatio", p.bottleneckRatio ?? 1, (n) => n > 0, "a number > 0");
  const seRatio = expectNumber("seRatio", p.seRatio ?? 0, (n) => n >= 0, "a number >= 0");
  const stemWidth = expectNumber("stemWidth", p.stemWidth ?? 32, isPosInt, "a positive integer");
  if (!ROUNDINGS.includes(p.rounding)) {
    throw new RangeError(`Expected one of ${ROUNDINGS.join(", ")} for rounding but received ${JSON.stringify(p.rounding)}`);
  }
  const rounding = p.rounding;

  const blockWidths = quantizedBlockWidths(depth, w0, wa, wm, q, rounding === "torchvision" ? Math.fround : (x) => x);

  // Consecutive equal widths form a stage (u_j is non-decreasing, so this equals pycls's np.unique).
  const rawStageWidths: number[] = [];
  const stageDepths: number[] = [];
  for (const w of blockWidths) {
    if (rawStageWidths.length > 0 && rawStageWidths[rawStageWidths.length - 1] === w) {
      stageDepths[stageDepths.length - 1]! += 1;
    } else {
      rawStageWidths.push(w);
      stageDepths.push(1);
    }
  }

  // Compatibility fix: make the bottleneck width a multiple of the (capped) group width.
  const stages: RegNetStage[] = rawStageWidths.map((raw, i) => {
    const wBotRaw = Math.trunc(rounding === "pycls" ? Math.max(1, raw * b) : raw * b);
    const g = Math.min(groupWidth, wBotRaw);
    const wBot =
      rounding === "pycls"
        ? Math.max(g, Math.trunc(roundHalfEven(wBotRaw / g) * g)) // ClassyVision / pycls `quantize_float`
        : makeDivisible(wBotRaw, g); // torchvision `_make_divisible`
    const width = Math.trunc(wBot / b);
    // The block itself recomputes w_b = int(round(w_out * b)) (pycls/torchvision `BottleneckTransform`).
    const bottleneckWidth = roundHalfEven(width * b);
    return { depth: stageDepths[i]!, width, groupWidth: g, groups: Math.floor(bottleneckWidth / g), bottleneckWidth, stride: 2 };
  });

  for (const [i, s] of stages.entries()) {
    if (s.bottleneckWidth % s.groupWidth !== 0) {
      throw new RangeError(
        `RegNet stage ${i + 1}: bottleneck width ${s.bottleneckWidth} is not a multiple of group width ${s.groupWidth} ` +
          `(bottleneckRatio ${b}); choose a bottleneckRatio that keeps width·b integral`,
      );
    }
  }

  return Object.freeze({
    family: "regnet" as const,
    params: Object.freeze({ depth, w0, wa, wm, groupWidth, bottleneckRatio: b, seRatio, q, rounding, stemWidth }),
    rounding,
    stemWidth,
    stages: Object.freeze(stages.map((s) => Object.freeze(s))),
    seRatio,
    bottleneckRatio: b,
    blockWidths: Object.freeze(blockWidths),
    rawStageWidths: Object.freeze(rawStageWidths),
    numFeatures: stages[stages.length - 1]!.width,
  });
}

/** Expands a design into its blocks in forward order: the list a module builder or a complexity counter walks. */
export function regnetBlocks(design: RegNetDesign): RegNetBlock[] {
  const blocks: RegNetBlock[] = [];
  let wIn = design.stemWidth;
  design.stages.forEach((s, si) => {
    for (let i = 0; i < s.depth; i++) {
      const stride = i === 0 ? s.stride : 1;
      blocks.push({
        stage: si + 1,
        index: i + 1,
        wIn,
        wOut: s.width,
        stride,
        bottleneckWidth: s.bottleneckWidth,
        groupWidth: s.groupWidth,
        groups: s.groups,
        seWidth: seWidth(wIn, design.seRatio),
        projection: wIn !== s.width || stride !== 1,
      });
      wIn = s.width;
    }
  });
  return blocks;
}

// ---------------------------------------------------------------------------------------------------------------
// ResNet (He et al. 2016), torchvision layout: for baselines and comparisons.
//
// torchvision `torchvision/models/resnet.py`: stem 7x7/2 conv 3->64 + BN + ReLU + 3x3/2 max-pool; four stages of
// `BasicBlock` (expansion 1) or `Bottleneck` (expansion 4, stride on the 3x3 conv: "ResNet v1.5"); stage strides
// 1, 2, 2, 2; 1x1 conv + BN downsample when the stride or width changes; head avg-pool + FC(512·expansion, classes).

export type ResNetBlockType = "basic" | "bottleneck";

export interface ResNetStage {
  /** Number of blocks (torchvision `layers[i]`). */
  depth: number;
  /** Block output width = planes · expansion. */
  width: number;
  /** Inner width, torchvision `planes` (64, 128, 256, 512). */
  bottleneckWidth: number;
  /** Stride of the stage's first block. */
  stride: number;
}

export interface ResNetDesign {
  readonly family: "resnet";
  readonly block: ResNetBlockType;
  /** 1 for BasicBlock, 4 for Bottleneck. */
  readonly expansion: number;
  /** Stem output width (64). */
  readonly stemWidth: number;
  readonly stages: readonly ResNetStage[];
  readonly numFeatures: number;
}

export interface ResNetBlock {
  stage: number;
  index: number;
  wIn: number;
  wOut: number;
  /** Inner width (planes). */
  bottleneckWidth: number;
  stride: number;
  /** torchvision `downsample`: 1x1 conv (stride) + BN. */
  projection: boolean;
}

/** A torchvision ResNet: `layers` blocks per stage, `planes` 64·2^i. */
export function generateResNet(block: ResNetBlockType, layers: readonly number[]): ResNetDesign {
  if (block !== "basic" && block !== "bottleneck") {
    throw new RangeError(`Expected "basic" or "bottleneck" for block but received ${JSON.stringify(block)}`);
  }
  if (layers.length === 0) throw new RangeError("Expected at least one stage in layers but received []");
  layers.forEach((n, i) => expectNumber(`layers[${i}]`, n, isPosInt, "a positive integer"));
  const expansion = block === "basic" ? 1 : 4;
  const stages = layers.map((depth, i) => {
    const planes = 64 * 2 ** i;
    return Object.freeze({ depth, width: planes * expansion, bottleneckWidth: planes, stride: i === 0 ? 1 : 2 });
  });
  return Object.freeze({
    family: "resnet" as const,
    block,
    expansion,
    stemWidth: 64,
    stages: Object.freeze(stages),
    numFeatures: stages[stages.length - 1]!.width,
  });
}

/** Expands a ResNet design into its blocks in forward order (torchvision `layer{stage}.{index - 1}`). */
export function resnetBlocks(design: ResNetDesign): ResNetBlock[] {
  const blocks: ResNetBlock[] = [];
  let wIn = design.stemWidth;
  design.stages.forEach((s, si) => {
    for (let i = 0; i < s.depth; i++) {
      const stride = i === 0 ? s.stride : 1;
      blocks.push({ stage: si + 1, index: i + 1, wIn, wOut: s.width, bottleneckWidth: s.bottleneckWidth, stride, projection: wIn !== s.width || stride !== 1 });
      wIn = s.width;
    }
  });
  return blocks;
}

/** Any backbone design this package can build or count. */
export type ModelDesign = RegNetDesign | ResNetDesign;
