// Module: the base of every layer and model. Mirrors torch.nn.Module: parameters, buffers and child modules are
// registered by name, and the names of nested ones are `.`-joined exactly as PyTorch joins them
// (`layer1.0.conv1.weight`), so state dicts move between seerkit and PyTorch/torchvision/pycls checkpoints.
//
// Ownership: a module owns its parameters and buffers. They are keep()-ed (no tidy() ever frees them) and live
// until module.dispose(). stateDict() hands out the module's own tensors, not copies: read or save them, do not
// dispose them.
import { noGrad } from "../tensor/grad";
import { keep } from "../tensor/scope";
import { Tensor } from "../tensor/tensor";
import type { DType, Device } from "../tensor/dtype";
import { isFloating } from "../tensor/dtype";

/** What loadStateDict() found missing or unexpected (only non-empty when strict is false). */
export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** Why loadStateDict() refused a state dict; the message lists every problem, one per line. */
export class StateDictError extends Error {
  override name = "StateDictError";
  constructor(
    readonly missingKeys: string[],
    readonly unexpectedKeys: string[],
    readonly mismatches: string[],
  ) {
    const lines: string[] = [];
    if (missingKeys.length > 0) lines.push(`missing keys: ${missingKeys.join(", ")}`);
    if (unexpectedKeys.length > 0) lines.push(`unexpected keys: ${unexpectedKeys.join(", ")}`);
    lines.push(...mismatches);
    super(`loadStateDict: state dict does not fit the module (nothing was loaded):\n  ${lines.join("\n  ")}`);
  }
}

const fmtShape = (s: number[]): string => `[${s.join(", ")}]`;

function checkName(kind: string, name: string): void {
  if (name === "" || name.includes(".")) throw new TypeError(`${kind} name '${name}' must be non-empty and contain no '.'`);
}

export abstract class Module implements Disposable {
  /** Training mode (batch statistics in BatchNorm, active dropout); set by train() / eval(). */
  training = true;

  // Insertion order is the order PyTorch reports: own parameters, own buffers, then each child in turn.
  private readonly params = new Map<string, Tensor>();
  private readonly buffers = new Map<string, Tensor>();
  private readonly childModules = new Map<string, Module>();

  /** The layer's computation. Runs under the caller's tidy(); intermediates are the layer's to free. */
  abstract forward(x: Tensor): Tensor;

  /** Alias of forward(). */
  call(x: Tensor): Tensor {
    return this.forward(x);
  }

  // ---- registration ----

  /** Adopts t as a trainable parameter: keep()-ed, requiresGrad on. Returns t. */
  registerParameter(name: string, t: Tensor): Tensor {
    this.checkFree(name);
    this.params.set(name, keep(t).requiresGrad_(true));
    return t;
  }

  /** Adopts t as a buffer (state that is saved but not trained, e.g. BatchNorm running statistics). Returns t. */
  registerBuffer(name: string, t: Tensor): Tensor {
    this.checkFree(name);
    this.buffers.set(name, keep(t));
    return t;
  }

  /** Adds a child; its parameters appear as `<name>.<param>`. Returns the child. */
  registerModule<M extends Module>(name: string, m: M): M {
    this.checkFree(name);
    this.childModules.set(name, m);
    return m;
  }

  private checkFree(name: string): void {
    checkName(this.constructor.name, name);
    if (this.params.has(name) || this.buffers.has(name) || this.childModules.has(name)) {
      throw new Error(`${this.constructor.name}: '${name}' is already registered`);
    }
  }

  /** A registered parameter of this module (not of children). */
  protected param(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new Error(`${this.constructor.name} has no parameter '${name}'`);
    return t;
  }

  protected optionalParam(name: string): Tensor | undefined {
    return this.params.get(name);
  }

  /** A registered buffer of this module (not of children). */
  protected buffer(name: string): Tensor {
    const t = this.buffers.get(name);
    if (!t) throw new Error(`${this.constructor.name} has no buffer '${name}'`);
    return t;
  }

  protected optionalBuffer(name: string): Tensor | undefined {
    return this.buffers.get(name);
  }

  // ---- traversal ----

  /** Direct children with their names. */
  namedChildren(): [string, Module][] {
    return [...this.childModules];
  }

  children(): Module[] {
    return [...this.childModules.values()];
  }

