// The backbones against torchvision 0.14 (Debian's python3-torchvision, the oracle):
// (a) state-dict keys and shapes of every RegNet and ResNet torchvision ships (tests/oracle/models_structure.py,
//     built on the meta device; ours from the design, and from the built modules for the small ones);
// (b) torchvision's weights (BN statistics randomized), written to safetensors by tests/oracle/models_numerics.py,
//     load into ours and give the same eval outputs; one train step gives the same gradients and running
//     statistics; the same seed draws the same initial weights;
// (c) small-image stem, zero-init of the last BNs, numFeatures, no classifier, weight-name mapping, no leaks,
//     the model list.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadIntoModule } from "../src/io/safetensors";
import {
  type CreateModelOptions,
  MODEL_TABLE,
  RegNet,
  ResNet,
  WEIGHT_CONVENTIONS,
  createModel,
  detectConvention,
  formatModelTable,
  listModels,
  mapStateDict,
  modelStateShapes,
  renameKey,
} from "../src/models";
import { BatchNorm2d, init } from "../src/nn";
import { type Tensor, manualSeed, memory, noGrad, randn, tidy } from "../src/tensor";
import { assertClose, assertNoLeak } from "./helpers/assert";
import { type OracleResult, PYTHON, oracleTensor, runOracle } from "./helpers/oracle";
import { PACKAGE_ROOT } from "../src/util/paths";

const NO_PYTHON = fs.existsSync(PYTHON) ? false : `no oracle interpreter at ${PYTHON} (set SEERKIT_PYTHON)`;

/** Built here and compared numerically (all ≤ 1.6 GF, plus one larger model). */
const EVAL_MODELS = ["regnet_x_400mf", "regnet_y_400mf", "regnet_x_800mf", "regnet_y_800mf", "regnet_x_1_6gf", "regnet_y_1_6gf", "resnet18", "resnet50", "regnet_y_3_2gf"];
const GRAD_MODELS = ["regnet_y_400mf", "resnet18"];
const SEED = 7;

/**
 * assertClose computed with native ops (no copy into JS arrays: these tensors have millions of elements); on failure
 * falls back to assertClose for its message naming the worst element.
 */
function assertCloseNative(actual: Tensor, expected: Tensor, o: { atol: number; rtol: number; what: string }): void {
  assert.deepEqual(actual.shape, expected.shape, `${o.what}: shape`);
  const excess = tidy(() => actual.double().sub(expected.double()).abs().sub(expected.double().abs().mul(o.rtol)).max().item());
  if (!(excess <= o.atol)) assertClose(actual, expected, o);
}

const shapesOf = (sd: Map<string, Tensor>): [string, number[]][] => [...sd].map(([k, t]) => [k, t.shape]);

// ---------------------------------------------------------------------------------------------------------------
// (a) structure

