// The named model table: RegNetX/Y (pycls "dds baselines"), the large SEER RegNetYs, and two torchvision ResNets.
//
// Sources (see /work/shared/docs/seer-facts.md §5.3):
// - RegNetX/Y 200MF..32GF: pycls `configs/dds_baselines/regnet{x,y}/*.yaml` (Radosavovic et al. 2020, "Designing
//   Network Design Spaces"); torchvision `torchvision/models/regnet.py` and timm `regnet.py` use the same values.
// - RegNetY-128GF: torchvision `regnet_y_128gf` = ClassyVision `regnet_y_128gf` = timm `regnety_1280` (SEER 2021).
// - RegNetY-64GF (new and old), ClassyVision's RegNetY-256GF: ClassyVision `classy_vision/models/regnet.py`.
// - SEER RG-256GF: VISSL `regnet256Gf_1` = timm `regnety_2560` (Goyal et al. 2021, "Self-supervised Pretraining of
//   Visual Features in the Wild"); SEER RG-10B: VISSL `configs/config/pretrain/seer/models/regnet10B.yaml`
//   (Goyal et al. 2022, arXiv 2202.08360).
// - ResNet-18/50: torchvision `torchvision/models/resnet.py` (He et al. 2016).
//
// Names: torchvision's spelling is canonical (`regnet_y_400mf`, `regnet_x_1_6gf`, `resnet50`), extended in the same
// style to models torchvision does not ship (`regnet_x_4gf`, SEER ones prefixed `seer_`). timm's names
// (`regnety_040`) and the papers' (`RegNetY-4.0GF`, SEER's `RG-256GF`) are aliases, all matched case-insensitively.
//
// Rounding: each entry carries the convention it is built with by default (regnet_design.ts header): torchvision's
// for the 15 RegNets torchvision ships (so torchvision weights load), pycls's for everything else (pycls, VISSL,
// SEER, timm). NOTE an alias resolves to the canonical entry *with that entry's default*: timm's `regnetx_004`,
// `regnety_008` and `regnety_080` are pycls-rounded in timm itself, so to reproduce timm's (or pycls's) versions of
// those three pass `{ rounding: "pycls" }` (timm's torchvision-rounded Y-8GF is `regnety_080_tv`).

import {
  type ModelDesign,
  type RegNetParams,
  type ResNetBlockType,
  type RoundingConvention,
  generateRegNet,
  generateResNet,
} from "./regnet_design";

/** A RegNet entry: design-space parameters plus the default rounding. */
export interface RegNetEntry {
  readonly family: "regnet";
  /** Canonical name (torchvision style). */
  readonly name: string;
  /** Other accepted names (timm, paper, SEER README); matched case-insensitively like the name. */
  readonly aliases: readonly string[];
  /** Design-space parameters, without the rounding convention. */
  readonly params: Readonly<Omit<RegNetParams, "rounding">>;
  /** Default rounding convention (overridable in `modelDesign`). */
  readonly rounding: RoundingConvention;
  /** Whether torchvision 0.14 ships a model of this name (and weights built with torchvision rounding). */
  readonly inTorchvision: boolean;
  /** Where the parameters come from. */
  readonly source: string;
  /** Caveats worth reading before use. */
  readonly note?: string;
}

/** A ResNet entry in torchvision's layout. */
export interface ResNetEntry {
  readonly family: "resnet";
  readonly name: string;
  readonly aliases: readonly string[];
  readonly block: ResNetBlockType;
  /** Blocks per stage (torchvision `layers`). */
  readonly layers: readonly number[];
  readonly inTorchvision: boolean;
  readonly source: string;
  readonly note?: string;
}

export type ModelEntry = RegNetEntry | ResNetEntry;

const PYCLS_X = "pycls configs/dds_baselines/regnetx";
const PYCLS_Y = "pycls configs/dds_baselines/regnety";

