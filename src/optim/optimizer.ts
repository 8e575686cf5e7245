// The optimizer base: parameter groups, per-parameter state, the step loop, and checkpoint state.
//
// Modelled on torch.optim.Optimizer (pytorch/pytorch: torch/optim/optimizer.py): parameters come in groups, each
// group carries its own hyperparameters, and state is kept per parameter. The state-dict layout follows torch's
// too: parameters are numbered across groups in order (group 0's first parameter is 0), and a state entry is
// keyed "<paramIndex>.<name>", e.g. "3.momentum_buffer".
//
// A step works on buckets, as torch's foreach optimizers do: the parameters of one group that have a gradient,
// split by device and dtype, so that an optimizer can update each bucket with a few multi-tensor ops
// (tensor/foreach.ts) instead of a few ops per parameter.
//
// Memory: state tensors are keep()-ed (exempt from tidy) and owned by the optimizer; dispose() frees them. Each
// bucket's update runs in its own tidy() under noGrad, so temporaries never outlive one bucket's update.
import { keep, noGrad, Tensor, tidy } from "../tensor";

/** Hyperparameters every optimizer has. */
export interface BaseHyperparams {
  /** The learning rate in effect for this group (setLr(lr) sets it to lr * lrScale). */
  lr: number;
  /** Multiplier applied by setLr() for this group (default 1). */
  lrScale: number;
  weightDecay: number;
}

/** `[name, tensor]` pairs, as Module.namedParameters() returns them. */
export type NamedParams = [string, Tensor][];

/** One parameter group as given to a constructor: the parameters, optional names, and hyperparameter overrides. */
export type ParamGroupInput<H extends BaseHyperparams> = {
  params: Tensor[] | NamedParams;
  /** Names for `params` when it is a plain Tensor[] (used by name-based rules such as LARC exclusions). */
  names?: string[];
} & Partial<H>;

/** What a constructor accepts: plain tensors, named tensors, or explicit groups. */
export type ParamsInput<H extends BaseHyperparams> = Tensor[] | NamedParams | ParamGroupInput<H>[];

export interface ParamGroup<H extends BaseHyperparams> {
  readonly params: readonly Tensor[];
  /** One name per parameter: the given name, or the parameter's global index as a string. */
  readonly names: readonly string[];
  /** Global index of each parameter (the number in state keys). */
  readonly indices: readonly number[];
  /** This group's hyperparameters; may be changed between steps. */
  hyper: H;
}

/** Saved group: its hyperparameters plus which parameters it held. Plain data (JSON-serialisable). */
export type SavedGroup<H extends BaseHyperparams> = H & { params: number[]; names: string[] };

export interface OptimizerStateDict<H extends BaseHyperparams = BaseHyperparams> {
  /** Number of step() calls so far. */
  step: number;
  groups: SavedGroup<H>[];
  /**
   * Per-parameter state keyed "<paramIndex>.<name>". These are the optimizer's own tensors, not copies: do not
   * dispose them, and read them (or clone them) before the next step() or dispose().
   */
  state: Map<string, Tensor>;
}

/** What training code needs from any optimizer (SGD, AdamW, and the LARC wrapper). */
export interface OptimizerLike<H extends BaseHyperparams = BaseHyperparams> {
  readonly groups: readonly ParamGroup<H>[];
  /** Number of step() calls so far (restored by loadStateDict). */
  readonly stepCount: number;
  /** The first group's learning rate. */
  readonly lr: number;
  step(): void;
  zeroGrad(): void;
  setLr(lr: number): void;
  stateDict(): OptimizerStateDict<H>;
  loadStateDict(sd: OptimizerStateDict<H>): void;
  dispose(): void;
}

/**
 * The parameters of one group that have a gradient and share a device and dtype, with those gradients, their
 * global indices and names (all four lists in the same order, never empty).
 */
export interface ParamBucket {
  readonly params: readonly Tensor[];
  readonly grads: readonly Tensor[];
  readonly indices: readonly number[];
  readonly names: readonly string[];
}

/** Called for each bucket of a step, inside noGrad and a per-bucket tidy(). */
export type BucketVisitor<H extends BaseHyperparams> = (bucket: ParamBucket, group: ParamGroup<H>, groupIndex: number) => void;

const isNamedPair = (x: unknown): x is [string, Tensor] => Array.isArray(x) && x.length === 2 && typeof x[0] === "string" && x[1] instanceof Tensor;

interface NormalizedGroup {
  params: Tensor[];
  names: (string | undefined)[];
  /** The group's own hyperparameters (undefined values dropped). */
  overrides: Record<string, unknown>;
}

function splitNamed(ps: Tensor[] | NamedParams, names: string[] | undefined, where: string): { params: Tensor[]; names: (string | undefined)[] } {
  if (ps.every((p) => p instanceof Tensor)) {
    const tensors = ps as Tensor[];
    if (names !== undefined && names.length !== tensors.length) {
      throw new RangeError(`${where}: ${names.length} names for ${tensors.length} parameters`);
    }
    return { params: tensors, names: names ?? tensors.map(() => undefined) };
  }
  if (ps.every(isNamedPair)) {
    if (names !== undefined) throw new TypeError(`${where}: 'names' given together with [name, tensor] pairs`);
    const pairs = ps as NamedParams;
    return { params: pairs.map(([, t]) => t), names: pairs.map(([n]) => n) };
  }
  throw new TypeError(`${where}: expected Tensor[] or [string, Tensor][]`);
}

