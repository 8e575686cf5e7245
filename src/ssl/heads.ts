// Projection heads and SwAV prototypes.
//
// ProjectionHead follows VISSL's swav_prototypes_head.py (and the projection MLPs of SwAV src/resnet50.py and
// SimCLR): Linear [-> BatchNorm1d] -> ReLU between layers, and a plain Linear last ("skip_last_bn"). Built as a
// Sequential, so its parameters are named as the equivalent torch.nn.Sequential's (`0.weight`, `1.running_mean`,
// `3.bias`, ...) and PyTorch weights load without renaming.
//
// SwAVPrototypes follows SwAV: K bias-free prototype vectors C (K, D) applied to L2-normalized embeddings,
// scores = z Cᵀ; several prototype sets as swav's MultiPrototypes (children `prototypes0`, `prototypes1`, ...,
// VISSL's names too). The prototype rows are kept on the unit sphere by normalize() and their gradients are
// dropped for the first iterations (SwAV freezes them early in training; main_swav.py freeze_prototypes_niters).
// What differs: swav re-normalizes before each forward, VISSL after each optimizer step
// (NormalizePrototypesHook); here the trainer picks the moment and calls normalize(). A single set is also named
// `prototypes0` (swav's single-set model names it `prototypes.weight`: rename when loading such a checkpoint).
import { type BatchNormOptions, BatchNorm1d, Linear, ReLU, Sequential } from "../nn/layers";
import { Module } from "../nn/module";
import * as F from "../nn/functional";
import type { DType } from "../tensor/dtype";
import { noGrad } from "../tensor/grad";
import type { Tensor } from "../tensor/tensor";

export interface ProjectionHeadOptions {
  /** BatchNorm1d after every hidden Linear (VISSL's use_bn; SwAV's RN50 head: true; SEER's heads: false). */
  batchNorm?: boolean;
  /** BatchNorm1d epsilon and momentum (torch defaults 1e-5 and 0.1, as VISSL). */
  bnEps?: number;
  bnMomentum?: BatchNormOptions["momentum"];
  /** Parameter dtype (float32 unless told otherwise). */
  dtype?: DType;
}

/**
 * An MLP over dims [d0, d1, ..., dn]: for each hidden layer Linear(d_i, d_{i+1}) [-> BatchNorm1d] -> ReLU, then
 * Linear(d_{n-1}, d_n) with neither. (N, d0) -> (N, dn).
 */
export class ProjectionHead extends Sequential {
  readonly dims: readonly number[];
  readonly batchNorm: boolean;

  constructor(dims: readonly number[], o: ProjectionHeadOptions = {}) {
    if (dims.length < 2) throw new RangeError(`ProjectionHead: expected at least 2 dims [in, out] but received [${dims.join(", ")}]`);
    for (const d of dims) if (!Number.isInteger(d) || d < 1) throw new RangeError(`ProjectionHead: expected positive integer dims but received [${dims.join(", ")}]`);
    const batchNorm = o.batchNorm ?? false;
    const dtype = o.dtype;
    const layers: Module[] = [];
    for (let i = 0; i + 1 < dims.length; i++) {
      layers.push(new Linear(dims[i]!, dims[i + 1]!, { dtype }));
      if (i + 2 === dims.length) break; // last layer: no BN, no ReLU
      if (batchNorm) layers.push(new BatchNorm1d(dims[i + 1]!, { eps: o.bnEps, momentum: o.bnMomentum, dtype }));
      layers.push(new ReLU());
    }
    super(...layers);
    this.dims = Object.freeze([...dims]);
    this.batchNorm = batchNorm;
  }

  get inDim(): number {
    return this.dims[0]!;
  }
  get outDim(): number {
    return this.dims[this.dims.length - 1]!;
  }
}

export interface SwAVPrototypesOptions {
  /** The prototype gradients are dropped while step < frozenUntilStep (swav's freeze_prototypes_niters; 0: never). */
  frozenUntilStep?: number;
  dtype?: DType;
}

/**
 * numPrototypes bias-free prototype sets over D-dim embeddings: z (N, D) -> one score matrix (N, K_h) per set.
 * A number gives one set (SwAV's default), an array one set per entry (swav's MultiPrototypes, e.g. [3000,3000,3000]).
 */
export class SwAVPrototypes extends Module {
  readonly frozenUntilStep: number;
  readonly heads: readonly Linear[];

