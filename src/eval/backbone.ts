// The backbone an evaluation runs: built by name (createModel) and loaded from a checkpoint, or left at its random
// init as a baseline.
//
// `--checkpoint` takes:
//   random:<arch>            a random-init baseline (torchvision init, seeded), e.g. random:regnet_y_400mf
//   FILE.safetensors         a state dict: a bare backbone (e.g. a run folder's backbone.safetensors), or a whole
//                            SSL model whose backbone sits under `backbone.` (the keys of SwAV / SimCLR modules)
//   a checkpoint folder      checkpoint-<step>/ holding model.safetensors (train/checkpoint.ts)
//   a run folder             its backbone.safetensors if there is one, else its newest intact checkpoint-<step>/
// Keys in timm, VISSL/SEER or ClassyVision naming are renamed to ours (models/weight_names.ts); a leading
// `module.` (DDP) is dropped; classifier (`fc.*`), projection-head and prototype tensors are ignored: the backbone
// is built without a classifier and must otherwise match exactly.
//
// The architecture comes from --arch, else from the weights file's safetensors metadata (`arch`, `smallImageStem`
// "true"/"false", and `modelOptions`, the JSON of RegNet design overrides such as {"w0":16}), else from the
// checkpoint's state.json (`state.arch`, `state.smallImageStem`, `state.modelOptions`).
import * as fs from "fs";
import * as path from "path";
import { disposeTensors, loadSafetensors, readSafetensorsHeader } from "../io/safetensors";
import { CheckpointManager } from "../train/checkpoint";
import { type BackboneModel, type CreateModelOptions, createModel } from "../models/registry";
import { mapStateDict } from "../models/weight_names";
import { manualSeed, type Tensor } from "../tensor";

export interface BackboneSpec {
  /** random:<arch>, a .safetensors file, a checkpoint folder or a run folder (see the header). */
  checkpoint: string;
  /** Model name for createModel; overrides what the checkpoint says. */
  arch?: string;
  /** CIFAR stem (3x3 stride 1); overrides what the checkpoint says. Default false. */
  smallImageStem?: boolean;
  /** More createModel options (design overrides), for models that are not a plain registry name. */
  modelOptions?: CreateModelOptions;
  /** Seed of the random init (what random:<arch> keeps). Default 0. */
  seed?: number;
}

export interface LoadedBackbone {
  /** The backbone, without a classifier, in eval mode. The caller disposes it. */
  backbone: BackboneModel;
  arch: string;
  smallImageStem: boolean;
  /** RegNet design overrides the backbone was built with (recorded by the run, or given in the spec). */
  modelOptions: CreateModelOptions;
  /** The weights file, unless random. */
  weightsFile?: string;
  /** What the features depend on, for the feature cache: file path, size and mtime, or random:<arch> and seed. */
  identity: string;
  /** For reports. */
  description: string;
}

/** Where the weights of a checkpoint argument are, with the state.json hints next to them. */
interface WeightsLocation {
  file: string;
  state?: Record<string, unknown>;
}

function readStateJson(dir: string): Record<string, unknown> | undefined {
  const file = path.join(dir, "state.json");
  if (!fs.existsSync(file)) return undefined;
  const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as { state?: unknown };
  return typeof parsed.state === "object" && parsed.state !== null ? (parsed.state as Record<string, unknown>) : undefined;
}

/** Resolves a checkpoint argument (not random:) to its weights file. */
export function locateWeights(checkpoint: string): WeightsLocation {
  const stat = fs.statSync(checkpoint, { throwIfNoEntry: false });
  if (!stat) throw new Error(`checkpoint ${checkpoint} does not exist (expected random:<arch>, a .safetensors file, a checkpoint folder or a run folder)`);
  if (stat.isFile()) return { file: checkpoint };
  const backboneFile = path.join(checkpoint, "backbone.safetensors");
  if (fs.existsSync(backboneFile)) return { file: backboneFile, state: readStateJson(checkpoint) };
  const modelFile = path.join(checkpoint, "model.safetensors");
  if (fs.existsSync(modelFile)) return { file: modelFile, state: readStateJson(checkpoint) };
  const manager = new CheckpointManager(checkpoint, 1, () => {});
  for (const step of manager.list()) {
    if (manager.verify(step) !== undefined) continue; // damaged: the previous one
    const dir = path.join(checkpoint, `checkpoint-${String(step).padStart(9, "0")}`);
    return { file: path.join(dir, "model.safetensors"), state: readStateJson(dir) };
  }
  throw new Error(`${checkpoint}: no backbone.safetensors, model.safetensors or intact checkpoint-<step>/ folder in it`);
}

/**
 * The RegNet design overrides a pretraining run recorded (train/trainer.ts writes `modelOptions` into the weights'
 * metadata and state.json, e.g. {"w0":16,"wa":12}), without the options the spec sets itself (stem, classifier).
 */