/** RegNetX (no SE) from pycls dds_baselines: name, timm alias, paper aliases, d, w0, wa, wm, g. */
function regnetX(name: string, aliases: string[], depth: number, w0: number, wa: number, wm: number, groupWidth: number, inTorchvision: boolean): RegNetEntry {
  return {
    family: "regnet", name, aliases, params: { depth, w0, wa, wm, groupWidth, seRatio: 0 },
    rounding: inTorchvision ? "torchvision" : "pycls", inTorchvision, source: PYCLS_X + (inTorchvision ? "; torchvision" : ""),
  };
}

/** RegNetY (SE 0.25) from pycls dds_baselines. */
function regnetY(name: string, aliases: string[], depth: number, w0: number, wa: number, wm: number, groupWidth: number, inTorchvision: boolean): RegNetEntry {
  return {
    family: "regnet", name, aliases, params: { depth, w0, wa, wm, groupWidth, seRatio: 0.25 },
    rounding: inTorchvision ? "torchvision" : "pycls", inTorchvision, source: PYCLS_Y + (inTorchvision ? "; torchvision" : ""),
  };
}

/** A large RegNetY outside pycls's baselines (SE 0.25, b = 1, stem 32), pycls rounding by default. */
function largeY(name: string, aliases: string[], depth: number, w0: number, wa: number, wm: number, groupWidth: number, source: string, note?: string): RegNetEntry {
  return {
    family: "regnet", name, aliases, params: { depth, w0, wa, wm, groupWidth, seRatio: 0.25 },
    rounding: "pycls", inTorchvision: false, source, ...(note ? { note } : {}),
  };
}

