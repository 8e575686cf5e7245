// The nn layer: module naming and traversal, state dicts, modes, devices/dtypes, and a small CNN checked against
// torch.nn (same weights via a safetensors file: outputs, gradients, running statistics; same seed: same init).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  AdaptiveAvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Flatten, Identity, Linear, Module, ReLU, Sequential, StateDictError, init,
} from "../src/nn";
import { saveSafetensors } from "../src/io/safetensors";
import { type Tensor, manualSeed, memory, noGrad, randn, tensor, tidy, zeros } from "../src/tensor";
import { assertClose, assertNoLeak } from "./helpers/assert";
import { oracleTensor, runOracle } from "./helpers/oracle";

/** A residual-free torchvision-style block, to get names like layer1.0.conv1.weight. */
class Block extends Module {
  readonly conv1 = this.registerModule("conv1", new Conv2d(4, 4, 3, { padding: 1, bias: false }));
  readonly bn1 = this.registerModule("bn1", new BatchNorm2d(4));
  forward(x: Tensor): Tensor {
    return tidy(() => this.bn1.forward(this.conv1.forward(x)).relu());
  }
}

class Net extends Module {
  readonly conv1 = this.registerModule("conv1", new Conv2d(3, 4, 1));
  readonly layer1 = this.registerModule("layer1", new Sequential(new Block(), new Block()));
  readonly fc = this.registerModule("fc", new Linear(4, 2));
  forward(x: Tensor): Tensor {
    return tidy(() => this.fc.forward(this.layer1.forward(this.conv1.forward(x)).mean([2, 3])));
  }
}

/** Keep in step with build() in tests/oracle/nn_cnn.py. */
const buildCnn = (): Sequential =>
  new Sequential(
    new Conv2d(3, 8, 3, { padding: 1, bias: false }), new BatchNorm2d(8), new ReLU(),
    new Conv2d(8, 6, 3, { stride: 2, padding: 2, dilation: 2, groups: 2 }), new ReLU(),
    new AdaptiveAvgPool2d(1), new Flatten(), new Linear(6, 7), new BatchNorm1d(7), new Linear(7, 5),
  );

const tmpFile = (name: string): string => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-nn-")), name);

test("parameters, buffers and children are named and ordered as in PyTorch", () => {
  assertNoLeak(() => {
    using net = new Net();
    const block = (i: number): string[] => [`layer1.${i}.conv1.weight`, `layer1.${i}.bn1.weight`, `layer1.${i}.bn1.bias`];
    assert.deepEqual(net.namedParameters().map(([n]) => n), ["conv1.weight", "conv1.bias", ...block(0), ...block(1), "fc.weight", "fc.bias"]);
    const stats = (i: number): string[] => ["running_mean", "running_var", "num_batches_tracked"].map((b) => `layer1.${i}.bn1.${b}`);
    assert.deepEqual(net.namedBuffers().map(([n]) => n), [...stats(0), ...stats(1)]);
    // state_dict order: per module its parameters, then its buffers, then its children.
    assert.deepEqual([...net.stateDict().keys()], [
      "conv1.weight", "conv1.bias",
      ...[0, 1].flatMap((i) => [...block(i), ...stats(i)]),
      "fc.weight", "fc.bias",
    ]);
    assert.deepEqual(net.namedChildren().map(([n]) => n), ["conv1", "layer1", "fc"]);
    assert.deepEqual(net.namedModules().map(([n]) => n), ["", "conv1", "layer1", "layer1.0", "layer1.0.conv1", "layer1.0.bn1", "layer1.1", "layer1.1.conv1", "layer1.1.bn1", "fc"]);
    assert.equal(net.numParameters(), 3 * 4 + 4 + 2 * (4 * 4 * 9 + 4 + 4) + 4 * 2 + 2);
    assert.ok(net.parameters().every((p) => p.requiresGrad && p.kept));
    const nbt = net.stateDict().get("layer1.0.bn1.num_batches_tracked")!;
    assert.equal(nbt.dtype, "int64");
    assert.deepEqual(nbt.shape, []);
    assert.ok(!nbt.requiresGrad);
    assert.ok(net.layer1.at(1) instanceof Block);
    assert.equal(net.layer1.length, 2);
  });
});