function recordedDesign(file: string, metaText: string | undefined, stateValue: unknown): CreateModelOptions {
  let parsed: unknown = stateValue;
  if (metaText !== undefined) {
    try {
      parsed = JSON.parse(metaText);
    } catch (e) {
      throw new Error(`${file}: metadata modelOptions is not JSON (${(e as Error).message})`);
    }
  }
  if (parsed === undefined || parsed === null) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) throw new Error(`${file}: modelOptions must be an object of design overrides but is ${JSON.stringify(parsed)}`);
  const o = { ...(parsed as Record<string, unknown>) };
  delete o.numClasses;
  delete o.smallImageStem;
  return o as CreateModelOptions;
}

/** "w0=16, wa=12" for reports. */
export function designText(o: CreateModelOptions): string {
  return Object.entries(o).filter(([k]) => k !== "numClasses" && k !== "smallImageStem").map(([k, v]) => `${k}=${String(v)}`).join(", ");
}

const asBool = (v: unknown): boolean | undefined => (v === true || v === "true" ? true : v === false || v === "false" ? false : undefined);

/** Only the backbone's tensors: those under `backbone.` when there are any, and never a classifier's. */
function backboneEntries(sd: Map<string, Tensor>): Map<string, Tensor> {
  const keys = [...sd.keys()].map((k) => (k.startsWith("module.") ? k.slice("module.".length) : k));
  const nested = keys.some((k) => k.startsWith("backbone."));
  const out = new Map<string, Tensor>();
  [...sd.values()].forEach((t, i) => {
    const k = keys[i]!;
    if (nested && !k.startsWith("backbone.")) return; // head.*, prototypes.*
    out.set(nested ? k.slice("backbone.".length) : k, t);
  });
  return out;
}

/** Builds the backbone a spec names and loads its weights (see the header for what a checkpoint may be). */
export function loadBackbone(spec: BackboneSpec): LoadedBackbone {
  const seed = spec.seed ?? 0;
  const random = /^random(?::(.+))?$/.exec(spec.checkpoint);
  if (random) {
    const arch = spec.arch ?? random[1];
    if (!arch) throw new Error("random: needs an architecture: --checkpoint random:<arch> or --arch");
    const smallImageStem = spec.smallImageStem ?? spec.modelOptions?.smallImageStem ?? false;
    manualSeed(seed);
    const backbone = createModel(arch, { ...spec.modelOptions, numClasses: 0, smallImageStem }).eval();
    const identity = `random:${arch} seed ${seed} smallImageStem ${smallImageStem} options ${JSON.stringify(spec.modelOptions ?? {})}`;
    const modelOptions = { ...spec.modelOptions };
    delete modelOptions.smallImageStem;
    delete modelOptions.numClasses;
    const design = Object.keys(modelOptions).length > 0 ? ` ${designText(modelOptions)}` : "";
    return { backbone, arch, smallImageStem, modelOptions, identity, description: `${arch}${design} (random init, seed ${seed})` };
  }

  const { file, state } = locateWeights(spec.checkpoint);
  const meta = readSafetensorsHeader(file).metadata;
  const arch = spec.arch ?? meta.arch ?? (typeof state?.arch === "string" ? state.arch : undefined);
  if (!arch) throw new Error(`${file}: the architecture is not recorded in the checkpoint; give it with --arch (e.g. --arch regnet_y_400mf)`);
  const smallImageStem = spec.smallImageStem ?? spec.modelOptions?.smallImageStem ?? asBool(meta.smallImageStem) ?? asBool(state?.smallImageStem) ?? false;
  const modelOptions = { ...recordedDesign(file, meta.modelOptions, state?.modelOptions), ...spec.modelOptions };
  const backbone = createModel(arch, { ...modelOptions, numClasses: 0, smallImageStem });
  const sd = loadSafetensors(file);
  try {
    const renamed = mapStateDict(backboneEntries(sd), "auto", "torchvision", { unknown: "keep" });
    for (const k of [...renamed.keys()]) if (k.startsWith("fc.")) renamed.delete(k); // a classifier is not the trunk
    backbone.loadStateDict(renamed);
  } catch (e) {
    backbone.dispose();
    throw new Error(`${file}: cannot load into ${arch}${smallImageStem ? " (small stem)" : ""}: ${(e as Error).message}`);
  } finally {
    disposeTensors(sd);
  }
  backbone.eval();
  const stat = fs.statSync(file);
  const design = Object.keys(modelOptions).length > 0 ? ` options ${JSON.stringify(modelOptions)}` : "";
  const identity = `file ${path.resolve(file)} bytes ${stat.size} mtime ${stat.mtimeMs} arch ${arch} smallImageStem ${smallImageStem}${design}`;
  return { backbone, arch, smallImageStem, modelOptions, weightsFile: file, identity, description: `${arch}${design ? ` (${designText(modelOptions)})` : ""} from ${file}` };
}
