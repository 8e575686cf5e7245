// State-dict key conventions for RegNets and ResNets, so checkpoints from timm, VISSL (SEER) and ClassyVision load
// into our torchvision-named modules unchanged:
//
//   const sd = mapStateDict(loadSafetensors(file));          // convention detected from the keys
//   model.loadStateDict(sd);                                   // same tensors, renamed (no copies)
//
// Each key is parsed into its place in the network (stem conv, stage 2 block 0's SE fc1 bias, ...), then rendered in
// the target convention. The conventions, with what each was verified against:
//
// torchvision (ours; torchvision 0.14 `models/regnet.py`, `models/resnet.py`, checked key by key against the live
//   library in tests/models.test.ts):
//     stem.0.weight  stem.1.*  trunk_output.block2.block2-0.proj.{0,1}.*  ...f.a.{0,1}.*  f.b.{0,1}.*
//     f.se.fc1.{weight,bias}  f.se.fc2.*  f.c.{0,1}.*  fc.*
//     ResNet: conv1.weight  bn1.*  layer1.0.conv1.weight  layer2.0.downsample.{0,1}.*  fc.*
// timm (read in timm `models/regnet.py`: `RegNet`, `RegStage` ("b{i+1}"), `Bottleneck` (conv1/conv2/conv3 as
//   ConvNormAct with .conv/.bn, `se` SEModule fc1/fc2, `downsample` ConvNormAct), `ClassifierHead` (head.fc), and
//   its `_filter_fn`, which renames torchvision and VISSL/ClassyVision checkpoints to timm's names exactly as here):
//     stem.conv.weight  stem.bn.*  s2.b1.downsample.{conv,bn}.*  s2.b1.conv1.{conv,bn}.*  conv2.*  conv3.*
//     s2.b1.se.fc1.*  s2.b1.se.fc2.*  head.fc.*
//     ResNet: timm `models/resnet.py` uses torchvision's names (conv1, bn1, layer1.0.conv1, downsample.0/1, fc).
// ClassyVision (read in `classy_vision/models/anynet.py` and `squeeze_and_excitation_layer.py`): `SimpleStemIN`
//   wraps an nn.Sequential named `stem`; `ResBottleneckBlock` has a bare conv `proj` plus a BN `bn`; the
//   transform ends in a bare conv `c` plus `final_bn`; SE is `excitation` = Sequential(conv, act, conv, sigmoid):
//     stem.stem.{0,1}.*  trunk_output.block2.block2-0.proj.weight  ...block2-0.bn.*  f.a.{0,1}.*  f.b.{0,1}.*
//     f.se.excitation.{0,2}.*  f.c.weight  f.final_bn.*      (classification heads live outside the trunk: `fc.*`
//     is left as is)
// VISSL / SEER (read in `vissl/models/trunks/regnet.py` and `regnet_fsdp.py`): the ClassyVision RegNet re-hung in
//   `_feature_blocks` = {conv1: stem, res2..res5: trunk_output.block1..block4}:
//     _feature_blocks.conv1.stem.{0,1}.*  _feature_blocks.res3.block2-0.f.a.0.weight  ...
//   `regnet_v2`/FSDP trunks (SEER 10B) add a `block{s}-part{g}` level, which parses too. A VISSL linear-eval head is
//   `heads.0.clf.0.*` (timm's `_filter_fn` maps `0.clf.0` to `head.fc`). ResNet trunks (`resnext.py`) hang
//   torchvision's conv1, bn1, layer1..4 in `_feature_blocks`.
//   A full VISSL checkpoint nests this under classy_state_dict.base_model.model.{trunk,heads}; flattened with a
//   `trunk.` prefix it parses too. A leading `module.` (DistributedDataParallel) on every key is dropped.
//
// NOTE weights converted from pycls by timm had their first conv flipped from BGR to RGB (timm regnet.py header);
// VISSL trunks can take BGR input (`INPUT_TYPE`). Renaming does not touch channel order.