test("registering a name twice or a dotted name is an error", () => {
  const m = new Sequential(new ReLU());
  assert.throws(() => m.registerModule("0", new ReLU()), /'0' is already registered/);
  assert.throws(() => m.registerModule("a.b", new ReLU()), /no '\.'/);
});

test("a module shared by two parents is listed once and converted once; state dicts keep both paths", () => {
  assertNoLeak(() => {
    const shared = new Linear(2, 2);
    using net = new Sequential(shared, new ReLU(), shared);
    assert.deepEqual(net.namedParameters().map(([n]) => n), ["0.weight", "0.bias"]);
    assert.deepEqual(net.namedModules().map(([n]) => n), ["", "0", "1"]);
    assert.deepEqual([...net.stateDict().keys()], ["0.weight", "0.bias", "2.weight", "2.bias"]);
    const count = memory().numTensors;
    net.to("float64");
    assert.equal(memory().numTensors, count);
    assert.equal(shared.weight.dtype, "float64");
    assert.equal(net.stateDict().get("2.weight"), shared.weight);
  });
});

test("train() and eval() propagate to every descendant", () => {
  using net = new Net();
  assert.ok(net.modules().every((m) => m.training));
  net.eval();
  assert.ok(net.modules().every((m) => !m.training));
  net.layer1.train();
  assert.ok(!net.training && net.layer1.at(0).training && net.layer1.at(1).modules().every((m) => m.training));
});

for (const dtype of ["float64", "float32"] as const) {
  test(`a small CNN matches torch.nn in ${dtype}: train/eval outputs, gradients, running stats`, () => {
    const tol = dtype === "float64" ? { atol: 1e-10, rtol: 1e-10 } : { atol: 1e-5, rtol: 1e-5 };
    manualSeed(3);
    using net = buildCnn().to(dtype);
    // Non-trivial BN affine parameters and running statistics, so that the comparison covers them.
    noGrad(() => {
      for (const [name, t] of net.stateDict()) {
        if (/^(1|8)\.weight$/.test(name)) init.uniform_(t, 0.5, 1.5);
        else if (/^(1|8)\.bias$/.test(name) || name.endsWith("running_mean")) init.normal_(t, 0, 0.3);
        else if (name.endsWith("running_var")) init.uniform_(t, 0.5, 2);
      }
    });
    const file = tmpFile("cnn.safetensors");
    saveSafetensors(file, net.stateDict());
    using x = randn([4, 3, 9, 9], { dtype });
    using r = randn([4, 5], { dtype });
    using x2 = randn([3, 3, 9, 9], { dtype });
    const before = memory().numTensors;

    net.train();
    using yTrain = tidy(() => {
      const y = net.forward(x); // (4, 5)
      y.mul(r).sum().backward();
      return y;
    });
    net.eval();
    using yEval = noGrad(() => net.forward(x2)); // (3, 5)
    assert.equal(memory().numTensors, before + 2, "forward and backward left only their outputs");

    const ref = runOracle("nn_cnn.py", { x, r, x2 }, { mode: "train", file });
    fs.rmSync(path.dirname(file), { recursive: true });
    tidy(() => {
      assertClose(yTrain, oracleTensor(ref, "y_train"), { ...tol, what: "train-mode output" });
      assertClose(yEval, oracleTensor(ref, "y_eval"), { ...tol, what: "eval-mode output" });
      for (const [name, p] of net.namedParameters()) assertClose(p.grad!, oracleTensor(ref, `grad.${name}`), { ...tol, what: `grad of ${name}` });
      for (const [name, b] of net.namedBuffers()) {
        const expected = oracleTensor(ref, `buffer.${name}`);
        assert.equal(b.dtype, expected.dtype, name);
        assertClose(b, expected, { ...tol, what: name });
      }
    });
    assert.equal(net.stateDict().get("1.num_batches_tracked")!.item(), 1);
    assert.equal(net.stateDict().get("8.num_batches_tracked")!.item(), 1);
  });
}

test("default, pycls and torchvision inits draw what PyTorch draws with the same seed", () => {
  const schemes: Record<string, (m: Module) => void> = {
    default: () => {},
    pycls: (m) => init.pyclsInit(m),
    torchvision: (m) => init.torchvisionResNetInit(m),
  };
  for (const [scheme, apply] of Object.entries(schemes)) {
    manualSeed(11);
    using net = buildCnn();
    apply(net);
    const ref = runOracle("nn_cnn.py", {}, { mode: "init", seed: 11, scheme });
    const ours = net.stateDict();
    assert.deepEqual([...ours.keys()].sort(), Object.keys(ref).sort(), "state dict keys");
    tidy(() => {
      for (const [name, t] of ours) assertClose(t, oracleTensor(ref, name), { atol: 0, rtol: 0, what: `${scheme}: ${name}` });
    });
  }
});