test("state-dict keys and shapes equal torchvision 0.14's for every RegNet and ResNet it ships", { skip: NO_PYTHON }, () => {
  const stdout = execFileSync(PYTHON, [path.join(PACKAGE_ROOT, "tests", "oracle", "models_structure.py")], { input: '{"models": null}', encoding: "utf8", maxBuffer: 64 << 20 });
  const tv = JSON.parse(stdout) as { names: string[]; models: Record<string, [string, number[]][]> };
  assert.deepEqual([...tv.names].sort(), MODEL_TABLE.filter((e) => e.inTorchvision).map((e) => e.name).sort());
  for (const name of tv.names) {
    // From the design (no allocation: regnet_y_128gf has 645M parameters); order included.
    assert.deepEqual(modelStateShapes(name), tv.models[name], name);
  }
  // The design's list is what the modules hold (the larger models are checked through strict loads below).
  for (const name of ["regnet_x_400mf", "regnet_y_800mf", "resnet18"]) {
    using m = createModel(name);
    assert.deepEqual(shapesOf(m.stateDict()), modelStateShapes(name), name);
  }
  for (const o of [{ numClasses: 0 }, { smallImageStem: true, numClasses: 10 }]) {
    for (const name of ["regnet_y_400mf", "resnet50"]) {
      using m = createModel(name, o);
      assert.deepEqual(shapesOf(m.stateDict()), modelStateShapes(name, o), `${name} ${JSON.stringify(o)}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------------------------
// (b) numerics against torchvision

interface Numerics {
  dir: string;
  x: Tensor;
  r: Tensor;
  out: OracleResult;
}
let numerics: Numerics | undefined;

/** Runs the numerics oracle once for the tests below (inputs and files are kept for the whole file). */
function getNumerics(): Numerics {
  if (numerics) return numerics;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-models-"));
  manualSeed(11);
  const x = randn([2, 3, 64, 64]);
  const r = randn([2, 1000]);
  const out = runOracle("models_numerics.py", { x, r }, { seed: SEED, dir, eval: EVAL_MODELS, grad: GRAD_MODELS, init: GRAD_MODELS });
  numerics = { dir, x, r, out };
  return numerics;
}

process.on("exit", () => {
  if (!numerics) return;
  numerics.x.dispose();
  numerics.r.dispose();
  fs.rmSync(numerics.dir, { recursive: true, force: true });
});

/** max |t|, for scale-aware tolerances. */
const maxAbs = (t: Tensor): number => tidy(() => t.abs().max().item());

test("torchvision weights load unchanged and give the same eval outputs (features and logits, 1e-4)", { skip: NO_PYTHON }, () => {
  const { dir, x, out } = getNumerics();
  for (const name of EVAL_MODELS) {
    using m = createModel(name);
    loadIntoModule(m, path.join(dir, `${name}.safetensors`)); // strict: every key and shape must match
    m.eval();
    assertNoLeak(() => {
      tidy(() => {
        const feat = noGrad(() => m.forwardFeatures(x)); // (2, numFeatures)
        const y = noGrad(() => m.forwardHead(feat)); // (2, 1000)
        assert.deepEqual(feat.shape, [2, m.numFeatures]);
        assertClose(feat, oracleTensor(out, `feat.${name}`), { atol: 1e-4, rtol: 1e-4, what: `${name} features` });
        const ey = oracleTensor(out, `y.${name}`);
        assertClose(y, ey, { atol: 1e-4, rtol: 1e-4, what: `${name} logits` });
        assertClose(noGrad(() => m.forward(x)), ey, { atol: 1e-4, rtol: 1e-4, what: `${name} forward` });
      });
    }, `${name} eval forward`);
  }
});

test("one train-mode step gives torchvision's outputs, gradients and running statistics", { skip: NO_PYTHON }, () => {
  const { dir, x, r, out } = getNumerics();
  for (const name of GRAD_MODELS) {
    using m = createModel(name);
    loadIntoModule(m, path.join(dir, `${name}.safetensors`));
    m.train();
    const before = memory().numTensors;
    const y = tidy(() => {
      const y = m.forward(x); // (2, 1000)
      y.mul(r).sum().backward();
      return y;
    });
    assert.equal(memory().numTensors, before + 1, "only the output survives the step");
    using ey = oracleTensor(out, `ytrain.${name}`);
    assertClose(y, ey, { atol: 1e-4, rtol: 1e-4, what: `${name} train output` });
    y.dispose();
    for (const [key, p] of m.namedParameters()) {
      using g = p.grad;
      assert.ok(g, `${name}: no gradient for ${key}`);
      using e = oracleTensor(out, `grad.${name}.${key}`);
      assertCloseNative(g, e, { atol: 1e-4 * Math.max(1, maxAbs(e)), rtol: 1e-3, what: `${name} grad ${key}` });
    }
    for (const [key, b] of m.namedBuffers()) {
      using e = oracleTensor(out, `buf.${name}.${key}`);
      assertCloseNative(b, e, { atol: 1e-4, rtol: 1e-4, what: `${name} buffer ${key}` });
    }
    m.zeroGrad();
  }
});

test("the same seed draws exactly torchvision's initial weights", { skip: NO_PYTHON }, () => {
  const { out } = getNumerics();
  for (const name of GRAD_MODELS) {
    manualSeed(SEED);
    using m = createModel(name);
    for (const [key, t] of m.stateDict()) {
      using e = oracleTensor(out, `init.${name}.${key}`);
      assertCloseNative(t, e, { atol: 0, rtol: 0, what: `${name} init ${key}` });
    }
  }
});

// ---------------------------------------------------------------------------------------------------------------
// (c) options, interface, names

test("small-image stem: stride 1, no max-pool; output sizes", () => {
  using x = randn([2, 3, 32, 32]);
  const cases: [string, boolean, number[]][] = [
    ["regnet_y_400mf", false, [2, 440, 1, 1]],
    ["regnet_y_400mf", true, [2, 440, 2, 2]],
    ["resnet18", false, [2, 512, 1, 1]],
    ["resnet18", true, [2, 512, 4, 4]],
  ];
  for (const [name, smallImageStem, trunkShape] of cases) {
    using m = createModel(name, { smallImageStem, numClasses: 10 });
    m.eval();
    assertNoLeak(() => {
      using t = noGrad(() => m.forwardTrunk(x));
      assert.deepEqual(t.shape, trunkShape, `${name} small=${smallImageStem}`);
      using y = noGrad(() => m.forward(x));
      assert.deepEqual(y.shape, [2, 10]);
    });
  }
  using r = createModel("resnet18", { smallImageStem: true });
  assert.ok(r instanceof ResNet);
  assert.deepEqual(r.conv1.weight.shape, [64, 3, 3, 3]);
  using g = createModel("regnet_x_400mf", { smallImageStem: true });
  assert.ok(g instanceof RegNet);
  assert.deepEqual(g.stem.conv.stride, [1, 1]);
});

test("zeroInitLastBn zeroes exactly the last BN of each residual branch; the default keeps gamma = 1", () => {
  const last = { regnet_x_400mf: /\.f\.c\.1\.weight$/, resnet18: /^layer\d\.\d\.bn2\.weight$/, resnet50: /^layer\d\.\d\.bn3\.weight$/ };
  for (const [name, re] of Object.entries(last)) {
    for (const zeroInitLastBn of [true, false]) {
      using m = createModel(name, { zeroInitLastBn, numClasses: 0 });
      let zeroed = 0;
      for (const mod of m.modules()) {
        if (!(mod instanceof BatchNorm2d)) continue;
        const values = new Set(mod.weight!.toArray());
        if (mod.finalBn && zeroInitLastBn) {
          assert.deepEqual([...values], [0]);
          zeroed++;
        } else {
          assert.deepEqual([...values], [1]);
        }
      }
      const flagged = [...m.stateDict().keys()].filter((k) => re.test(k)).length;
      assert.equal(zeroed, zeroInitLastBn ? flagged : 0, name);
      assert.equal(flagged, m.blocks.length, name);
    }
  }
  // Zeroed branches make every block the ReLU of its shortcut: with identity shortcuts, features pass through.
  using m = createModel("resnet18", { zeroInitLastBn: true, numClasses: 0 });
  assert.ok(m instanceof ResNet);
  m.eval();
  using x = randn([1, 64, 8, 8]);
  using xr = x.relu();
  using y = noGrad(() => m.layers[0]!.forward(xr));
  assertClose(y, xr, { atol: 0, rtol: 0 });
});

test("numFeatures, forwardFeatures, forwardHead, and numClasses 0 (no classifier)", () => {
  using x = randn([3, 3, 32, 32]);
  for (const name of ["regnet_x_400mf", "regnet_y_400mf", "resnet18"]) {
    using m = createModel(name, { numClasses: 0 });
    m.eval();
    assert.equal(m.numFeatures, name === "resnet18" ? 512 : name === "regnet_y_400mf" ? 440 : 400);
    assert.ok(![...m.stateDict().keys()].some((k) => k.startsWith("fc.")));
    assertNoLeak(() => {
      using f = noGrad(() => m.forwardFeatures(x));
      using y = noGrad(() => m.forward(x));
      assert.deepEqual(f.shape, [3, m.numFeatures]);
      assertClose(y, f, { atol: 0, rtol: 0 });
    });
  }
  using c = createModel("regnet_y_400mf", { numClasses: 7 });
  assert.deepEqual(c.stateDict().get("fc.weight")!.shape, [7, 440]);
  assert.ok(c instanceof RegNet);
  using rn = createModel("ResNet-18");
  assert.ok(rn instanceof ResNet);
});

test("every parameter gets a gradient; forward and backward leak nothing", () => {
  for (const name of ["regnet_y_400mf", "resnet18"]) {
    using m = createModel(name, { numClasses: 5, smallImageStem: true });
    using x = randn([2, 3, 16, 16]);
    using bad = randn([2, 4, 16, 16]);
    const before = memory().numTensors;
    tidy(() => m.forward(x).sum().backward());
    assert.equal(memory().numTensors, before, `${name} leaked`);
    for (const [key, p] of m.namedParameters()) {
      using g = p.grad;
      assert.ok(g, `${name}: ${key} has no gradient`);
    }
    m.zeroGrad();
    // A throwing forward frees what it made.
    assert.throws(() => m.forward(bad));
    assert.equal(memory().numTensors, before, `${name} leaked on a throw`);
  }
});

test("createModel: aliases, design overrides, argument errors", () => {
  const tv = modelStateShapes("regnet_x_400mf");
  assert.deepEqual(modelStateShapes("RegNetX-400MF"), tv);
  assert.deepEqual(modelStateShapes("regnetx_004").at(-2), ["fc.weight", [1000, 400]]);
  assert.deepEqual(modelStateShapes("regnetx_004", { rounding: "pycls" }).at(-2), ["fc.weight", [1000, 384]]);
  assert.deepEqual(modelStateShapes("regnet_y_400mf", { seRatio: 0 }).filter(([k]) => k.includes(".se.")), []);
  assert.throws(() => createModel("regnet_y_400mf", { numClasses: -1 }), /Expected a non-negative integer for numClasses but received -1/);
  assert.throws(() => createModel("regnet_y_400mf", { bogus: 1 } as unknown as CreateModelOptions), /Unknown override\(s\) bogus/);
  assert.throws(() => createModel("resnet18", { depth: 3 }), /is a ResNet/);
  assert.throws(() => createModel("regnet_y_401mf"), /Unknown model 'regnet_y_401mf'.*Did you mean/);
});

test("weight names: timm, VISSL and ClassyVision keys map to ours and back", () => {
  // Known translations, from timm regnet.py (its `_filter_fn` converts torchvision and VISSL/ClassyVision keys to
  // timm's) and ClassyVision anynet.py / VISSL trunks/regnet.py (see weight_names.ts).
  const examples: Record<string, { timm: string; vissl: string; classy: string }> = {
    "stem.0.weight": { timm: "stem.conv.weight", vissl: "_feature_blocks.conv1.stem.0.weight", classy: "stem.stem.0.weight" },
    "stem.1.running_var": { timm: "stem.bn.running_var", vissl: "_feature_blocks.conv1.stem.1.running_var", classy: "stem.stem.1.running_var" },
    "trunk_output.block2.block2-0.proj.0.weight": { timm: "s2.b1.downsample.conv.weight", vissl: "_feature_blocks.res3.block2-0.proj.weight", classy: "trunk_output.block2.block2-0.proj.weight" },
    "trunk_output.block2.block2-0.proj.1.bias": { timm: "s2.b1.downsample.bn.bias", vissl: "_feature_blocks.res3.block2-0.bn.bias", classy: "trunk_output.block2.block2-0.bn.bias" },
    "trunk_output.block1.block1-0.f.a.0.weight": { timm: "s1.b1.conv1.conv.weight", vissl: "_feature_blocks.res2.block1-0.f.a.0.weight", classy: "trunk_output.block1.block1-0.f.a.0.weight" },
    "trunk_output.block3.block3-5.f.b.1.num_batches_tracked": { timm: "s3.b6.conv2.bn.num_batches_tracked", vissl: "_feature_blocks.res4.block3-5.f.b.1.num_batches_tracked", classy: "trunk_output.block3.block3-5.f.b.1.num_batches_tracked" },
    "trunk_output.block4.block4-1.f.se.fc1.bias": { timm: "s4.b2.se.fc1.bias", vissl: "_feature_blocks.res5.block4-1.f.se.excitation.0.bias", classy: "trunk_output.block4.block4-1.f.se.excitation.0.bias" },
    "trunk_output.block4.block4-1.f.se.fc2.weight": { timm: "s4.b2.se.fc2.weight", vissl: "_feature_blocks.res5.block4-1.f.se.excitation.2.weight", classy: "trunk_output.block4.block4-1.f.se.excitation.2.weight" },
    "trunk_output.block1.block1-0.f.c.0.weight": { timm: "s1.b1.conv3.conv.weight", vissl: "_feature_blocks.res2.block1-0.f.c.weight", classy: "trunk_output.block1.block1-0.f.c.weight" },
    "trunk_output.block1.block1-0.f.c.1.weight": { timm: "s1.b1.conv3.bn.weight", vissl: "_feature_blocks.res2.block1-0.f.final_bn.weight", classy: "trunk_output.block1.block1-0.f.final_bn.weight" },
    "fc.weight": { timm: "head.fc.weight", vissl: "heads.0.clf.0.weight", classy: "fc.weight" },
  };
  for (const [ours, names] of Object.entries(examples)) {
    for (const conv of ["timm", "vissl", "classy"] as const) {
      assert.equal(renameKey(ours, "torchvision", conv, "regnet"), names[conv], `${ours} -> ${conv}`);
      assert.equal(renameKey(names[conv], conv, "torchvision", "regnet"), ours, `${names[conv]} (${conv}) -> ours`);
    }
  }
  // VISSL variants: FSDP/regnet_v2 block groups, a flattened `trunk.` prefix, DDP's `module.`.
  assert.equal(renameKey("_feature_blocks.res4.block3-part1.block3-4.f.b.0.weight", "vissl", "torchvision", "regnet"), "trunk_output.block3.block3-4.f.b.0.weight");
  assert.equal(renameKey("trunk._feature_blocks.conv1.stem.0.weight", "vissl", "torchvision", "regnet"), "stem.0.weight");
  assert.deepEqual([...mapStateDict(new Map([["module.stem.conv.weight", 1], ["module.s1.b1.conv1.conv.weight", 2]])).keys()], ["stem.0.weight", "trunk_output.block1.block1-0.f.a.0.weight"]);
  // ResNets: timm uses torchvision's names; VISSL hangs them in _feature_blocks.
  assert.equal(renameKey("_feature_blocks.layer2.0.downsample.1.running_mean", "vissl", "torchvision", "resnet"), "layer2.0.downsample.1.running_mean");
  assert.equal(renameKey("layer1.0.conv1.weight", "torchvision", "timm", "resnet"), "layer1.0.conv1.weight");

  // Whole state dicts: every key of every model round-trips, and the convention is detected from the keys.
  for (const name of ["regnet_y_400mf", "regnet_x_1_6gf", "regnet_y_128gf", "resnet18", "resnet50"]) {
    const ours = new Map(modelStateShapes(name));
    for (const conv of WEIGHT_CONVENTIONS) {
      if (conv === "classy" && name.startsWith("resnet")) continue;
      const theirs = mapStateDict(ours, "torchvision", conv, { unknown: "error" });
      assert.equal(theirs.size, ours.size);
      const expected = name.startsWith("resnet") && conv === "timm" ? "torchvision" : conv; // same names
      assert.equal(detectConvention(theirs.keys()), expected, `${name} ${conv}`);
      const back = mapStateDict(theirs, "auto", "torchvision", { unknown: "error" });
      assert.deepEqual([...back], [...ours], `${name} via ${conv}`);
    }
  }

  // Unknown keys (a VISSL projection head): kept by default, dropped or refused on request; clashes are errors.
  const withHead = new Map([["_feature_blocks.conv1.stem.0.weight", 1], ["heads.0.projection_head.0.weight", 2]]);
  assert.deepEqual([...mapStateDict(withHead).keys()], ["stem.0.weight", "heads.0.projection_head.0.weight"]);
  assert.deepEqual([...mapStateDict(withHead, "auto", "torchvision", { unknown: "drop" }).keys()], ["stem.0.weight"]);
  assert.throws(() => mapStateDict(withHead, "auto", "torchvision", { unknown: "error" }), /not a regnet key in the vissl convention/);
  assert.throws(() => mapStateDict(new Map([["stem.conv.weight", 1], ["stem.0.weight", 2]]), "timm"), /both map to 'stem.0.weight'/);
  assert.throws(() => detectConvention(["foo.bar"]), /Cannot tell the naming convention/);
});

test("weight names: a timm-named and a VISSL-named state dict load into the model unchanged", () => {
  manualSeed(3);
  using src = createModel("regnet_y_400mf", { numClasses: 10 });
  using dst = createModel("regnet_y_400mf", { numClasses: 10 });
  // Distinct values everywhere, BN statistics included, so that any two same-shaped tensors swapped would show.
  for (const [, t] of src.stateDict()) if (t.dtype === "float32") init.uniform_(t, -1, 1);
  for (const conv of ["timm", "vissl", "classy"] as const) {
    const theirs = mapStateDict(src.stateDict(), "torchvision", conv); // the same tensors, renamed
    assertNoLeak(() => dst.loadStateDict(mapStateDict(theirs)));
    const want = src.stateDict();
    for (const [key, t] of dst.stateDict()) assertCloseNative(t, want.get(key)!, { atol: 0, rtol: 0, what: `${conv} ${key}` });
  }
});

test("listModels: every table entry with torchvision's parameter counts; formatModelTable", () => {
  const rows = listModels();
  assert.deepEqual(rows.map((r) => r.name), MODEL_TABLE.map((e) => e.name));
  const byName = new Map(rows.map((r) => [r.name, r]));
  // torchvision 0.14 `num_params` metadata (1000-class head).
  const tvParams: Record<string, number> = { regnet_y_400mf: 4344144, regnet_x_400mf: 5495976, regnet_y_128gf: 644812894, regnet_y_32gf: 145046770, resnet18: 11689512, resnet50: 25557032 };
  for (const [name, params] of Object.entries(tvParams)) assert.equal(byName.get(name)!.params, params, name);
  assert.equal(byName.get("resnet50")!.flops, 4089185256);
  assert.equal(byName.get("regnet_y_400mf")!.numFeatures, 440);
  assert.deepEqual(JSON.parse(JSON.stringify(rows))[0], rows[0]);
  const text = formatModelTable(rows);
  const lines = text.split("\n");
  assert.equal(lines.length, rows.length + 2);
  assert.match(lines[0]!, /params with a 1000-class head, FLOPs \(multiply-adds\) at 224x224/);
  assert.match(text, /regnet_y_400mf\s+4\.34M\s+0\.40\s+440\s+1,3,6,6\s+48,104,208,440\s+yes\s+regnety_004, RegNetY-400MF/);
  assert.match(text, /seer_regnet_10b\s+9\.\d\dB/);
});
