// Learning-rate schedules as pure functions of the iteration (no tensors): call opt.setLr(schedule(iter)) before
// each step.
//
// - warmupCosine: facebookresearch/swav main_swav.py — `np.linspace(start_warmup, base_lr, W)` for the first W
//   iterations, then `final_lr + 0.5 * (base_lr - final_lr) * (1 + cos(pi * t / (T - W))))` for t = iter - W.
// - visslWarmupCosine: VISSL's SEER/SwAV schedule, fvcore param_scheduler.py CompositeParamScheduler with
//   [LinearParamScheduler (rescaled), CosineParamScheduler (fixed)] and where = iter / T: the cosine uses the
//   global progress, so it does not restart from the peak after warmup.
// - stepDecay: torch.optim.lr_scheduler.MultiStepLR: base * gamma^(number of milestones <= iter).
// - scaleLr: linear scaling rule (Goyal et al. 2017), as VISSL infer_learning_rate; or square-root scaling.

/** The learning rate at an iteration (0-based). */
export type LrSchedule = (iter: number) => number;

function checkIter(iter: number): void {
  if (!(iter >= 0) || !Number.isFinite(iter)) throw new RangeError(`schedule: iteration must be a finite number >= 0, got ${iter}`);
}

function checkCount(what: string, n: number, min: number): void {
  if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`schedule: ${what} must be an integer >= ${min}, got ${n}`);
}

export interface WarmupCosineOptions {
  /** The peak learning rate, reached at the end of warmup. */
  baseLr: number;
  /** Total iterations T (warmup included); from T on the rate stays at finalLr. */
  totalIters: number;
  /** Warmup iterations W (default 0: cosine from the first iteration). */
  warmupIters?: number;
  /** The rate at iteration 0 when warming up (default 0, SwAV's start_warmup). */
  startLr?: number;
  /** The rate the cosine reaches at iteration T (default 0). */
  finalLr?: number;
}

/**
 * SwAV's schedule (main_swav.py): linear warmup startLr → baseLr over W iterations with numpy linspace's
 * endpoints (iteration W-1 is exactly baseLr), then a cosine from baseLr at iteration W to finalLr at iteration T.
 */
export function warmupCosine(o: WarmupCosineOptions): LrSchedule {
  const W = o.warmupIters ?? 0;
  const T = o.totalIters;
  const start = o.startLr ?? 0;
  const base = o.baseLr;
  const final = o.finalLr ?? 0;
  checkCount("warmupIters", W, 0);
  checkCount("totalIters", T, W + 1);
  // numpy.linspace(start, base, W): y[i] = i * ((base - start) / (W - 1)) + start, y[W-1] = base.
  const warmStep = W > 1 ? (base - start) / (W - 1) : 0;
  return (iter) => {
    checkIter(iter);
    if (iter < W) return iter >= W - 1 && W > 1 ? base : iter * warmStep + start;
    const t = Math.min(iter - W, T - W);
    return final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * t) / (T - W)));
  };
}

/** A cosine from baseLr at iteration 0 to finalLr at totalIters (warmupCosine without warmup). */
export function cosine(o: { baseLr: number; totalIters: number; finalLr?: number }): LrSchedule {
  return warmupCosine({ baseLr: o.baseLr, totalIters: o.totalIters, finalLr: o.finalLr ?? 0 });
}

/**
 * VISSL's SwAV/SEER schedule (fvcore CompositeParamScheduler, lengths [W/T, 1 - W/T], interval scaling
 * [rescaled, fixed], where = iter / T): linear startLr → baseLr over the warmup, then
 * `finalLr + 0.5 (baseLr - finalLr)(1 + cos(pi * iter / T))` — the cosine of the *global* progress.
 * SEER RG-256GF: startLr 0.15, baseLr 9.6, finalLr 0.0096.
 */
export function visslWarmupCosine(o: WarmupCosineOptions): LrSchedule {
  const W = o.warmupIters ?? 0;
  const T = o.totalIters;
  const start = o.startLr ?? 0;
  const base = o.baseLr;
  const final = o.finalLr ?? 0;
  checkCount("warmupIters", W, 0);
  checkCount("totalIters", T, W + 1);
  const warmLength = W / T;
  const WHERE_EPSILON = 1e-6; // fvcore CompositeParamScheduler.WHERE_EPSILON
  return (iter) => {
    checkIter(iter);
    const where = Math.min(iter / T, 1);
    if (where + WHERE_EPSILON <= warmLength) {
      const w = where / warmLength;
      return base * w + start * (1 - w);
    }
    return final + 0.5 * (base - final) * (1 + Math.cos(Math.PI * where));
  };
}

/** torch MultiStepLR: baseLr times gamma for every milestone already reached (milestones ascending). */
export function stepDecay(o: { baseLr: number; milestones: number[]; gamma?: number }): LrSchedule {
  const gamma = o.gamma ?? 0.1;
  const ms = [...o.milestones];
  ms.forEach((m, i) => {
    checkCount("milestone", m, 0);
    if (i > 0 && m <= ms[i - 1]!) throw new RangeError(`schedule: milestones must increase, got [${ms.join(", ")}]`);
  });
  return (iter) => {
    checkIter(iter);
    let k = 0;
    while (k < ms.length && ms[k]! <= iter) k++;
    return o.baseLr * gamma ** k;
  };
}

export function constant(lr: number): LrSchedule {
  return (iter) => {
    checkIter(iter);
    return lr;
  };
}

/**
 * Scales a learning rate given for `referenceBatch` (default 256) to `batchSize`: linearly (Goyal et al.; VISSL
 * `scaled_lr = base * batch / 256`), or by the square root of the ratio. SimCLR's sqrt rule `lr * sqrt(B)` is
 * `scaleLr(lr, B, { rule: "sqrt", referenceBatch: 1 })`.
 */
export function scaleLr(baseLr: number, batchSize: number, o: { referenceBatch?: number; rule?: "linear" | "sqrt" } = {}): number {
  const ref = o.referenceBatch ?? 256;
  if (!(batchSize > 0) || !(ref > 0)) throw new RangeError(`scaleLr: batch sizes must be > 0, got ${batchSize} and ${ref}`);
  const ratio = batchSize / ref;
  return (o.rule ?? "linear") === "sqrt" ? baseLr * Math.sqrt(ratio) : baseLr * ratio;
}

/** The schedule's first n values (as SwAV precomputes its lr_schedule array). */
export function lrArray(schedule: LrSchedule, n: number): Float64Array {
  checkCount("n", n, 0);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = schedule(i);
  return out;
}