test("kaiming, xavier and truncated-normal initializers have the documented spread", () => {
  manualSeed(5);
  assertNoLeak(() => {
    using w = zeros([256, 128, 3, 3]); // fan_in 1152, fan_out 2304
    const std = (t: Tensor): number => tidy(() => t.std().item());
    init.kaimingNormal_(w, { mode: "fanOut", nonlinearity: "relu" });
    assert.ok(Math.abs(std(w) / Math.sqrt(2 / 2304) - 1) < 0.02, `kaimingNormal_ std ${std(w)}`);
    init.kaimingUniform_(w); // leaky_relu with a = 0: bound sqrt(6 / fan_in)
    assert.ok(tidy(() => w.abs().max().item()) <= Math.sqrt(6 / 1152) + 1e-7);
    assert.ok(Math.abs(std(w) / Math.sqrt(2 / 1152) - 1) < 0.02, `kaimingUniform_ std ${std(w)}`);
    init.xavierUniform_(w);
    assert.ok(Math.abs(std(w) / Math.sqrt(2 / (1152 + 2304)) - 1) < 0.02, `xavierUniform_ std ${std(w)}`);
    init.truncNormal_(w, 0, 1, -0.5, 1);
    assert.ok(tidy(() => w.min().item()) >= -0.5 && tidy(() => w.max().item()) <= 1);
    using v = zeros([3]);
    assert.throws(() => init.kaimingNormal_(v), /2 or more dims, got shape \[3\]/);
  });
});

test("pycls init: conv N(0, 2/(k·k·out)), BN 1/0 (final BN 0 on request), linear N(0, 0.01²) and bias 0", () => {
  manualSeed(2);
  assertNoLeak(() => {
    const bn = new BatchNorm2d(64);
    bn.finalBn = true;
    using net = new Sequential(new Conv2d(64, 256, 3), bn, new Linear(512, 512));
    init.pyclsInit(net, { zeroInitFinalGamma: true });
    const conv = net.at(0) as Conv2d;
    const fc = net.at(2) as Linear;
    assert.ok(Math.abs(tidy(() => conv.weight.std().item()) / Math.sqrt(2 / (9 * 256)) - 1) < 0.02);
    assert.ok(Math.abs(tidy(() => fc.weight.std().item()) / 0.01 - 1) < 0.02);
    assert.deepEqual(fc.bias!.toArray(), new Array(512).fill(0));
    assert.deepEqual(bn.weight!.toArray(), new Array(64).fill(0));
    assert.deepEqual(bn.bias!.toArray(), new Array(64).fill(0));
  });
});

test("loadStateDict copies in place and names missing keys, unexpected keys, and mismatched shapes and dtypes", () => {
  assertNoLeak(() => {
    manualSeed(1);
    using src = buildCnn();
    using dst = buildCnn();
    const w0 = dst.stateDict().get("0.weight")!;
    const sd = src.stateDict();
    const original = w0.toArray();

    const without = new Map(sd);
    without.delete("1.running_mean");
    assert.throws(() => dst.loadStateDict(without), (e: Error) => e instanceof StateDictError && /missing keys: 1\.running_mean/.test(e.message));

    using extra = zeros([2]);
    const more = new Map(sd).set("head.weight", extra);
    assert.throws(() => dst.loadStateDict(more), /unexpected keys: head\.weight/);

    using wrong = zeros([5, 6]);
    assert.throws(() => dst.loadStateDict(new Map(sd).set("7.weight", wrong)), /size mismatch for '7\.weight': the module has shape \[7, 6\], the state dict has \[5, 6\]/);
    using wrongType = tensor([0], { dtype: "int32", shape: [] });
    assert.throws(() => dst.loadStateDict(new Map(sd).set("1.num_batches_tracked", wrongType)), /dtype mismatch for '1\.num_batches_tracked': the module has int64, the state dict has int32/);
    assert.deepEqual(w0.toArray(), original, "a refused state dict changes nothing");

    const result = dst.loadStateDict(more, { strict: false });
    assert.deepEqual(result, { missingKeys: [], unexpectedKeys: ["head.weight"] });
    assert.equal(dst.stateDict().get("0.weight"), w0, "loaded in place: the same tensor");
    assert.deepEqual(w0.toArray(), sd.get("0.weight")!.toArray());
    assert.ok(w0.requiresGrad && w0.isLeaf);
  });
});