/** A key-naming convention. */
export type WeightConvention = "torchvision" | "timm" | "vissl" | "classy";
export const WEIGHT_CONVENTIONS: readonly WeightConvention[] = ["torchvision", "timm", "vissl", "classy"];

export type BackboneFamily = "regnet" | "resnet";

/** Where a tensor sits in a backbone, independent of naming. `leaf` is the tensor's own name (weight, running_var, ...). */
type Place =
  | { kind: "stem"; layer: "conv" | "bn"; leaf: string }
  /** RegNet block `index` (0-based) of stage `stage` (1-based): the conv or BN of proj / a / b / c. */
  | { kind: "block"; stage: number; index: number; unit: "proj" | "a" | "b" | "c"; layer: "conv" | "bn"; leaf: string }
  | { kind: "se"; stage: number; index: number; fc: 1 | 2; leaf: string }
  /** A ResNet trunk tensor, by its torchvision path (conv1.weight, layer1.0.bn2.bias, ...). */
  | { kind: "resnet"; path: string }
  | { kind: "head"; leaf: string };

const TORCHVISION_UNIT: Record<"proj" | "a" | "b" | "c", string> = { proj: "proj", a: "f.a", b: "f.b", c: "f.c" };
const TIMM_UNIT: Record<"proj" | "a" | "b" | "c", string> = { proj: "downsample", a: "conv1", b: "conv2", c: "conv3" };

const RESNET_PATH = /^(conv1\.weight|bn1\.[a-z_]+|layer\d+\.\d+\.(?:conv\d|bn\d|downsample\.[01])\.[a-z_]+)$/;

// ---------------------------------------------------------------------------------------------------------------
// Parsing: key -> place

function parseTorchvision(key: string, family: BackboneFamily): Place | undefined {
  let m = /^stem\.([01])\.(.+)$/.exec(key);
  if (m) return { kind: "stem", layer: m[1] === "0" ? "conv" : "bn", leaf: m[2]! };
  m = /^trunk_output\.block(\d+)\.block(\d+)-(\d+)\.(proj|f\.a|f\.b|f\.c)\.([01])\.(.+)$/.exec(key);
  if (m && m[1] === m[2]) {
    const unit = ({ proj: "proj", "f.a": "a", "f.b": "b", "f.c": "c" } as const)[m[4] as "proj" | "f.a" | "f.b" | "f.c"];
    return { kind: "block", stage: Number(m[1]), index: Number(m[3]), unit, layer: m[5] === "0" ? "conv" : "bn", leaf: m[6]! };
  }
  m = /^trunk_output\.block(\d+)\.block(\d+)-(\d+)\.f\.se\.fc([12])\.(.+)$/.exec(key);
  if (m && m[1] === m[2]) return { kind: "se", stage: Number(m[1]), index: Number(m[3]), fc: m[4] === "1" ? 1 : 2, leaf: m[5]! };
  if (family === "resnet" && RESNET_PATH.test(key)) return { kind: "resnet", path: key };
  m = /^fc\.(.+)$/.exec(key);
  if (m) return { kind: "head", leaf: m[1]! };
  return undefined;
}