/** Every named model. One line per model: name, aliases, d, w0, wa, wm, g, torchvision ships it. */
export const MODEL_TABLE: readonly ModelEntry[] = Object.freeze([
  regnetX("regnet_x_200mf", ["regnetx_002", "RegNetX-200MF"], 13, 24, 36.44, 2.49, 8, false),
  regnetX("regnet_x_400mf", ["regnetx_004", "RegNetX-400MF"], 22, 24, 24.48, 2.54, 16, true),
  regnetX("regnet_x_600mf", ["regnetx_006", "RegNetX-600MF"], 16, 48, 36.97, 2.24, 24, false),
  regnetX("regnet_x_800mf", ["regnetx_008", "RegNetX-800MF"], 16, 56, 35.73, 2.28, 16, true),
  regnetX("regnet_x_1_6gf", ["regnetx_016", "RegNetX-1.6GF"], 18, 80, 34.01, 2.25, 24, true),
  regnetX("regnet_x_3_2gf", ["regnetx_032", "RegNetX-3.2GF"], 25, 88, 26.31, 2.25, 48, true),
  regnetX("regnet_x_4gf", ["regnetx_040", "RegNetX-4.0GF", "RegNetX-4GF"], 23, 96, 38.65, 2.43, 40, false),
  regnetX("regnet_x_6_4gf", ["regnetx_064", "RegNetX-6.4GF"], 17, 184, 60.83, 2.07, 56, false),
  regnetX("regnet_x_8gf", ["regnetx_080", "RegNetX-8.0GF", "RegNetX-8GF"], 23, 80, 49.56, 2.88, 120, true),
  regnetX("regnet_x_12gf", ["regnetx_120", "RegNetX-12GF"], 19, 168, 73.36, 2.37, 112, false),
  regnetX("regnet_x_16gf", ["regnetx_160", "RegNetX-16GF"], 22, 216, 55.59, 2.1, 128, true),
  regnetX("regnet_x_32gf", ["regnetx_320", "RegNetX-32GF"], 23, 320, 69.86, 2.0, 168, true),

  regnetY("regnet_y_200mf", ["regnety_002", "RegNetY-200MF"], 13, 24, 36.44, 2.49, 8, false),
  regnetY("regnet_y_400mf", ["regnety_004", "RegNetY-400MF"], 16, 48, 27.89, 2.09, 8, true),
  regnetY("regnet_y_600mf", ["regnety_006", "RegNetY-600MF"], 15, 48, 32.54, 2.32, 16, false),
  regnetY("regnet_y_800mf", ["regnety_008", "RegNetY-800MF"], 14, 56, 38.84, 2.4, 16, true),
  regnetY("regnet_y_1_6gf", ["regnety_016", "RegNetY-1.6GF"], 27, 48, 20.71, 2.65, 24, true),
  regnetY("regnet_y_3_2gf", ["regnety_032", "RegNetY-3.2GF"], 21, 80, 42.63, 2.66, 24, true),
  regnetY("regnet_y_4gf", ["regnety_040", "RegNetY-4.0GF", "RegNetY-4GF"], 22, 96, 31.41, 2.24, 64, false),
  regnetY("regnet_y_6_4gf", ["regnety_064", "RegNetY-6.4GF"], 25, 112, 33.22, 2.27, 72, false),
  regnetY("regnet_y_8gf", ["regnety_080", "RegNetY-8.0GF", "RegNetY-8GF"], 17, 192, 76.82, 2.19, 56, true),
  regnetY("regnet_y_12gf", ["regnety_120", "RegNetY-12GF"], 19, 168, 73.36, 2.37, 112, false),
  regnetY("regnet_y_16gf", ["regnety_160", "RegNetY-16GF"], 18, 200, 106.23, 2.48, 112, true),
  // SEER's RG-32GF is this model (both conventions give the same widths).
  regnetY("regnet_y_32gf", ["regnety_320", "RegNetY-32GF", "RG-32GF"], 20, 232, 115.89, 2.53, 232, true),

  {
    family: "regnet", name: "regnet_y_128gf", aliases: ["RegNetY-128GF"],
    params: { depth: 27, w0: 456, wa: 160.83, wm: 2.52, groupWidth: 264, seRatio: 0.25 },
    rounding: "torchvision", inTorchvision: true, source: "torchvision regnet_y_128gf; ClassyVision regnet_y_128gf",
    note: "Same architecture as seer_regnet_y_128gf. SEER's paper text calls these widths (528, 1056, 2904, 7392) 'RegNetY-256GF' (seer-facts.md §1.5).",
  },
  largeY("seer_regnet_y_64gf", ["regnety_640", "regnet_y_64gf", "RegNetY-64GF", "RG-64GF"], 20, 352, 147.48, 2.4, 328,
    "ClassyVision regnet_y_64gf after commit 730680d; VISSL regnet64Gf_3; timm regnety_640",
    "Which 64GF definition SEER's released RG-64GF used is unverified: VISSL's eval configs point to this one (4920 wide); the README's 250M matches seer_regnet_y_64gf_old."),
  largeY("seer_regnet_y_64gf_old", [], 20, 368, 102.79, 2.05, 496,
    "ClassyVision regnet_y_64gf before commit 730680d ('Redefine RegNetY 64GF to better performing model')"),
  largeY("seer_regnet_y_128gf", ["regnety_1280", "RG-128GF"], 27, 456, 160.83, 2.52, 264,
    "VISSL SEER RG-128GF (ClassyVision regnet_y_128gf); timm regnety_1280"),
  largeY("seer_regnet_y_256gf", ["regnety_2560", "RegNetY-256GF", "RG-256GF"], 27, 640, 230.83, 2.53, 373,
    "VISSL regnet256Gf_1; timm regnety_2560",
    "NOT ClassyVision's regnet_y_256gf (that is classy_regnet_y_256gf)."),
  largeY("classy_regnet_y_256gf", [], 27, 640, 124.47, 2.04, 848,
    "ClassyVision regnet_y_256gf",
    "Not the SEER model: SEER's RegNetY-256GF is seer_regnet_y_256gf."),
  largeY("seer_regnet_10b", ["RG-10B", "RegNet-10B"], 27, 1744, 620.83, 2.52, 1010,
    "VISSL configs/config/pretrain/seer/models/regnet10B.yaml (SEER 2022)",
    "Definition only: about 9.3e9 trunk parameters, needs FSDP across several GPUs."),

  { family: "resnet", name: "resnet18", aliases: ["ResNet-18"], block: "basic", layers: [2, 2, 2, 2], inTorchvision: true, source: "torchvision resnet18" },
  { family: "resnet", name: "resnet50", aliases: ["ResNet-50"], block: "bottleneck", layers: [3, 4, 6, 3], inTorchvision: true, source: "torchvision resnet50 (v1.5: stride on the 3x3 conv)" },
] satisfies ModelEntry[]);