  constructor(readonly dim: number, numPrototypes: number | readonly number[], o: SwAVPrototypesOptions = {}) {
    super();
    const ks = typeof numPrototypes === "number" ? [numPrototypes] : [...numPrototypes];
    if (ks.length === 0) throw new RangeError("SwAVPrototypes: expected at least one prototype set");
    for (const k of ks) if (!Number.isInteger(k) || k < 1) throw new RangeError(`SwAVPrototypes: expected positive integer prototype counts but received [${ks.join(", ")}]`);
    const frozen = o.frozenUntilStep ?? 0;
    if (!Number.isInteger(frozen) || frozen < 0) throw new RangeError(`SwAVPrototypes: expected a non-negative integer for frozenUntilStep but received ${frozen}`);
    this.frozenUntilStep = frozen;
    this.heads = ks.map((k, i) => this.registerModule(`prototypes${i}`, new Linear(dim, k, { bias: false, dtype: o.dtype })));
  }

  /** Number of prototypes of each set. */
  get numPrototypes(): number[] {
    return this.heads.map((h) => h.outFeatures);
  }

  /** The prototype matrices C_h (K_h, D), the module's own tensors (do not dispose). */
  get weights(): Tensor[] {
    return this.heads.map((h) => h.weight);
  }

  /** z (N, D) -> [(N, K_0), (N, K_1), ...]: one score matrix per prototype set, always an array. */
  forwardAll(z: Tensor): Tensor[] {
    return this.heads.map((h) => h.forward(z));
  }

  /** z (N, D) -> (N, K) for a single prototype set; with several, use forwardAll(). */
  forward(z: Tensor): Tensor {
    if (this.heads.length !== 1) throw new Error(`SwAVPrototypes.forward: this module has ${this.heads.length} prototype sets; use forwardAll()`);
    return this.heads[0]!.forward(z);
  }

  /**
   * Re-normalizes every prototype row to unit L2 norm, in place (the parameters keep their identity, so optimizer
   * references and momentum buffers stay valid) and without recording gradients.
   * swav: `w = model.module.prototypes.weight.data.clone(); w = F.normalize(w, dim=1, p=2); ...copy_(w)`.
   */
  normalize(): void {
    noGrad(() => {
      for (const w of this.weights) {
        using unit = F.normalize(w, { dim: 1 }); // (K, D)
        w.copy_(unit);
      }
    });
  }

  /** True while the prototypes are frozen at (0-based, global) iteration `step`. */
  isFrozen(step: number): boolean {
    return step < this.frozenUntilStep;
  }

  /**
   * Drops the prototype gradients (sets .grad to undefined, so the optimizer skips them: no update, no weight
   * decay, no momentum) while step < frozenUntilStep. Call between backward() and the optimizer step. Returns
   * whether they were dropped. swav: `if iteration < args.freeze_prototypes_niters: ... p.grad = None`.
   */
  cancelGradIfFrozen(step: number): boolean {
    if (!this.isFrozen(step)) return false;
    for (const w of this.weights) w.grad = undefined;
    return true;
  }
}

/** A projection head with its prototypes, as VISSL's swav_head. */
export interface SwAVHeadParts {
  head: ProjectionHead;
  prototypes: SwAVPrototypes;
}

export interface SwAVHeadPresetOptions {
  /** Prototype freezing (default 313 iterations: swav's freeze_prototypes_niters and VISSL's base config). */
  frozenUntilStep?: number;
  dtype?: DType;
}

/**
 * SEER's head (VISSL d{W}_d8192_d8192_d256_proto16k.yaml): W -> 8192 -> 8192 -> 256 with ReLU and no BN, then
 * 16000 prototypes.
 */
export function seerHead(width: number, o: SwAVHeadPresetOptions = {}): SwAVHeadParts {
  return {
    head: new ProjectionHead([width, 8192, 8192, 256], { batchNorm: false, dtype: o.dtype }),
    prototypes: new SwAVPrototypes(256, 16000, { frozenUntilStep: o.frozenUntilStep ?? 313, dtype: o.dtype }),
  };
}

/**
 * SwAV's ResNet-50 head (swav src/resnet50.py, VISSL swav_8node_resnet.yaml, and the CPU anchor step):
 * W -> 2048 -> BN -> ReLU -> 128, then 3000 prototypes.
 */
export function smallSwavHead(width: number, o: SwAVHeadPresetOptions = {}): SwAVHeadParts {
  return {
    head: new ProjectionHead([width, 2048, 128], { batchNorm: true, dtype: o.dtype }),
    prototypes: new SwAVPrototypes(128, 3000, { frozenUntilStep: o.frozenUntilStep ?? 313, dtype: o.dtype }),
  };
}