function parseTimm(key: string, family: BackboneFamily): Place | undefined {
  if (family === "resnet") return parseTorchvision(key, family); // timm's ResNet names are torchvision's
  let m = /^stem\.(conv|bn)\.(.+)$/.exec(key);
  if (m) return { kind: "stem", layer: m[1] as "conv" | "bn", leaf: m[2]! };
  m = /^s(\d+)\.b(\d+)\.(downsample|conv1|conv2|conv3)\.(conv|bn)\.(.+)$/.exec(key);
  if (m && Number(m[2]) >= 1) {
    const unit = ({ downsample: "proj", conv1: "a", conv2: "b", conv3: "c" } as const)[m[3] as "downsample" | "conv1" | "conv2" | "conv3"];
    return { kind: "block", stage: Number(m[1]), index: Number(m[2]) - 1, unit, layer: m[4] as "conv" | "bn", leaf: m[5]! };
  }
  m = /^s(\d+)\.b(\d+)\.se\.fc([12])\.(.+)$/.exec(key);
  if (m && Number(m[2]) >= 1) return { kind: "se", stage: Number(m[1]), index: Number(m[2]) - 1, fc: m[3] === "1" ? 1 : 2, leaf: m[4]! };
  m = /^head\.fc\.(.+)$/.exec(key);
  if (m) return { kind: "head", leaf: m[1]! };
  return undefined;
}

/** The inside of a ClassyVision `ResBottleneckBlock` (shared by ClassyVision and VISSL). */
function parseClassyBlock(stage: number, index: number, rest: string): Place | undefined {
  let m = /^proj\.(.+)$/.exec(rest);
  if (m) return { kind: "block", stage, index, unit: "proj", layer: "conv", leaf: m[1]! };
  m = /^bn\.(.+)$/.exec(rest);
  if (m) return { kind: "block", stage, index, unit: "proj", layer: "bn", leaf: m[1]! };
  m = /^f\.(a|b)\.([01])\.(.+)$/.exec(rest);
  if (m) return { kind: "block", stage, index, unit: m[1] as "a" | "b", layer: m[2] === "0" ? "conv" : "bn", leaf: m[3]! };
  m = /^f\.c\.(.+)$/.exec(rest);
  if (m) return { kind: "block", stage, index, unit: "c", layer: "conv", leaf: m[1]! };
  m = /^f\.final_bn\.(.+)$/.exec(rest);
  if (m) return { kind: "block", stage, index, unit: "c", layer: "bn", leaf: m[1]! };
  m = /^f\.se\.excitation\.([02])\.(.+)$/.exec(rest);
  if (m) return { kind: "se", stage, index, fc: m[1] === "0" ? 1 : 2, leaf: m[2]! };
  return undefined;
}

function parseClassy(key: string, family: BackboneFamily): Place | undefined {
  if (family === "resnet") return undefined;
  let m = /^stem\.stem\.([01])\.(.+)$/.exec(key);
  if (m) return { kind: "stem", layer: m[1] === "0" ? "conv" : "bn", leaf: m[2]! };
  m = /^trunk_output\.block(\d+)\.block(\d+)-(\d+)\.(.+)$/.exec(key);
  if (m && m[1] === m[2]) return parseClassyBlock(Number(m[1]), Number(m[3]), m[4]!);
  m = /^fc\.(.+)$/.exec(key);
  if (m) return { kind: "head", leaf: m[1]! };
  return undefined;
}

function parseVissl(key: string, family: BackboneFamily): Place | undefined {
  const k = key.startsWith("trunk.") ? key.slice("trunk.".length) : key;
  const m0 = /^(?:heads\.)?0\.clf\.0\.(.+)$/.exec(k);
  if (m0) return { kind: "head", leaf: m0[1]! };
  if (!k.startsWith("_feature_blocks.")) return undefined;
  const path = k.slice("_feature_blocks.".length);
  if (family === "resnet") return RESNET_PATH.test(path) ? { kind: "resnet", path } : undefined;
  let m = /^conv1\.stem\.([01])\.(.+)$/.exec(path);
  if (m) return { kind: "stem", layer: m[1] === "0" ? "conv" : "bn", leaf: m[2]! };
  // res{stage+1}.[block{stage}-part{g}.]block{stage}-{index}.<block>
  m = /^res(\d+)\.(?:block(\d+)-part\d+\.)?block(\d+)-(\d+)\.(.+)$/.exec(path);
  if (m && Number(m[1]) === Number(m[3]) + 1 && (m[2] === undefined || m[2] === m[3])) return parseClassyBlock(Number(m[3]), Number(m[4]), m[5]!);
  return undefined;
}

