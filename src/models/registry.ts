// createModel(name, options) and the model list behind `seer models`.
//
// Names resolve through registry_table.ts: torchvision's spelling is canonical (`regnet_y_400mf`, `resnet50`), timm's
// and the papers' are aliases (`regnety_004`, `RegNetY-400MF`, `RG-128GF`), case-insensitive. Options mix the
// backbone's construction options with design overrides, as timm's `create_model(name, **kwargs)` (timm
// `_factory.py`) and pycls's config overrides; undefined values are dropped, unknown keys are errors.
//
// Parameter and FLOP counts come from complexity.ts (pycls's counting rules), at 224×224 with a 1000-class head
// unless told otherwise; for the torchvision models the parameter count equals torchvision's `num_params`.
import { complexity } from "./complexity";
import { type BackboneOptions, resolveBackboneOptions } from "./blocks";
import { RegNet } from "./regnet";
import { type ModelDesign, type RoundingConvention } from "./regnet_design";
import { MODEL_TABLE, type RegNetOverrides, modelDesign } from "./registry_table";
import { ResNet } from "./resnet";

/** Any backbone createModel builds. */
export type BackboneModel = RegNet | ResNet;

/**
 * Options of createModel: the backbone's (numClasses, smallImageStem, zeroInitLastBn) and, for RegNets, any design
 * parameter (depth, w0, wa, wm, groupWidth, bottleneckRatio, seRatio, q, rounding, stemWidth).
 */
export interface CreateModelOptions extends BackboneOptions, RegNetOverrides {}

/** Splits createModel options into backbone options and design overrides (undefined values dropped). */
function splitOptions(o: CreateModelOptions): { backbone: BackboneOptions; overrides: RegNetOverrides } {
  const { numClasses, smallImageStem, zeroInitLastBn, ...overrides } = o;
  const backbone: BackboneOptions = {};
  if (numClasses !== undefined) backbone.numClasses = numClasses;
  if (smallImageStem !== undefined) backbone.smallImageStem = smallImageStem;
  if (zeroInitLastBn !== undefined) backbone.zeroInitLastBn = zeroInitLastBn;
  return { backbone, overrides };
}

/** Builds a backbone from a design (what createModel does after resolving the name). */
export function createModelFromDesign(design: ModelDesign, options: BackboneOptions = {}): BackboneModel {
  return design.family === "regnet" ? new RegNet(design, options) : new ResNet(design, options);
}

/**
 * Builds a named model, randomly initialized as torchvision initializes it (see regnet.ts / resnet.ts).
 * `createModel("regnet_y_400mf")`, `createModel("RegNetY-32GF", { numClasses: 0 })`,
 * `createModel("regnetx_004", { rounding: "pycls" })`, `createModel("resnet18", { smallImageStem: true, numClasses: 10 })`.
 * The caller owns the model: `model.dispose()` (or `using`) frees its parameters.
 */
export function createModel(name: string, options: CreateModelOptions = {}): BackboneModel {
  const { backbone, overrides } = splitOptions(options);
  resolveBackboneOptions(backbone); // argument errors before any allocation
  return createModelFromDesign(modelDesign(name, overrides), backbone);
}

/**
 * The state-dict (key, shape) pairs createModel(name, options) would have, in order, computed without building the
 * model (regnet_y_128gf's 645M parameters included).
 */
export function modelStateShapes(name: string, options: CreateModelOptions = {}): [string, number[]][] {
  const { backbone, overrides } = splitOptions(options);
  const design = modelDesign(name, overrides);
  return design.family === "regnet" ? RegNet.stateShapes(design, backbone) : ResNet.stateShapes(design, backbone);
}

// ---------------------------------------------------------------------------------------------------------------
// `seer models`

/** One row of `seer models [--json]`. */
export interface ModelRow {
  /** Canonical (torchvision-style) name. */
  name: string;
  family: "regnet" | "resnet";
  /** Other accepted names. */
  aliases: string[];
  /** Parameters with the head (numClasses classes; 0 = trunk only). */
  params: number;
  /** Multiply-adds of one image at imageSize (pycls counting). */
  flops: number;
  /** Activations (output elements of convs, FCs and pools). */
  acts: number;
  /** Width of the pooled features. */
  numFeatures: number;
  /** Stage depths and widths. */
  depths: number[];
  widths: number[];
  /** RegNets: the default rounding convention. */
  rounding?: RoundingConvention;
  /** Whether torchvision 0.14 ships this model. */
  inTorchvision: boolean;
  source: string;
  note?: string;
  /** The input size and head the counts are for. */
  imageSize: number;
  numClasses: number;
}

/** Every named model with its complexity (default: 224×224 input, 1000-class head), in table order. */
export function listModels(o: { imageSize?: number; numClasses?: number } = {}): ModelRow[] {
  const imageSize = o.imageSize ?? 224;
  const numClasses = o.numClasses ?? 1000;
  return MODEL_TABLE.map((e) => {
    const design = modelDesign(e.name);
    const cx = complexity(design, { imageSize, numClasses });
    const row: ModelRow = {
      name: e.name,
      family: e.family,
      aliases: [...e.aliases],
      params: cx.params,
      flops: cx.flops,
      acts: cx.acts,
      numFeatures: design.numFeatures,
      depths: design.stages.map((s) => s.depth),
      widths: design.stages.map((s) => s.width),
      inTorchvision: e.inTorchvision,
      source: e.source,
      imageSize,
      numClasses,
    };
    if (e.family === "regnet") row.rounding = e.rounding;
    if (e.note !== undefined) row.note = e.note;
    return row;
  });
}

/** 4_344_144 -> "4.34M", 9_323_934_872 -> "9.32B". */
function humanCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** A fixed-width text table of listModels() rows (what `seer models` prints). */
export function formatModelTable(rows: readonly ModelRow[]): string {
  const head = ["name", "params", "GFLOPs", "features", "depths", "widths", "tv", "aliases"];
  const body = rows.map((r) => [
    r.name,
    humanCount(r.params),
    (r.flops / 1e9).toFixed(2),
    String(r.numFeatures),
    r.depths.join(","),
    r.widths.join(","),
    r.inTorchvision ? "yes" : "",
    r.aliases.join(", "),
  ]);
  const numeric = new Set([1, 2, 3]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd();
  const first = rows[0];
  const caption = first ? `${rows.length} models; params with a ${first.numClasses}-class head, FLOPs (multiply-adds) at ${first.imageSize}x${first.imageSize}` : "no models";
  return [caption, line(head), ...body.map(line)].join("\n");
}

