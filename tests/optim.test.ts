// Optimizers and schedules: SGD, AdamW, LARC (apex and SimCLR styles) against PyTorch; checkpoint resume; leaks;
// schedule values in closed form.
import { before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { manualSeed, memory, randn, type Tensor, tidy, zeros } from "../src/tensor";
import {
  AdamW, type AdamWHyperparams, type BaseHyperparams, constant, cosine, isBiasOrNorm, LARC, type LARCOptions, lrArray,
  type OptimizerLike, type OptimizerStateDict, scaleLr, SGD, type SGDHyperparams, stepDecay, visslWarmupCosine, warmupCosine,
} from "../src/optim";
import { assertClose, assertNoLeak } from "./helpers/assert";
import { type OracleResult, oracleTensor, runOracle } from "./helpers/oracle";

// ---- the problem: a few float64 parameters and a fixed random loss ----

const SPECS: { name: string; shape: number[]; inLoss: boolean; zero?: boolean; zeroGrad?: boolean }[] = [
  { name: "fc.weight", shape: [4, 3], inLoss: true },
  { name: "fc.bias", shape: [3], inLoss: true },
  { name: "bn.weight", shape: [5], inLoss: true },
  { name: "conv.weight", shape: [2, 2, 3], inLoss: true },
  { name: "zero.weight", shape: [3, 2], inLoss: true, zero: true }, // ||p|| = 0 on the first step
  { name: "frozen.weight", shape: [2], inLoss: false }, // never gets a gradient
  { name: "still.weight", shape: [2, 3], inLoss: true, zeroGrad: true }, // a gradient of zeros: ||g|| = 0
];

interface Problem {
  init: Tensor[];
  A: Tensor[];
  b: Tensor[];
  c: Tensor[];
}

function makeProblem(): Problem {
  manualSeed(1234);
  const pr: Problem = { init: [], A: [], b: [], c: [] };
  for (const s of SPECS) {
    pr.init.push(s.zero ? zeros(s.shape, { dtype: "float64" }) : randn(s.shape, { dtype: "float64" }));
    // Its term of the loss is 0·p: in the graph, so the parameter gets a gradient, and that gradient is zero.
    const coefficient = (): Tensor => (s.zeroGrad ? zeros(s.shape, { dtype: "float64" }) : randn(s.shape, { dtype: "float64" }));
    pr.A.push(coefficient());
    pr.b.push(coefficient());
    pr.c.push(coefficient());
  }
  return pr;
}

function disposeAll(ts: Tensor[]): void {
  for (const t of ts) t.dispose();
}

/** Fresh leaf parameters with the problem's initial values. */
function freshParams(pr: Problem): Tensor[] {
  return pr.init.map((t) => tidy(() => t.detach().clone().requiresGrad_(true)));
}

const named = (params: Tensor[]): [string, Tensor][] => params.map((p, i) => [SPECS[i]!.name, p]);

function backwardLoss(pr: Problem, params: Tensor[]): void {
  tidy(() => {
    let total: Tensor | undefined;
    SPECS.forEach((s, i) => {
      if (!s.inLoss) return;
      const p = params[i]!;
      const term = pr.A[i]!.mul(p).sub(pr.b[i]!).pow(2).sum().mul(0.5).add(pr.c[i]!.mul(p.sin()).sum());
      total = total === undefined ? term : total.add(term);
    });
    total!.backward();
  });
}

function runSteps(opt: OptimizerLike<BaseHyperparams>, pr: Problem, params: Tensor[], lrs: number[]): void {
  for (const lr of lrs) {
    opt.setLr(lr);
    backwardLoss(pr, params);
    opt.step();
    opt.zeroGrad();
  }
}

// ---- configurations, run here and in tests/oracle/optim_steps.py ----

type Kind = "sgd" | "adamw" | "larc" | "simclr";

interface RunConfig {
  what: string;
  kind: Kind;
  lrs: number[];
  build(params: Tensor[]): OptimizerLike<BaseHyperparams>;
}

const SGD_LRS = [0.05, 0.1, 0.08, 0.03, 0.06];
const LARC_LRS = [2, 4, 3, 1, 2];
const CLIP_LRS = [0.01, 0.5, 0.02, 0.3, 0.05]; // small and large lr: both sides of min(trust / lr, 1)

function larc(params: Tensor[], sgd: Partial<SGDHyperparams>, opts: LARCOptions): LARC {
  return new LARC(new SGD(named(params), { lr: 0, ...sgd }), opts);
}

const CONFIGS: RunConfig[] = [
  { what: "SGD plain", kind: "sgd", lrs: SGD_LRS, build: (ps) => new SGD(ps, { lr: 0 }) },
  {
    what: "SGD momentum + dampening + wd, two groups (lrScale, own wd)", kind: "sgd", lrs: SGD_LRS,
    build: (ps) => new SGD(
      [{ params: ps.slice(0, 4) }, { params: ps.slice(4), momentum: 0.5, weightDecay: 0, lrScale: 0.5 }],
      { lr: 0, momentum: 0.9, dampening: 0.1, weightDecay: 1e-2 },
    ),
  },
  { what: "SGD nesterov + wd", kind: "sgd", lrs: SGD_LRS, build: (ps) => new SGD(named(ps), { lr: 0, momentum: 0.9, nesterov: true, weightDecay: 5e-4 }) },
  { what: "AdamW", kind: "adamw", lrs: SGD_LRS, build: (ps) => new AdamW(ps, { weightDecay: 0.05 }) },
  { what: "AdamW amsgrad, betas", kind: "adamw", lrs: SGD_LRS, build: (ps) => new AdamW(ps, { weightDecay: 0.1, betas: [0.8, 0.95], eps: 1e-6, amsgrad: true }) },
  { what: "LARC clip=false (SEER)", kind: "larc", lrs: LARC_LRS, build: (ps) => larc(ps, { momentum: 0.9, weightDecay: 1e-3 }, {}) },
  { what: "LARC clip=true", kind: "larc", lrs: CLIP_LRS, build: (ps) => larc(ps, { momentum: 0.9, weightDecay: 1e-2 }, { clip: true, trustCoefficient: 0.02 }) },
  { what: "LARC excludeBiasAndNorm, nesterov", kind: "larc", lrs: LARC_LRS, build: (ps) => larc(ps, { momentum: 0.9, nesterov: true, weightDecay: 1e-2 }, { excludeBiasAndNorm: true, trustCoefficient: 0.01 }) },
  { what: "LARS simclr style", kind: "simclr", lrs: LARC_LRS, build: (ps) => larc(ps, { momentum: 0.9, weightDecay: 1e-2 }, { style: "simclr", excludeBiasAndNorm: true }) },
  { what: "LARS simclr style, nesterov, no exclusions", kind: "simclr", lrs: LARC_LRS, build: (ps) => larc(ps, { momentum: 0.9, nesterov: true, weightDecay: 1e-2 }, { style: "simclr", trustCoefficient: 0.005 }) },
];

/** The optimizer's resolved groups, in torch's hyperparameter names. */
function torchGroups(opt: OptimizerLike<BaseHyperparams>, kind: Kind): { indices: number[]; lrScale: number; hyper: Record<string, unknown> }[] {
  return opt.groups.map((g) => {
    const h = g.hyper;
    let hyper: Record<string, unknown>;
    if (kind === "adamw") {
      const a = h as AdamWHyperparams;
      hyper = { weight_decay: a.weightDecay, betas: a.betas, eps: a.eps, amsgrad: a.amsgrad };
    } else {
      const s = h as SGDHyperparams;
      hyper = { weight_decay: s.weightDecay, momentum: s.momentum, dampening: s.dampening, nesterov: s.nesterov };
    }
    return { indices: [...g.indices], lrScale: h.lrScale, hyper };
  });
}

function larcArgs(opt: OptimizerLike<BaseHyperparams>): Record<string, unknown> | undefined {
  if (!(opt instanceof LARC)) return undefined;
  return {
    tc: opt.trustCoefficient, clip: opt.clip, eps: opt.eps,
    adapt: SPECS.map((_, i) => opt.isAdapted(i)), decay: SPECS.map((_, i) => opt.isDecayed(i)),
  };
}

describe("optimizers match PyTorch (5 float64 steps, lr changed every step)", () => {
  const pr = makeProblem();
  let ref: OracleResult;

  before(() => {
    const runs = CONFIGS.map((c) => {
      const ps = freshParams(pr);
      const opt = c.build(ps);
      const run = { kind: c.kind, lrs: c.lrs, groups: torchGroups(opt, c.kind), larc: larcArgs(opt) };
      opt.dispose();
      disposeAll(ps);
      return run;
    });
    const inputs: Record<string, Tensor> = {};
    SPECS.forEach((_, i) => {
      inputs[`p${i}`] = pr.init[i]!;
      inputs[`A${i}`] = pr.A[i]!;
      inputs[`b${i}`] = pr.b[i]!;
      inputs[`c${i}`] = pr.c[i]!;
    });
    ref = runOracle("optim_steps.py", inputs, { names: SPECS.map((s) => s.name), inLoss: SPECS.map((s) => s.inLoss), runs });
  });

  CONFIGS.forEach((c, k) => {
    test(c.what, () => {
      const ps = freshParams(pr);
      const opt = c.build(ps);
      runSteps(opt, pr, ps, c.lrs);
      assert.equal(opt.stepCount, c.lrs.length);
      ps.forEach((p, i) => {
        using expected = oracleTensor(ref, `r${k}_p${i}`);
        assertClose(p, expected, { atol: 1e-10, rtol: 0, what: `${c.what}: ${SPECS[i]!.name}` });
      });
      // The frozen parameter never moved, and every other one did (the zero-gradient one moves by weight decay
      // alone, depending on the optimizer: the oracle comparison above covers it).
      ps.forEach((p, i) => {
        if (SPECS[i]!.zeroGrad) return;
        const moved = tidy(() => p.sub(pr.init[i]!).abs().max().item()) > 0;
        assert.equal(moved, SPECS[i]!.inLoss, `${c.what}: ${SPECS[i]!.name} moved=${moved}`);
      });
      opt.dispose();
      disposeAll(ps);
    });
  });
});

describe("state dict: resume is bit-identical, no leaks", () => {
  const pr = makeProblem();
  const resumable = CONFIGS.filter((c) => /momentum|amsgrad|AdamW$|SEER|simclr style$/.test(c.what));

  for (const c of resumable) {
    test(`resume after 2 of 5 steps: ${c.what}`, () => {
      const base = memory().numTensors;
      // Uninterrupted.
      const straight = freshParams(pr);
      const o1 = c.build(straight);
      runSteps(o1, pr, straight, c.lrs);
      o1.dispose();

      // Interrupted: 2 steps, save (parameters and optimizer state go through plain data), 3 more on new objects.
      const first = freshParams(pr);
      const o2 = c.build(first);
      runSteps(o2, pr, first, c.lrs.slice(0, 2));
      const sd = o2.stateDict();
      const saved = {
        step: sd.step,
        groups: JSON.parse(JSON.stringify(sd.groups)) as OptimizerStateDict<BaseHyperparams>["groups"],
        state: new Map([...sd.state].map(([k, t]) => [k, t.clone()] as const)),
        params: first.map((p) => tidy(() => p.detach().clone())),
      };
      assert.ok(saved.state.size > 0, "the state dict has state");
      o2.dispose();
      disposeAll(first);

      const resumed = saved.params.map((p) => p.requiresGrad_(true));
      const o3 = c.build(resumed);
      // Scramble the lr first: loadStateDict must restore it (the next setLr overrides it anyway).
      o3.setLr(123);
      o3.loadStateDict(saved);
      assert.equal(o3.stepCount, 2);
      assert.equal(o3.lr, c.lrs[1]! * o3.groups[0]!.hyper.lrScale);
      for (const t of saved.state.values()) t.dispose(); // loadStateDict copied them
      runSteps(o3, pr, resumed, c.lrs.slice(2));
      assert.equal(o3.stepCount, 5);
      straight.forEach((p, i) => assert.deepEqual(resumed[i]!.toArray(), p.toArray(), `${c.what}: ${SPECS[i]!.name} differs after resume`));
      o3.dispose();
      disposeAll(straight);
      disposeAll(resumed);
      assert.equal(memory().numTensors, base, "all tensors freed");
    });
  }

  for (const c of CONFIGS) {
    test(`no tensor leaks per step once state exists: ${c.what}`, () => {
      const ps = freshParams(pr);
      const opt = c.build(ps);
      runSteps(opt, pr, ps, c.lrs.slice(0, 2));
      assertNoLeak(() => runSteps(opt, pr, ps, c.lrs.slice(2)), c.what);
      assertNoLeak(() => {
        const sd = opt.stateDict();
        opt.loadStateDict(sd);
      }, `${c.what} loadStateDict`);
      opt.dispose();
      disposeAll(ps);
    });
  }

  test("dispose frees the state; using a disposed optimizer throws", () => {
    const ps = freshParams(pr);
    const before = memory().numTensors;
    const opt = new AdamW(ps, { amsgrad: true });
    runSteps(opt, pr, ps, [0.1]);
    // 6 parameters with gradients × (step, exp_avg, exp_avg_sq, max_exp_avg_sq)
    assert.equal(memory().numTensors - before, 6 * 4);
    assert.deepEqual([...opt.stateDict().state.keys()].slice(0, 4), ["0.step", "0.exp_avg", "0.exp_avg_sq", "0.max_exp_avg_sq"]);
    opt.dispose();
    assert.equal(memory().numTensors, before);
    assert.throws(() => opt.step(), /after dispose/);
    disposeAll(ps);
  });
});

describe("parameter groups and validation", () => {
  const pr = makeProblem();

  test("groups: defaults, overrides, lrScale, names, global indices", () => {
    const ps = freshParams(pr);
    const opt = new SGD(
      [{ params: named(ps.slice(0, 2)) }, { params: ps.slice(2, 4), names: ["a", "b"], lrScale: 0.1 }, { params: ps.slice(4), lr: 7 }],
      { lr: 2, momentum: 0.9 },
    );
    assert.deepEqual(opt.groups.map((g) => g.hyper.lr), [2, 0.2, 7]);
    assert.deepEqual(opt.groups.map((g) => [...g.names]), [["fc.weight", "fc.bias"], ["a", "b"], ["4", "5", "6"]]);
    assert.deepEqual(opt.groups.map((g) => [...g.indices]), [[0, 1], [2, 3], [4, 5, 6]]);
    opt.setLr(10);
    assert.deepEqual(opt.groups.map((g) => g.hyper.lr), [10, 1, 10]);
    assert.equal(opt.numParams, 7);
    opt.dispose();
    disposeAll(ps);
  });

  test("zeroGrad drops gradients", () => {
    const ps = freshParams(pr);
    const opt = new SGD(ps, { lr: 0.1 });
    backwardLoss(pr, ps);
    assert.ok(ps.slice(0, 5).every((p) => tidy(() => p.grad !== undefined)));
    opt.zeroGrad();
    assert.ok(ps.every((p) => p.grad === undefined));
    opt.dispose();
    disposeAll(ps);
  });

  test("bad options are errors", () => {
    const ps = freshParams(pr);
    assert.throws(() => new SGD([], { lr: 0.1 }), /empty/);
    assert.throws(() => new SGD(ps, { lr: -1 }), /lr must be/);
    assert.throws(() => new SGD(ps, { lr: 0.1, nesterov: true }), /nesterov/);
    assert.throws(() => new SGD([ps[0]!, ps[0]!], { lr: 0.1 }), /more than once/);
    assert.throws(() => new AdamW(ps, { betas: [0.9, 1] }), /betas/);
    // A misspelt group option is caught rather than ignored.
    assert.throws(() => new SGD([{ params: ps, weight_decay: 0.1 } as unknown as { params: Tensor[] }], { lr: 0.1 }), /unknown option 'weight_decay'/);
    assert.throws(() => new LARC(new SGD(ps, { lr: 0.1 }), { style: "simclr", clip: true }), /clip/);
    assert.throws(() => new LARC(new SGD(ps, { lr: 0.1, momentum: 0.9, dampening: 0.1 }), { style: "simclr" }), /style 'simclr' has no dampening/);
    disposeAll(ps);
  });

  test("loadStateDict rejects a state that does not fit", () => {
    const ps = freshParams(pr);
    const a = new SGD(ps, { lr: 0.1, momentum: 0.9 });
    runSteps(a, pr, ps, [0.1]);
    const b = new SGD([{ params: ps.slice(0, 3) }, { params: ps.slice(3) }], { lr: 0.1, momentum: 0.9 });
    assert.throws(() => b.loadStateDict(a.stateDict()), /param groups/);
    const c = new SGD(ps.slice(0, 5), { lr: 0.1, momentum: 0.9 });
    assert.throws(() => c.loadStateDict(a.stateDict()), /parameters/);
    const swapped = [ps[1]!, ps[0]!, ...ps.slice(2)];
    const d = new SGD(swapped, { lr: 0.1, momentum: 0.9 });
    assert.throws(() => d.loadStateDict(a.stateDict()), /shape/);
    for (const o of [a, b, c, d]) o.dispose();
    disposeAll(ps);
  });

  test("LARC exclusions: isBiasOrNorm and custom predicates", () => {
    const ps = freshParams(pr);
    const swav = new LARC(new SGD(named(ps), { lr: 1, momentum: 0.9 }));
    assert.ok(SPECS.every((_, i) => swav.isAdapted(i) && swav.isDecayed(i)), "SwAV default: no exclusions");
    const simclr = new LARC(new SGD(named(ps), { lr: 1 }), { excludeBiasAndNorm: true });
    assert.deepEqual(SPECS.map((_, i) => simclr.isAdapted(i)), [true, false, false, true, true, false, true]);
    const custom = new LARC(new SGD(named(ps), { lr: 1 }), { excludeFromWeightDecay: (n) => n.startsWith("conv") });
    assert.deepEqual(SPECS.map((_, i) => custom.isDecayed(i)), [true, true, true, false, true, true, true]);
    assert.ok(SPECS.every((_, i) => custom.isAdapted(i)));
    assert.equal(isBiasOrNorm("layer1.0.bn2.weight", ps[0]!), true);
    assert.equal(isBiasOrNorm("layer1.0.conv2.weight", ps[0]!), false);
    for (const o of [swav, simclr, custom]) o.dispose();
    disposeAll(ps);
  });
});

describe("buckets: mixed dtypes and late gradients step as one optimizer per parameter would", () => {
  // Float64 and float32 parameters in one group make two buckets; "late" has no gradient for the first two steps,
  // so its momentum buffer is created while the others' already exist. Each run is compared with the same
  // options applied to every parameter by an optimizer of its own (one-parameter buckets), exactly.
  const dtypes = ["float64", "float32", "float64", "float32"] as const;
  const names = ["fc.weight", "fc.bias", "late.weight", "conv.weight"];
  const shapes = [[4, 3], [3], [5], [2, 2, 3]];
  const LRS = [0.5, 1, 0.8, 0.3, 0.6];
  const builds: [string, (ps: Tensor[], ns: string[]) => OptimizerLike<BaseHyperparams>][] = [
    ["SGD momentum + dampening + wd", (ps) => new SGD(ps, { lr: 0, momentum: 0.9, dampening: 0.1, weightDecay: 1e-2 })],
    ["SGD nesterov + wd", (ps) => new SGD(ps, { lr: 0, momentum: 0.9, nesterov: true, weightDecay: 1e-2 })],
    ["LARC (SEER)", (ps, ns) => new LARC(new SGD([{ params: ps, names: ns }], { lr: 0, momentum: 0.9, weightDecay: 1e-3 }))],
    ["LARC clip, excludeBiasAndNorm", (ps, ns) => new LARC(new SGD([{ params: ps, names: ns }], { lr: 0, momentum: 0.9, weightDecay: 1e-2 }), { clip: true, excludeBiasAndNorm: true, trustCoefficient: 0.02 })],
    ["LARS simclr style", (ps, ns) => new LARC(new SGD([{ params: ps, names: ns }], { lr: 0, momentum: 0.9, weightDecay: 1e-2 }), { style: "simclr", excludeBiasAndNorm: true })],
  ];

  function run(build: (ps: Tensor[], ns: string[]) => OptimizerLike<BaseHyperparams>, together: boolean): number[][] {
    manualSeed(77);
    const ps = shapes.map((s, i) => randn(s, { dtype: dtypes[i] }).requiresGrad_(true));
    const targets = shapes.map((s, i) => randn(s, { dtype: dtypes[i] }));
    const opts = together ? [build(ps, names)] : ps.map((p, i) => build([p], [names[i]!]));
    LRS.forEach((lr, step) => {
      for (const o of opts) o.setLr(lr);
      tidy(() => {
        let loss: Tensor | undefined;
        ps.forEach((p, i) => {
          if (names[i] === "late.weight" && step < 2) return;
          const term = p.sub(targets[i]!).pow(2).sum().add(p.sin().sum()).to("float64");
          loss = loss === undefined ? term : loss.add(term);
        });
        loss!.backward();
      });
      for (const o of opts) {
        o.step();
        o.zeroGrad();
      }
    });
    const out = ps.map((p) => p.toArray());
    for (const o of opts) o.dispose();
    disposeAll([...ps, ...targets]);
    return out;
  }

  for (const [what, build] of builds) {
    test(what, () => {
      const before = memory().numTensors;
      const together = run(build, true);
      const apart = run(build, false);
      together.forEach((v, i) => assert.deepEqual(v, apart[i], `${what}: ${names[i]} (${dtypes[i]})`));
      assert.equal(memory().numTensors, before, "all tensors freed");
    });
  }
});

describe("learning-rate schedules", () => {
  const close = (a: number, b: number, what: string, tol = 1e-12): void => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

  test("scaleLr: SEER's 0.3 per 256 at 8192 and at one node's 128", () => {
    assert.equal(scaleLr(0.3, 8192), 9.6);
    assert.equal(scaleLr(0.3, 128), 0.15);
    assert.equal(scaleLr(4.8, 4096, { rule: "sqrt", referenceBatch: 256 }), 19.2);
    close(scaleLr(0.075, 4096, { rule: "sqrt", referenceBatch: 1 }), 4.8, "SimCLR sqrt");
  });

  test("warmupCosine matches SwAV's numpy schedule", () => {
    // SwAV swav_800ep: 0.3 → 4.8 over 10 epochs, cosine to 0.0048; with 5 iterations per epoch, 20 epochs.
    const N = 5;
    const f = warmupCosine({ startLr: 0.3, baseLr: 4.8, finalLr: 0.0048, warmupIters: 10 * N, totalIters: 20 * N });
    assert.equal(f(0), 0.3);
    close(f(1), 0.3 + 4.5 / 49, "warmup step 1");
    assert.equal(f(49), 4.8); // linspace's endpoint
    assert.equal(f(50), 4.8); // cosine t = 0
    close(f(75), 0.0048 + 0.5 * (4.8 - 0.0048), "cosine midpoint");
    close(f(99), 0.0048 + 0.5 * (4.8 - 0.0048) * (1 + Math.cos((Math.PI * 49) / 50)), "last");
    close(f(100), 0.0048, "at totalIters");
    close(f(1e6), 0.0048, "after totalIters");
    const arr = lrArray(f, 100);
    assert.equal(arr.length, 100);
    assert.ok(arr.slice(50).every((v, i, a) => i === 0 || v <= a[i - 1]!), "cosine is non-increasing");
    // No warmup: the cosine starts at the peak.
    const g = cosine({ baseLr: 0.6, finalLr: 0.0006, totalIters: 10 });
    assert.equal(g(0), 0.6);
    close(g(5), 0.0006 + 0.5 * (0.6 - 0.0006), "midpoint");
    assert.throws(() => warmupCosine({ baseLr: 1, warmupIters: 10, totalIters: 10 }), /totalIters/);
    assert.throws(() => f(-1), /iteration/);
  });

  test("visslWarmupCosine: SEER RG-256GF (0.15 → 9.6, cosine of global progress to 0.0096)", () => {
    const base = scaleLr(0.3, 8192);
    const final = base * (0.0048 / 4.8);
    const T = 122_000;
    const W = 8_000;
    const f = visslWarmupCosine({ startLr: 0.15, baseLr: base, finalLr: final, warmupIters: W, totalIters: T });
    assert.equal(f(0), 0.15);
    close(f(W / 2), (0.15 + 9.6) / 2, "half-way through warmup");
    close(f(W - 1), 9.6 * ((W - 1) / W) + 0.15 / W, "last warmup iteration");
    // First cosine iteration: continues from the global progress W/T, not from the peak.
    const atW = final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * W) / T));
    close(f(W), atW, "first cosine iteration");
    assert.ok(f(W) < 9.6 && f(W) > 0.98 * 9.6, `just below the peak: ${f(W)}`);
    close(f(T / 2), final + 0.5 * (base - final), "cosine midpoint");
    close(f(T), 0.0096, "end");
    close(f(2 * T), 0.0096, "after the end");
  });

  test("stepDecay and constant", () => {
    const f = stepDecay({ baseLr: 0.01, milestones: [8, 16, 24], gamma: 0.1 });
    assert.equal(f(0), 0.01);
    assert.equal(f(7), 0.01);
    close(f(8), 0.001, "first milestone");
    close(f(16), 1e-4, "second");
    close(f(100), 1e-5, "after all");
    assert.throws(() => stepDecay({ baseLr: 1, milestones: [5, 5] }), /increase/);
    assert.equal(constant(0.3)(1234), 0.3);
  });
});