const PARSERS: Record<WeightConvention, (key: string, family: BackboneFamily) => Place | undefined> = {
  torchvision: parseTorchvision,
  timm: parseTimm,
  vissl: parseVissl,
  classy: parseClassy,
};

// ---------------------------------------------------------------------------------------------------------------
// Rendering: place -> key

function renderTorchvision(p: Place): string {
  switch (p.kind) {
    case "stem": return `stem.${p.layer === "conv" ? 0 : 1}.${p.leaf}`;
    case "block": return `trunk_output.block${p.stage}.block${p.stage}-${p.index}.${TORCHVISION_UNIT[p.unit]}.${p.layer === "conv" ? 0 : 1}.${p.leaf}`;
    case "se": return `trunk_output.block${p.stage}.block${p.stage}-${p.index}.f.se.fc${p.fc}.${p.leaf}`;
    case "resnet": return p.path;
    case "head": return `fc.${p.leaf}`;
  }
}

function renderTimm(p: Place, family: BackboneFamily): string {
  if (family === "resnet") return renderTorchvision(p);
  switch (p.kind) {
    case "stem": return `stem.${p.layer}.${p.leaf}`;
    case "block": return `s${p.stage}.b${p.index + 1}.${TIMM_UNIT[p.unit]}.${p.layer}.${p.leaf}`;
    case "se": return `s${p.stage}.b${p.index + 1}.se.fc${p.fc}.${p.leaf}`;
    case "resnet": return p.path;
    case "head": return `head.fc.${p.leaf}`;
  }
}

function renderClassyBlock(p: Extract<Place, { kind: "block" | "se" }>): string {
  if (p.kind === "se") return `f.se.excitation.${p.fc === 1 ? 0 : 2}.${p.leaf}`;
  switch (p.unit) {
    case "proj": return p.layer === "conv" ? `proj.${p.leaf}` : `bn.${p.leaf}`;
    case "c": return p.layer === "conv" ? `f.c.${p.leaf}` : `f.final_bn.${p.leaf}`;
    default: return `f.${p.unit}.${p.layer === "conv" ? 0 : 1}.${p.leaf}`;
  }
}

function renderClassy(p: Place, family: BackboneFamily): string {
  if (family === "resnet") throw new RangeError("ClassyVision's ResNet naming is not supported; use torchvision or vissl names");
  switch (p.kind) {
    case "stem": return `stem.stem.${p.layer === "conv" ? 0 : 1}.${p.leaf}`;
    case "block": case "se": return `trunk_output.block${p.stage}.block${p.stage}-${p.index}.${renderClassyBlock(p)}`;
    case "resnet": return p.path;
    case "head": return `fc.${p.leaf}`;
  }
}

function renderVissl(p: Place): string {
  switch (p.kind) {
    case "stem": return `_feature_blocks.conv1.stem.${p.layer === "conv" ? 0 : 1}.${p.leaf}`;
    case "block": case "se": return `_feature_blocks.res${p.stage + 1}.block${p.stage}-${p.index}.${renderClassyBlock(p)}`;
    case "resnet": return `_feature_blocks.${p.path}`;
    case "head": return `heads.0.clf.0.${p.leaf}`;
  }
}

const RENDERERS: Record<WeightConvention, (p: Place, family: BackboneFamily) => string> = {
  torchvision: renderTorchvision,
  timm: renderTimm,
  vissl: renderVissl,
  classy: renderClassy,
};

// ---------------------------------------------------------------------------------------------------------------
// Detection

/** Drops a `module.` prefix (DistributedDataParallel) when every key has one. */
function stripModulePrefix(keys: string[]): string[] {
  return keys.length > 0 && keys.every((k) => k.startsWith("module.")) ? keys.map((k) => k.slice("module.".length)) : keys;
}

