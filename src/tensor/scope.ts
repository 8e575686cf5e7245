// Deterministic release of native tensors.
//
// Every Tensor created while a tidy() scope is open is recorded in that scope. When the scope's function returns,
// each recorded tensor that is not part of the result and was not keep()-ed is freed; the result's tensors move to
// the enclosing scope. Outside any scope nothing is recorded: call dispose() (or `using`).
//
// A FinalizationRegistry frees tensors that are garbage-collected without dispose(); it is a safety net that
// tests keep at zero. Registering costs about 0.4 µs a tensor (as much as a small op), so it is armed only for
// tensors that no scope will free (those created outside any tidy(), results of the outermost tidy(), keep()-ed
// ones), and lazily: such tensors wait in a short list that is armed in bulk on the next turn of the event loop
// or when the list is full, skipping those disposed in the meantime (the common `x.op().dispose()` pattern).
import { torch } from "../native/load";
import type { Tensor } from "./tensor";

const scopes: Tensor[][] = [];
let leakedViaGc = 0;

const finalizer = new FinalizationRegistry<number>((id) => {
  leakedViaGc++;
  torch.free(id);
});

function arm(t: Tensor, id: number): void {
  finalizer.register(t, id, t);
  t.gcArmed = true;
}

const ARM_BATCH = 4096;
let toArm: Tensor[] = [];
let armScheduled = false;

function armPending(): void {
  armScheduled = false;
  const list = toArm;
  toArm = [];
  for (const t of list) if (!t.isDisposed && !t.gcArmed) arm(t, t.id);
}

function armSoon(t: Tensor): void {
  toArm.push(t);
  if (toArm.length >= ARM_BATCH) armPending();
  else if (!armScheduled) {
    armScheduled = true;
    setImmediate(armPending);
  }
}

/** Called by the Tensor constructor: records t in the innermost scope, or queues the GC safety net for it. */
export function track(t: Tensor): void {
  const top = scopes.length;
  if (top > 0) scopes[top - 1]!.push(t);
  else armSoon(t);
}

/** Called by Tensor.dispose(). */
export function release(t: Tensor, id: number): void {
  if (t.gcArmed) finalizer.unregister(t);
  torch.free(id);
}

/** Anything a tidy function may return: tensors nested in arrays and plain objects are kept. */
export type TensorContainer = Tensor | void | undefined | null | number | string | boolean | bigint | TensorContainer[] | { [k: string]: TensorContainer } | object;

function collect(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (value === null || typeof value !== "object" || depth > 8) return;
  if (isTensor(value)) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, into, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, into, depth + 1);
}

// Resolved lazily to avoid an import cycle with tensor.ts.
let TensorClass: (new (...args: never[]) => Tensor) | undefined;
export function registerTensorClass(c: new (...args: never[]) => Tensor): void {
  TensorClass = c;
}
const isTensor = (v: unknown): v is Tensor => TensorClass !== undefined && v instanceof TensorClass;

/**
 * Runs fn in a new scope and frees every tensor it created, except those it returns (which move to the
 * enclosing scope) and those marked with keep(). fn must be synchronous: a scope cannot span an await.
 */
export function tidy<R>(fn: () => R): R {
  scopes.push([]);
  let result: R;
  try {
    result = fn();
  } catch (e) {
    for (const t of scopes.pop()!) if (!t.kept) t.dispose();
    throw e;
  }
  const created = scopes.pop()!;
  if (result instanceof Promise) {
    for (const t of created) if (!t.kept) t.dispose();
    throw new Error("tidy(fn): fn returned a Promise; scopes cannot span an await. Use dispose() or `using` across awaits.");
  }
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  const parent = scopes.length > 0 ? scopes[scopes.length - 1]! : undefined;
  for (const t of created) {
    if (survivors.has(t)) {
      if (parent) parent.push(t);
      else if (!t.kept) armSoon(t);
    } else if (!t.kept) t.dispose();
  }
  return result;
}

/** Exempts t from every enclosing tidy(); the caller disposes it. Returns t. */
export function keep<T extends Tensor>(t: T): T {
  if (!t.gcArmed) arm(t, t.id);
  t.kept = true;
  return t;
}

export interface MemoryInfo {
  /** Native tensor handles alive now (parameters, buffers and everything not yet disposed). */
  numTensors: number;
  /** Tensors freed by the garbage collector because nobody disposed them. */
  leakedViaGc: number;
}

export function memory(): MemoryInfo {
  return { numTensors: torch.liveTensors(), leakedViaGc };
}
