// Grad mode: where autograd records operations. Mirrors torch.no_grad / torch.enable_grad.
import { torch } from "../native/load";

/** Runs fn with gradient recording off (restored afterwards, also on throw). */
export function noGrad<R>(fn: () => R): R {
  return withGradMode(false, fn);
}

/** Runs fn with gradient recording on, e.g. inside a noGrad region. */
export function enableGrad<R>(fn: () => R): R {
  return withGradMode(true, fn);
}

function withGradMode<R>(on: boolean, fn: () => R): R {
  const was = torch.isGradEnabled();
  torch.setGradEnabled(on);
  try {
    return fn();
  } finally {
    torch.setGradEnabled(was);
  }
}

/** `using _g = noGradGuard();` turns recording off until the end of the block. */
export function noGradGuard(): Disposable {
  const was = torch.isGradEnabled();
  torch.setGradEnabled(false);
  return { [Symbol.dispose]: () => torch.setGradEnabled(was) };
}

export const isGradEnabled = (): boolean => torch.isGradEnabled();