  /**
   * This module and all descendants, depth-first, parents before children; a module reachable by several paths
   * is listed once (as torch.nn.Module.named_modules).
   */
  namedModules(prefix = ""): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const visit = (m: Module, name: string): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([name, m]);
      for (const [childName, child] of m.childModules) visit(child, join(name, childName));
    };
    visit(this, prefix);
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** Calls fn on every descendant and then on this module (children first, as torch.nn.Module.apply). */
  apply(fn: (m: Module) => void): this {
    for (const child of this.childModules.values()) child.apply(fn);
    fn(this);
    return this;
  }

  /** Every parameter with its full `.`-joined name; a tensor shared by several modules is listed once, as in torch. */
  namedParameters(prefix = ""): [string, Tensor][] {
    return this.collect(prefix, (m) => m.params);
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Every buffer with its full `.`-joined name (shared ones once). */
  namedBuffers(prefix = ""): [string, Tensor][] {
    return this.collect(prefix, (m) => m.buffers);
  }

  private collect(prefix: string, of: (m: Module) => Map<string, Tensor>): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const [name, m] of this.namedModules(prefix)) {
      for (const [local, t] of of(m)) {
        if (seen.has(t)) continue;
        seen.add(t);
        out.push([join(name, local), t]);
      }
    }
    return out;
  }

  /** Total elements over all parameters. */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.numel, 0);
  }

  // ---- modes ----

  /** Sets training mode on this module and all descendants. */
  train(on = true): this {
    for (const m of this.modules()) m.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  // ---- state ----

  /**
   * Parameters and buffers by full name, in PyTorch's state_dict order (per module: parameters, then buffers,
   * then children). The values are the module's own tensors: do not dispose them.
   */
  stateDict(): Map<string, Tensor> {
    const sd = new Map<string, Tensor>();
    // Every path, shared modules and tensors included, as torch's state_dict.
    const visit = (m: Module, prefix: string): void => {
      for (const [p, t] of m.params) sd.set(join(prefix, p), t);
      for (const [b, t] of m.buffers) sd.set(join(prefix, b), t);
      for (const [name, child] of m.childModules) visit(child, join(prefix, name));
    };
    visit(this, "");
    return sd;
  }

  /**
   * Copies values from sd into this module's parameters and buffers, in place and without recording gradients.
   * Shapes and dtypes must match exactly; every problem is checked before anything is copied, so a refused state
   * dict leaves the module unchanged. With strict (the default) missing and unexpected keys are errors too;
   * otherwise they are returned. The caller keeps ownership of sd's tensors.
   */
  loadStateDict(sd: Map<string, Tensor>, o: { strict?: boolean } = {}): LoadStateDictResult {
    const strict = o.strict ?? true;
    const own = this.stateDict();
    const missingKeys = [...own.keys()].filter((k) => !sd.has(k));
    const unexpectedKeys = [...sd.keys()].filter((k) => !own.has(k));
    const mismatches: string[] = [];
    for (const [key, src] of sd) {
      const dst = own.get(key);
      if (!dst) continue;
      if (src.isDisposed) {
        mismatches.push(`'${key}': the given tensor is disposed`);
        continue;
      }
      const [ds, ss] = [dst.shape, src.shape];
      if (ds.length !== ss.length || ds.some((d, i) => d !== ss[i])) {
        mismatches.push(`size mismatch for '${key}': the module has shape ${fmtShape(ds)}, the state dict has ${fmtShape(ss)}`);
      }
      if (dst.dtype !== src.dtype) {
        mismatches.push(`dtype mismatch for '${key}': the module has ${dst.dtype}, the state dict has ${src.dtype}`);
      }
    }
    if (mismatches.length > 0 || (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0))) {
      throw new StateDictError(strict ? missingKeys : [], strict ? unexpectedKeys : [], mismatches);
    }
    noGrad(() => {
      for (const [key, src] of sd) own.get(key)?.copy_(src);
    });
    return { missingKeys, unexpectedKeys };
  }

  /**
   * Moves every parameter and buffer to a device, or casts the floating-point ones to a dtype (integer buffers
   * such as num_batches_tracked keep theirs), as torch.nn.Module.to. Tensors are replaced, not changed in
   * place: references taken earlier (an optimizer's parameter list) go stale, so build optimizers afterwards.
   * Gradients are dropped when a tensor actually changes.
   */
  to(target: DType | Device): this {
    const isDevice = target === "cpu" || target.startsWith("cuda");
    return this.replaceTensors((t) => (!isDevice && !isFloating(t.dtype) ? t : t.to(target)));
  }

  /**
   * Stores 4-D parameters and buffers (convolution weights) channels-last, as PyTorch's
   * `module.to(memory_format=torch.channels_last)`: with channels-last inputs, cuDNN then runs NHWC kernels (faster
   * with bf16 on tensor cores) without a layout change per layer. Values are unchanged; replaced as in `to`.
   */
  channelsLast(): this {
    return this.replaceTensors((t) => (t.ndim === 4 && !t.isChannelsLast() ? t.channelsLast() : t));
  }

  /**
   * Replaces every parameter and buffer by `convert(t)` (a tensor returned unchanged stays). A tensor shared by
   * several modules is converted once; replaced parameters keep requiring grad; old tensors are freed.
   */
  private replaceTensors(convert: (t: Tensor) => Tensor): this {
    const replaced = new Map<Tensor, Tensor>(); // old -> new
    const convertOnce = (t: Tensor, isParam: boolean): Tensor => {
      let moved = replaced.get(t);
      if (moved === undefined) {
        const out = noGrad(() => convert(t));
        if (out === t) return t;
        moved = keep(out);
        if (isParam) moved.requiresGrad_(true);
        replaced.set(t, moved);
      }
      return moved;
    };
    for (const m of this.modules()) {
      for (const [name, t] of m.params) m.params.set(name, convertOnce(t, true));
      for (const [name, t] of m.buffers) m.buffers.set(name, convertOnce(t, false));
    }
    for (const old of replaced.keys()) old.dispose();
    return this;
  }

  /** Clears every parameter's .grad (sets it to none, as PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = undefined;
  }

  /** Frees every parameter and buffer of this module and its descendants. The module is unusable afterwards. */
  dispose(): void {
    for (const t of this.parameters()) t.dispose();
    for (const [, t] of this.namedBuffers()) t.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

const join = (prefix: string, name: string): string => (prefix === "" ? name : `${prefix}.${name}`);