test("parameters survive tidy; forward and backward free their intermediates; dispose frees everything", () => {
  const before = memory().numTensors;
  manualSeed(4);
  const net = tidy(() => buildCnn());
  assert.ok(net.parameters().every((p) => !p.isDisposed));
  using x = randn([2, 3, 8, 8]);
  assertNoLeak(() => tidy(() => { net.forward(x).sum().backward(); }), "a training step");
  assertNoLeak(() => noGrad(() => net.eval().forward(x).dispose()), "an eval forward");
  assert.ok(net.parameters().every((p) => !p.isDisposed));
  net.dispose();
  x.dispose();
  assert.equal(memory().numTensors, before);
});

test("zeroGrad clears every gradient", () => {
  using net = buildCnn();
  using x = randn([2, 3, 8, 8]);
  tidy(() => net.forward(x).sum().backward());
  assert.ok(net.parameters().every((p) => tidy(() => p.grad !== undefined)));
  net.zeroGrad();
  assert.ok(net.parameters().every((p) => p.grad === undefined));
});

test("to(dtype) casts floating parameters and buffers, keeps num_batches_tracked int64, and leaks nothing", () => {
  assertNoLeak(() => {
    using net = buildCnn();
    const count = memory().numTensors;
    net.to("float64");
    assert.equal(memory().numTensors, count);
    for (const [name, t] of net.stateDict()) assert.equal(t.dtype, name.endsWith("num_batches_tracked") ? "int64" : "float64", name);
    assert.ok(net.parameters().every((p) => p.requiresGrad && p.isLeaf && p.kept));
    net.to("cpu");
    assert.equal(memory().numTensors, count);
    using x = randn([2, 3, 8, 8], { dtype: "float64" });
    using y = net.forward(x);
    assert.equal(y.dtype, "float64");
  });
});

test("BatchNorm in eval mode uses and keeps the running statistics; the layers check their input dims", () => {
  assertNoLeak(() => {
    using bn = new BatchNorm1d(3, { momentum: null });
    using x = tensor([[1, 2, 3], [3, 6, 9]]);
    for (let i = 0; i < 2; i++) bn.forward(x).dispose();
    // momentum null: cumulative average of the batch statistics (mean [2, 4, 6], unbiased var [2, 8, 18]).
    assertClose(bn.runningMean!, [2, 4, 6]);
    assertClose(bn.runningVar!, [2, 8, 18]);
    assert.equal(bn.numBatchesTracked!.item(), 2);
    bn.eval();
    using y = bn.forward(x);
    const z = [1, 2, 3].map((d, i) => d / Math.sqrt([2, 8, 18][i]! + 1e-5)); // |x - mean| / sqrt(var + eps)
    assertClose(y, [...z.map((v) => -v), ...z]);
    assert.equal(bn.numBatchesTracked!.item(), 2, "eval mode does not count batches");
    using one = x.slice(0, 0, 1); // (1, 3)
    assert.throws(() => bn.train().forward(one), /more than 1 value per channel when training, got input size \[1, 3\]/);
    assert.equal(bn.numBatchesTracked!.item(), 2, "a refused batch is not counted");
    using bn2 = new BatchNorm2d(3);
    assert.throws(() => bn2.forward(x), /expected 4-d input/);
    using id = new Identity();
    using same = id.forward(x);
    assert.notEqual(same, x);
    assert.deepEqual(same.toArray(), x.toArray());
  });
});

test("Sequential frees intermediates and keeps its input alive", () => {
  using net = new Sequential(new Identity(), new ReLU(), new Identity(), new Flatten(0));
  using x = tensor([[-1, 2], [3, -4]]);
  const before = memory().numTensors;
  using y = net.forward(x);
  assert.equal(memory().numTensors, before + 1, "only the output is left");
  assert.deepEqual(y.toArray(), [0, 2, 3, 0]);
  assert.deepEqual(x.toArray(), [-1, 2, 3, -4]);
});