/** RegNet or ResNet, from the keys (trunk keys decide; a dict of only `fc.*` counts as a RegNet). */
export function detectFamily(keys: Iterable<string>): BackboneFamily {
  for (const k of stripModulePrefix([...keys])) {
    const path = k.replace(/^(?:trunk\.)?_feature_blocks\./, "");
    if (/^(conv1\.weight|bn1\.|layer\d+\.)/.test(path)) return "resnet";
  }
  return "regnet";
}

/**
 * The convention a state dict's keys follow. Throws when no key is recognized. ResNet dicts from timm and torchvision
 * are indistinguishable (same names) and detect as "torchvision".
 */
export function detectConvention(keys: Iterable<string>): WeightConvention {
  const all = stripModulePrefix([...keys]);
  if (all.some((k) => /^(?:trunk\.)?_feature_blocks\./.test(k))) return "vissl";
  if (all.some((k) => k.startsWith("stem.stem."))) return "classy";
  if (all.some((k) => /^(stem\.(conv|bn)\.|s\d+\.b\d+\.|head\.fc\.)/.test(k))) return "timm";
  if (all.some((k) => /^(stem\.[01]\.|trunk_output\.|fc\.)/.test(k) || RESNET_PATH.test(k))) return "torchvision";
  const sample = all.slice(0, 5).map((k) => `'${k}'`).join(", ");
  throw new RangeError(`Cannot tell the naming convention of this state dict (first keys: ${sample}); expected torchvision, timm, VISSL or ClassyVision RegNet/ResNet names`);
}

// ---------------------------------------------------------------------------------------------------------------
// Mapping

export interface MapStateDictOptions {
  /** What to do with keys the source convention does not name: keep them as they are (default), drop them, or throw. */
  unknown?: "keep" | "drop" | "error";
}

/** One key renamed from one convention to another; undefined when `from` does not name it. */
export function renameKey(key: string, from: WeightConvention, to: WeightConvention, family: BackboneFamily): string | undefined {
  const place = PARSERS[from](key, family);
  return place === undefined ? undefined : RENDERERS[to](place, family);
}

/**
 * The same entries under `to`'s names (default torchvision's, i.e. ours). `from` defaults to "auto": detected from
 * the keys. The values are not copied: the result holds the very tensors of `sd` (the caller still owns them).
 * Two keys landing on one name is an error.
 */
export function mapStateDict<T>(
  sd: ReadonlyMap<string, T>,
  from: WeightConvention | "auto" = "auto",
  to: WeightConvention = "torchvision",
  o: MapStateDictOptions = {},
): Map<string, T> {
  const keys = [...sd.keys()];
  const stripped = stripModulePrefix(keys);
  const source = from === "auto" ? detectConvention(stripped) : checkConvention(from);
  checkConvention(to);
  const family = detectFamily(stripped);
  const unknown = o.unknown ?? "keep";
  const out = new Map<string, T>();
  const origin = new Map<string, string>();
  keys.forEach((original, i) => {
    const key = stripped[i]!;
    let renamed = renameKey(key, source, to, family);
    if (renamed === undefined) {
      if (unknown === "error") throw new RangeError(`mapStateDict: '${original}' is not a ${family} key in the ${source} convention`);
      if (unknown === "drop") return;
      renamed = key;
    }
    const clash = origin.get(renamed);
    if (clash !== undefined) throw new RangeError(`mapStateDict: '${clash}' and '${original}' both map to '${renamed}'`);
    origin.set(renamed, original);
    out.set(renamed, sd.get(original)!);
  });
  return out;
}

function checkConvention(c: string): WeightConvention {
  if (!(WEIGHT_CONVENTIONS as readonly string[]).includes(c)) {
    throw new RangeError(`Expected one of ${WEIGHT_CONVENTIONS.join(", ")} for the weight convention but received ${JSON.stringify(c)}`);
  }
  return c as WeightConvention;
}