function normalize<H extends BaseHyperparams>(input: ParamsInput<H>): NormalizedGroup[] {
  if (input.length === 0) throw new RangeError("optimizer got an empty parameter list");
  const first = input[0];
  if (first instanceof Tensor || isNamedPair(first)) {
    return [{ ...splitNamed(input as Tensor[] | NamedParams, undefined, "params"), overrides: {} }];
  }
  return (input as ParamGroupInput<H>[]).map((g, i) => {
    if (g === null || typeof g !== "object" || !Array.isArray(g.params)) throw new TypeError(`param group ${i}: expected { params: [...] }`);
    if (g.params.length === 0) throw new RangeError(`param group ${i} has no parameters`);
    const overrides: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(g)) if (k !== "params" && k !== "names" && v !== undefined) overrides[k] = v;
    return { ...splitNamed(g.params, g.names, `param group ${i}`), overrides };
  });
}

/** Rejects a non-finite or negative number. */
export function checkNonNegative(what: string, v: number): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new RangeError(`${what} must be a finite number >= 0, got ${String(v)}`);
}

export abstract class Optimizer<H extends BaseHyperparams> implements OptimizerLike<H> {
  readonly groups: readonly ParamGroup<H>[];
  /** Per-parameter state, keyed "<paramIndex>.<name>"; every tensor here is keep()-ed and owned by this object. */
  protected readonly state = new Map<string, Tensor>();
  private steps = 0;
  private disposed = false;
  private readonly allParams: Tensor[] = [];

  /** `defaults` must hold every hyperparameter; groups override any subset of them. */
  protected constructor(params: ParamsInput<H>, defaults: H) {
    const seen = new Set<Tensor>();
    this.groups = normalize(params).map((g, gi) => {
      for (const key of Object.keys(g.overrides)) {
        if (!(key in defaults)) throw new TypeError(`param group ${gi}: unknown option '${key}' (known: ${Object.keys(defaults).join(", ")})`);
      }
      const hyper: H = { ...defaults };
      Object.assign(hyper, g.overrides);
      // A group without its own lr starts at the default lr times its scale, as setLr() would set it.
      if (g.overrides["lr"] === undefined) hyper.lr = defaults.lr * hyper.lrScale;
      this.validate(hyper, `param group ${gi}`);
      const indices: number[] = [];
      const names: string[] = [];
      g.params.forEach((p, j) => {
        if (seen.has(p)) throw new RangeError(`param group ${gi}: parameter ${g.names[j] ?? j} appears more than once`);
        seen.add(p);
        const index = this.allParams.length;
        this.allParams.push(p);
        indices.push(index);
        names.push(g.names[j] ?? String(index));
      });
      return { params: g.params, names, indices, hyper };
    });
  }

  /** Throws on invalid hyperparameters (called for every group at construction and load). */
  protected abstract validate(h: H, where: string): void;

  /**
   * Updates one bucket's parameters in place from their gradients with the hyperparameters `hyper`. Runs inside
   * noGrad and a tidy() that frees whatever it creates except keep()-ed state.
   */
  protected abstract updateBucket(bucket: ParamBucket, hyper: H): void;

  get stepCount(): number {
    return this.steps;
  }

  get lr(): number {
    return this.groups[0]!.hyper.lr;
  }

  /** Total number of parameters across groups. */
  get numParams(): number {
    return this.allParams.length;
  }

  /** One step over every parameter that has a gradient (parameters without one are skipped, as in torch). */
  step(): void {
    this.stepBuckets((bucket, group) => this.updateBucket(bucket, group.hyper));
  }

  /**
   * The step loop with a custom body: visits each bucket (noGrad, one tidy() per bucket) and then counts the
   * step. For wrappers such as LARC.
   */
  stepBuckets(visit: BucketVisitor<H>): void {
    this.checkAlive();
    noGrad(() => {
      this.groups.forEach((group, gi) => {
        tidy(() => {
          for (const bucket of bucketsOf(group)) tidy(() => visit(bucket, group, gi));
        });
      });
    });
    this.steps++;
  }

  /** Drops every parameter's gradient (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.allParams) p.grad = undefined;
  }

  /** Sets every group's lr to `lr * group.lrScale`. */
  setLr(lr: number): void {
    checkNonNegative("lr", lr);
    for (const g of this.groups) g.hyper.lr = lr * g.hyper.lrScale;
  }

  // ---- state ----

  protected getState(index: number, key: string): Tensor | undefined {
    return this.state.get(`${index}.${key}`);
  }

  /** Stores (and keep()s) a state tensor; the optimizer owns it from now on. */
  protected setState(index: number, key: string, t: Tensor): Tensor {
    const k = `${index}.${key}`;
    const old = this.state.get(k);
    if (old !== undefined && old !== t) old.dispose();
    this.state.set(k, keep(t));
    return t;
  }