// ---------------------------------------------------------------------------------------------------------------
// Name resolution

const BY_KEY: ReadonlyMap<string, ModelEntry> = (() => {
  const m = new Map<string, ModelEntry>();
  for (const e of MODEL_TABLE) {
    for (const n of [e.name, ...e.aliases]) {
      const key = n.toLowerCase();
      const prev = m.get(key);
      if (prev) throw new Error(`model table: '${n}' names both ${prev.name} and ${e.name}`);
      m.set(key, e);
    }
  }
  return m;
})();

/** Edit distance between two strings (insertions, deletions, substitutions). */
function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur.push(Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** Up to `max` canonical names whose name or an alias is close to `name` (edit distance, or containment). */
export function closeModelNames(name: string, max = 5): string[] {
  const key = name.toLowerCase();
  const squash = (s: string): string => s.toLowerCase().replace(/[-_. ]/g, "");
  const scored = new Map<string, number>();
  for (const e of MODEL_TABLE) {
    for (const n of [e.name, ...e.aliases]) {
      const lower = n.toLowerCase();
      let d = Math.min(levenshtein(key, lower), levenshtein(squash(name), squash(n)));
      if (lower.includes(key) || key.includes(lower)) d = Math.min(d, 1);
      if (d <= Math.max(2, Math.floor(key.length / 4))) scored.set(e.name, Math.min(scored.get(e.name) ?? Infinity, d));
    }
  }
  return [...scored.entries()].sort((x, y) => x[1] - y[1] || x[0].localeCompare(y[0])).slice(0, max).map(([n]) => n);
}

/** The canonical name for a name or alias, matched case-insensitively; an unknown name throws listing close matches. */
export function resolveModelName(name: string): string {
  return getModelEntry(name).name;
}

/** The table entry for a name or alias (case-insensitive). */
export function getModelEntry(name: string): ModelEntry {
  const e = BY_KEY.get(name.toLowerCase());
  if (e) return e;
  const close = closeModelNames(name);
  const hint = close.length > 0 ? ` Did you mean: ${close.join(", ")}?` : "";
  throw new RangeError(`Unknown model '${name}'.${hint} Known models: ${listModelNames().join(", ")}`);
}

/** Canonical names in table order. */
export function listModelNames(): string[] {
  return MODEL_TABLE.map((e) => e.name);
}

// ---------------------------------------------------------------------------------------------------------------
// Designs from names

/** Per-call changes to a RegNet entry; keys left undefined keep the entry's value. */
export type RegNetOverrides = Partial<RegNetParams>;

const OVERRIDE_KEYS: readonly (keyof RegNetParams)[] = ["depth", "w0", "wa", "wm", "groupWidth", "bottleneckRatio", "seRatio", "q", "rounding", "stemWidth"];

/**
 * The design of a named model. For RegNets, `overrides` replaces any design parameter, most often `rounding`;
 * undefined values are dropped. Unknown keys, or any override on a ResNet, are errors.
 */
export function modelDesign(name: string, overrides: RegNetOverrides = {}): ModelDesign {
  const e = getModelEntry(name);
  const given = Object.entries(overrides).filter(([, v]) => v !== undefined);
  const unknown = given.filter(([k]) => !(OVERRIDE_KEYS as readonly string[]).includes(k)).map(([k]) => k);
  if (unknown.length > 0) throw new RangeError(`Unknown override(s) ${unknown.join(", ")} for ${e.name}; expected some of ${OVERRIDE_KEYS.join(", ")}`);
  if (e.family === "resnet") {
    if (given.length > 0) throw new RangeError(`${e.name} is a ResNet: overrides ${given.map(([k]) => k).join(", ")} do not apply`);
    return generateResNet(e.block, e.layers);
  }
  return generateRegNet({ ...e.params, rounding: e.rounding, ...Object.fromEntries(given) });
}