  /**
   * State keys that are not shaped like their parameter (e.g. AdamW's scalar "step"); loadStateDict() checks the
   * shape of every other entry against its parameter.
   */
  protected scalarStateKeys(): readonly string[] {
    return [];
  }

  stateDict(): OptimizerStateDict<H> {
    this.checkAlive();
    return {
      step: this.steps,
      groups: this.groups.map((g) => ({ ...g.hyper, params: [...g.indices], names: [...g.names] })),
      state: new Map(this.state),
    };
  }

  /**
   * Restores hyperparameters, the step count and per-parameter state from stateDict() output (groups may have
   * gone through JSON). State tensors are copied, to each parameter's dtype and device; the caller keeps
   * ownership of `sd`. Everything is checked before anything changes.
   */
  loadStateDict(sd: OptimizerStateDict<H>): void {
    this.checkAlive();
    if (!Number.isSafeInteger(sd.step) || sd.step < 0) throw new RangeError(`loadStateDict: bad step ${String(sd.step)}`);
    if (sd.groups.length !== this.groups.length) {
      throw new RangeError(`loadStateDict: the state has ${sd.groups.length} param groups, this optimizer ${this.groups.length}`);
    }
    const hypers = sd.groups.map((saved, gi) => {
      const group = this.groups[gi]!;
      if (saved.params.length !== group.params.length) {
        throw new RangeError(`loadStateDict: param group ${gi} has ${saved.params.length} parameters in the state, ${group.params.length} here`);
      }
      const hyper: H = { ...group.hyper };
      const savedHyper = new Map<string, unknown>(Object.entries(saved));
      for (const key of Object.keys(hyper)) if (savedHyper.has(key)) Object.assign(hyper, { [key]: savedHyper.get(key) });
      this.validate(hyper, `loadStateDict: param group ${gi}`);
      return hyper;
    });
    // Saved indices map onto this optimizer's parameters position by position, as in torch.
    const indexMap = new Map<number, number>();
    sd.groups.forEach((saved, gi) => saved.params.forEach((idx, j) => indexMap.set(idx, this.groups[gi]!.indices[j]!)));
    const scalarKeys = new Set(this.scalarStateKeys());
    const incoming: [number, string, Tensor][] = [];
    for (const [key, t] of sd.state) {
      const dot = key.indexOf(".");
      const savedIndex = Number(key.slice(0, dot));
      const name = key.slice(dot + 1);
      const index = indexMap.get(savedIndex);
      if (dot <= 0 || index === undefined || name === "") throw new RangeError(`loadStateDict: state key '${key}' names no parameter`);
      const p = this.allParams[index]!;
      if (!scalarKeys.has(name)) {
        const ps = p.shape;
        const ts = t.shape;
        if (ps.length !== ts.length || ps.some((d, i) => d !== ts[i])) {
          throw new RangeError(`loadStateDict: '${key}' has shape [${ts.join(", ")}], its parameter [${ps.join(", ")}]`);
        }
      }
      incoming.push([index, name, t]);
    }
    // Copy first: `sd` may hold this optimizer's own tensors (its own stateDict()).
    const copies = tidy(() =>
      incoming.map(([index, name, t]) => {
        const p = this.allParams[index]!;
        return keep(scalarKeys.has(name) ? copyTo(t, t.dtype, "cpu") : copyTo(t, p.dtype, p.device));
      }),
    );
    for (const t of this.state.values()) t.dispose();
    this.state.clear();
    incoming.forEach(([index, name], i) => this.setState(index, name, copies[i]!));
    hypers.forEach((h, gi) => (this.groups[gi]!.hyper = h));
    this.steps = sd.step;
  }

  /** Frees all state. The optimizer cannot step afterwards; the parameters are untouched. */
  dispose(): void {
    for (const t of this.state.values()) t.dispose();
    this.state.clear();
    this.disposed = true;
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error("optimizer used after dispose()");
  }
}

/** A group's parameters that have a gradient, split by device and dtype (gradients are fresh handles). */
function bucketsOf(group: ParamGroup<BaseHyperparams>): ParamBucket[] {
  const byKind = new Map<string, { params: Tensor[]; grads: Tensor[]; indices: number[]; names: string[] }>();
  group.params.forEach((p, j) => {
    const g = p.grad;
    if (g === undefined) return;
    const kind = `${p.device}/${p.dtype}`;
    let b = byKind.get(kind);
    if (b === undefined) byKind.set(kind, (b = { params: [], grads: [], indices: [], names: [] }));
    b.params.push(p);
    b.grads.push(g);
    b.indices.push(group.indices[j]!);
    b.names.push(group.names[j]!);
  });
  return [...byKind.values()];
}

/** An independent copy of t with the given dtype and device (never an alias of t's storage). */
function copyTo(t: Tensor, dtype: Tensor["dtype"], device: Tensor["device"]): Tensor {
  return tidy(() => {
    if (t.dtype === dtype && t.device === device) return t.clone();
    using d = t.to(dtype);
    return d.device === device ? d.clone() : d.to(device);
  });
}
