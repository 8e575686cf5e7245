// CUDA: the same numbers on the GPU as on the CPU (tensors, a RegNetY trunk forward and backward, optimizers,
// batched augmentations, kNN), bf16 autocast and channels-last, pinned non-blocking copies, and no leaks on either
// side. The CPU results are the oracle; TF32 is off so float32 differences are only summation order.
// Every test here is skipped, with the reason, when libtorch sees no CUDA device (CPU CI).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { drawBatchPhotometric, SWAV_MULTICROP } from "../src/data/multicrop";
import { applyPhotometric_ } from "../src/data/transforms";
import { parseGpuAnchorLine, runStepBench } from "../src/bench/step_bench";
import { knnClassify } from "../src/eval/knn";
import { createModel } from "../src/models/registry";
import { BatchNorm2d, Conv2d, F, Sequential } from "../src/nn";
import { LARC, SGD } from "../src/optim";
import { ProjectionHead, SwAV, SwAVPrototypes } from "../src/ssl";
import { resolvePretrainConfig } from "../src/train/pretrain";
import { pretrain } from "../src/train/trainer";
import {
  CudaGraph, cudaAvailable, cudaMemory, cudaSynchronize, keep, manualSeed, noGrad, randint, randn, setCudaBackend, setCudaDevice, tensor, tidy, withAutocast, type Tensor,
} from "../src/tensor";
import { assertClose, assertNoLeak } from "./helpers/assert";

const skip = cudaAvailable() ? false : "no CUDA device (libtorch sees none)";
const DEV = "cuda:0" as const;

if (cudaAvailable()) setCudaBackend({ cudnnBenchmark: false, allowTf32: false });

test("cuda: tensors round-trip and elementwise, matmul, conv and reductions match the CPU", { skip }, () => {
  assertNoLeak(() => tidy(() => {
    manualSeed(0);
    const x = randn([4, 3, 17, 19]);
    const w = randn([8, 3, 3, 3]);
    const g = x.to(DEV);
    assert.equal(g.device, DEV);
    assertClose(g.cpu(), x, { atol: 0, rtol: 0, what: "round trip" });
    assertClose(F.conv2d(g, w.to(DEV), null, { padding: 1 }).cpu(), F.conv2d(x, w, null, { padding: 1 }), { atol: 1e-4, rtol: 1e-4, what: "conv2d" });
    const m = randn([64, 33]);
    assertClose(m.to(DEV).matmul(m.to(DEV).t()).cpu(), m.matmul(m.t()), { atol: 1e-4, rtol: 1e-4, what: "matmul" });
    assertClose(F.softmax(g, 1).sum([2, 3]).cpu(), F.softmax(x, 1).sum([2, 3]), { atol: 1e-4, rtol: 1e-5, what: "softmax+sum" });
  }), "cuda tensors");
});

test("cuda: a RegNetY-400MF forward and backward equal the CPU's (float32)", { skip }, () => {
  manualSeed(0);
  using cpuModel = createModel("regnet_y_400mf", { numClasses: 10 });
  using gpuModel = createModel("regnet_y_400mf", { numClasses: 10 });
  gpuModel.loadStateDict(cpuModel.stateDict());
  gpuModel.to(DEV);
  assertNoLeak(() => tidy(() => {
    const x = randn([4, 3, 64, 64]);
    const y = randint(0, 10, [4]);
    const lossCpu = F.crossEntropy(cpuModel.forward(x), y);
    const lossGpu = F.crossEntropy(gpuModel.forward(x.to(DEV)), y.to(DEV));
    lossCpu.backward();
    lossGpu.backward();
    assertClose(lossGpu.cpu(), lossCpu, { atol: 1e-4, rtol: 1e-4, what: "loss" });
    const gpuGrads = new Map(gpuModel.namedParameters());
    for (const [name, p] of cpuModel.namedParameters()) {
      assertClose(gpuGrads.get(name)!.grad!.cpu(), p.grad!, { atol: 2e-4, rtol: 2e-3, what: `grad ${name}` });
    }
    cpuModel.zeroGrad();
    gpuModel.zeroGrad();
  }), "regnet on cuda");
});

test("cuda: SGD and LARC steps equal the CPU's (foreach ops: multi-tensor kernels and per-tensor broadcasts on the GPU)", { skip }, () => {
  assertNoLeak(() => tidy(() => {
    manualSeed(1);
    // Several shapes in one bucket, and a zero parameter (LARC skips its trust ratio and weight decay).
    const shapes = [[32, 16], [16], [8, 4, 3, 3], [5]];
    const init = shapes.map((s, i) => (i === 3 ? randn(s).mul(0) : randn(s)));
    const grads = [0, 1, 2].map(() => shapes.map((s) => randn(s)));
    const configs: [string, (ps: Tensor[]) => import("../src/optim").OptimizerLike][] = [
      ["SGD nesterov + wd", (ps) => new SGD(ps, { lr: 0.3, momentum: 0.9, nesterov: true, weightDecay: 1e-2 })],
      ["LARC clip", (ps) => new LARC(new SGD(ps, { lr: 0.3, momentum: 0.9, weightDecay: 1e-4 }), { trustCoefficient: 0.001, clip: true })],
      ["LARS simclr", (ps) => new LARC(new SGD(ps, { lr: 0.3, momentum: 0.9, weightDecay: 1e-4 }), { style: "simclr", excludeBiasAndNorm: true })],
    ];
    for (const [what, build] of configs) {
      const run = (device: "cpu" | typeof DEV): Tensor[] => {
        const ps = init.map((t) => keep(t.to(device).requiresGrad_(true)));
        const opt = build(ps);
        for (const gs of grads) {
          ps.forEach((p, i) => (p.grad = gs[i]!.to(device)));
          opt.step();
        }
        opt.dispose();
        const out = ps.map((p) => p.detach().cpu());
        for (const p of ps) p.dispose();
        return out;
      };
      const gpu = run(DEV);
      run("cpu").forEach((want, i) => assertClose(gpu[i]!, want, { atol: 1e-6, rtol: 1e-5, what: `${what}: parameter ${i}` }));
    }
  }), "optimizers on cuda");
});

test("cuda: SwAV's batched photometric chain gives the CPU's pixels", { skip }, () => {
  assertNoLeak(() => tidy(() => {
    manualSeed(2);
    const c = SWAV_MULTICROP;
    const keys = Array.from({ length: 6 }, (_, i) => ({ seed: 0, epoch: 0, index: i, salt: 0 }));
    const params = drawBatchPhotometric(c, keys)[0]!;
    const n = c.crops[0]!.count * keys.length;
    const x = randn([n, 3, 48, 48]).sigmoid();
    const onCpu = x.clone();
    const onGpu = x.to(DEV);
    applyPhotometric_(onCpu, params, c);
    applyPhotometric_(onGpu, params, c);
    assertClose(onGpu.cpu(), onCpu, { atol: 1e-4, rtol: 1e-4, what: "augmented crops" });
  }), "augmentations on cuda");
});

test("cuda: kNN classification gives the CPU's predictions", { skip }, () => {
  assertNoLeak(() => tidy(() => {
    manualSeed(3);
    const train = F.normalize(randn([500, 32]), { dim: 1 });
    const trainLabels = randint(0, 5, [500]);
    const test_ = F.normalize(randn([100, 32]), { dim: 1 });
    const testLabels = randint(0, 5, [100]);
    const cpu = knnClassify(train, trainLabels, test_, testLabels, { k: 20, temperature: 0.07 });
    const gpu = knnClassify(train.to(DEV), trainLabels.to(DEV), test_.to(DEV), testLabels.to(DEV), { k: 20, temperature: 0.07 });
    assert.equal(gpu.top1, cpu.top1);
    assert.deepEqual(Array.from(gpu.predictions), Array.from(cpu.predictions));
  }), "knn on cuda");
});

test("cuda: bf16 autocast runs convolutions in bf16, keeps the loss float32 and close to float32's", { skip }, () => {
  manualSeed(4);
  using swav = new SwAV(createModel("regnet_y_400mf", { numClasses: 0 }), {
    numCrops: [2, 2],
    head: new ProjectionHead([440, 512, 128], { batchNorm: true }),
    prototypes: new SwAVPrototypes(128, 300, { frozenUntilStep: 0 }),
    loss: { sinkhornIterations: 3, epsilon: 0.05, temperature: 0.1 },
  });
  swav.to(DEV);
  assertNoLeak(() => tidy(() => {
    const crops = [randn([8, 3, 64, 64], { device: DEV }), randn([8, 3, 32, 32], { device: DEV })];
    const conv = new Conv2d(3, 4, 3);
    conv.to(DEV);
    const y = withAutocast("bfloat16", () => conv.forward(crops[0]!));
    assert.equal(y.dtype, "bfloat16", "conv2d inside autocast");
    assert.equal(conv.forward(crops[0]!).dtype, "float32", "autocast is off again outside the region");
    conv.dispose();
    const full = noGrad(() => swav.forward(crops).loss.item());
    const loss = withAutocast("bfloat16", () => swav.forward(crops).loss);
    assert.equal(loss.dtype, "float32", "the SwAV loss under autocast");
    assert.ok(Number.isFinite(loss.item()));
    assert.ok(Math.abs(loss.item() - full) < 0.05 * Math.abs(full), `bf16 loss ${loss.item()} vs fp32 ${full}`);
    loss.backward();
    for (const p of swav.parameters()) {
      if (p.grad) assert.equal(p.grad.dtype, "float32", "parameter grads stay float32");
    }
    swav.zeroGrad();
  }), "autocast step");
});

test("cuda: channels-last weights and inputs give the same outputs", { skip }, () => {
  manualSeed(5);
  using a = createModel("regnet_y_400mf", { numClasses: 10 });
  using b = createModel("regnet_y_400mf", { numClasses: 10 });
  b.loadStateDict(a.stateDict());
  a.to(DEV).eval();
  b.to(DEV).channelsLast().eval();
  assertNoLeak(() => tidy(() => {
    const x = randn([4, 3, 64, 64], { device: DEV });
    assertClose(b.forward(x.channelsLast()).cpu(), a.forward(x).cpu(), { atol: 1e-4, rtol: 1e-3, what: "logits" });
  }), "channels-last");
});

test("cuda: pinned non-blocking copies arrive intact; memory returns to where it was", { skip }, () => {
  cudaSynchronize();
  const before = cudaMemory(DEV).allocated;
  assertNoLeak(() => tidy(() => {
    const x = randn([1024, 1024]);
    const g = x.pinMemory().to(DEV, { nonBlocking: true });
    const back = g.mul(2).to("cpu");
    assertClose(back, x.mul(2), { atol: 0, rtol: 0, what: "pinned round trip" });
  }), "pinned copies");
  cudaSynchronize();
  if (!Number.isNaN(before)) assert.equal(cudaMemory(DEV).allocated, before, "CUDA bytes allocated after the scope"); // NaN: no statistics in this build
});

/** Short-run overrides: a small real image sample, a few iterations, a small kNN monitor. */
function shortRun(data: string, extra: string[]): string[] {
  return [
    `data.source=${data}/train`, "data.limit=256", "schedule.iterations=8", "optim.warmupIters=2", "run.checkpointEvery=4",
    "swav.queueLength=0", `knn.trainSource=${data}/train`, `knn.testSource=${data}/test`, "knn.trainSamples=200", "knn.testSamples=100",
    ...extra,
  ];
}

test("cuda: a short SwAV run with bf16 autocast and channels-last trains, checkpoints, and resumes its finished run", { skip }, async () => {
  // scripts/gpu-check.sh unpacks a CIFAR-10 sample to SEERKIT_GPU_DATA; elsewhere the built-in set.
  const data = process.env.SEERKIT_GPU_DATA ?? "builtin:cifar10";
  const { config } = resolvePretrainConfig("swav-cifar-tiny", shortRun(data, ["run.device=cuda", "run.precision=bf16", "run.channelsLast=true"]));
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-cuda-run-"));
  const quiet = { outDir: out, progress: false, handleSignals: false, log: () => {} };
  const r = await pretrain({ config, ...quiet });
  assert.equal(r.status, "completed");
  assert.equal(r.step, 8);
  assert.ok(Number.isFinite(r.lastLoss!), `last loss ${r.lastLoss}`);
  assert.ok(r.knnRandomInit! > 0 && r.knnFinal! > 0, "the kNN monitor ran on the GPU trunk");
  assert.ok(fs.existsSync(r.backboneFile!));
  const again = await pretrain({ config, ...quiet }); // resumes from the last checkpoint: nothing left to do
  assert.equal(again.resumedFrom, 8);
  fs.rmSync(out, { recursive: true });
});

test("cuda: a training step captured as a CUDA graph and replayed equals the same steps run eagerly", { skip }, () => {
  manualSeed(3);
  // Two identical replicas: one trained eagerly, one by replaying its captured step on new data copied in.
  const make = (): Sequential => new Sequential(new Conv2d(3, 8, 3, { padding: 1 }), new BatchNorm2d(8));
  using eager = make();
  using graphed = make();
  graphed.loadStateDict(eager.stateDict());
  eager.to(DEV);
  graphed.to(DEV);
  const batches = Array.from({ length: 5 }, () => keep(randn([4, 3, 8, 8], { device: DEV })));
  const sgd = (m: Sequential): SGD => new SGD(m.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
  const optEager = sgd(eager);
  const optGraphed = sgd(graphed);
  const stepOn = (m: Sequential, opt: SGD, x: Tensor): Tensor =>
    tidy(() => {
      const y = m.forward(x);
      const loss = y.mul(y).mean();
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss;
    });
  const input = keep(batches[0]!.clone()); // the graph's static input
  const losses: number[] = [];
  // Batch 0: an eager warm-up step on both (momentum buffers, cuDNN handles). Batch 1: the eager model's step, and
  // the graphed model's warm-up step that capture() runs on its capture stream before recording.
  for (let i = 0; i < 2; i++) losses.push(tidy(() => stepOn(eager, optEager, batches[i]!).item()));
  tidy(() => stepOn(graphed, optGraphed, input).dispose());
  input.copy_(batches[1]!);
  let loss: Tensor | undefined;
  using graph = CudaGraph.capture(DEV, () => {
    loss?.dispose(); // the warm-up step's
    loss = keep(stepOn(graphed, optGraphed, input)); // the static output, rewritten by every replay
  });
  const replayed: number[] = [];
  for (let i = 2; i < batches.length; i++) {
    losses.push(tidy(() => stepOn(eager, optEager, batches[i]!).item()));
    input.copy_(batches[i]!);
    graph.replay();
    replayed.push(loss!.item());
  }
  assertClose(tensor(replayed), tensor(losses.slice(2)), { atol: 1e-6, rtol: 1e-5, what: "losses of the replayed steps" });
  const eagerParams = new Map(eager.namedParameters());
  for (const [name, p] of graphed.namedParameters()) assertClose(p.cpu(), eagerParams.get(name)!.cpu(), { atol: 1e-6, rtol: 1e-5, what: name });
  const eagerBuffers = new Map(eager.namedBuffers());
  for (const [name, b] of graphed.namedBuffers()) assertClose(b.cpu().to("float64"), eagerBuffers.get(name)!.cpu().to("float64"), { atol: 1e-6, rtol: 1e-5, what: name });
  graph.dispose();
  graph.dispose(); // idempotent
  assert.throws(() => graph.replay(), /disposed/);
  for (const t of [...batches, input, loss!]) t.dispose();
  optEager.dispose();
  optGraphed.dispose();
});

test("cuda: a step that reads a value on the host is refused while captured; later captures still work", { skip }, () => {
  assertNoLeak(() => tidy(() => {
    const x = randn([16], { device: DEV });
    assert.throws(
      () => CudaGraph.capture(DEV, () => void x.mul(2).sum().item()), // fine in the warm-up, refused in the capture
      /the step threw while being captured, nothing was recorded: .*item\(\) of a CUDA tensor waits for the GPU on the host/,
    );
    assert.throws(() => CudaGraph.capture(DEV, () => void x.cpu()), /a copy between devices waits for the GPU on the host/);
    assert.throws(() => CudaGraph.capture(DEV, () => { throw new RangeError("not a CUDA problem"); }), /threw in its warm-up, before capture: not a CUDA problem/);
    assertClose(x.mul(2).cpu(), x.cpu().mul(2), { atol: 0, rtol: 0, what: "eager work after failed captures" });
    // The allocator left capture mode: a new capture records and replays (a broken one would fail here).
    const y = keep(x.mul(0));
    using graph = CudaGraph.capture(DEV, () => void y.copy_(x.mul(3)), { warmupSteps: 0 });
    y.zero_();
    graph.replay();
    assertClose(y.cpu(), x.cpu().mul(3), { atol: 0, rtol: 0, what: "a replay after failed captures" });
    graph.dispose();
    y.dispose();
  }), "failed captures");
});

// ---- the CPU side of the same API (runs everywhere) -------------------------------------------------------------

test("setCudaDevice makes a GPU current; it refuses the CPU, and a libtorch without CUDA says so", () => {
  assert.throws(() => setCudaDevice("cpu"), /expected a CUDA device, got cpu/);
  if (cudaAvailable()) {
    setCudaDevice("cuda:0"); // the one every machine with a GPU has
  } else {
    assert.throws(() => setCudaDevice("cuda:0"), /CUDA|cuda/);
  }
});

test("CudaGraph.capture refuses the CPU, and a libtorch without CUDA says so without running the step; so does bench step", async () => {
  let ran = false;
  assert.throws(() => CudaGraph.capture("cpu", () => { ran = true; }), /CudaGraph\.capture: expected a CUDA device, got cpu/);
  if (!cudaAvailable()) assert.throws(() => CudaGraph.capture(DEV, () => { ran = true; }), /CUDA graphs: this (libtorch has no CUDA|addon was built without the CUDA runtime)/);
  assert.equal(ran, false);
  await assert.rejects(
    runStepBench({ arch: "regnet_y_400mf", method: "swav", batch: 4, crops: "2x32", threads: 1, device: "cpu", precision: "fp32", channelsLast: false, cudaGraph: true, steps: 1, rounds: 1, python: "/usr/bin/python3" }),
    /--cuda-graph: CUDA graphs need a CUDA device/,
  );
});

test("channelsLast() stores conv weights NHWC, keeps values, parameters and their grads", () => {
  manualSeed(6);
  using a = createModel("regnet_y_400mf", { numClasses: 10 });
  using b = createModel("regnet_y_400mf", { numClasses: 10 });
  b.loadStateDict(a.stateDict());
  const count = b.parameters().length;
  assertNoLeak(() => b.channelsLast(), "channelsLast");
  assert.equal(b.parameters().length, count);
  const convWeights = b.namedParameters().filter(([, p]) => p.ndim === 4);
  assert.ok(convWeights.length > 0 && convWeights.every(([, p]) => p.isChannelsLast() && p.requiresGrad), "4-d weights NHWC and trainable");
  a.eval();
  b.eval();
  assertNoLeak(() => tidy(() => {
    const x = randn([2, 3, 32, 32]);
    assertClose(b.forward(x.channelsLast()), a.forward(x), { atol: 1e-5, rtol: 1e-4, what: "logits" });
  }), "channels-last forward");
});

test("withAutocast leaves CPU work alone and restores the previous state; CUDA memory reads zero on the CPU", () => {
  assertNoLeak(() => tidy(() => {
    const x = randn([2, 3, 8, 8]);
    const w = randn([4, 3, 3, 3]);
    const y = withAutocast("bfloat16", () => F.conv2d(x, w));
    assert.equal(y.dtype, "float32", "CUDA autocast does not touch CPU ops");
    assert.throws(() => withAutocast("bfloat16", () => { throw new Error("inside"); }), /inside/);
    assert.equal(withAutocast(null, () => F.conv2d(x, w)).dtype, "float32");
  }), "autocast on cpu");
  assert.deepEqual(cudaMemory("cpu"), { allocated: 0, peak: 0 });
});

test("the GPU anchor's output line is found by arch, method and batch", () => {
  const out = [
    "resnet50         swav   bs= 256 crops=8 step=  171.0 ms  images/s=  1495.0  peak= 35.1 GiB",
    "regnet_y_8gf     swav   bs= 128 crops=8 step=  245.0 ms  images/s=   522.0  peak= 34.2 GiB",
    "resnet50         simclr bs= 256 crops=2 step=  106.0 ms  images/s=  2407.0  peak= 23.0 GiB",
    "regnet_y_8gf simclr failed OutOfMemoryError()",
  ].join("\n");
  assert.deepEqual(parseGpuAnchorLine(out, "regnet_y_8gf", "swav", 128), { ms: 245, peakGiB: 34.2 });
  assert.deepEqual(parseGpuAnchorLine(out, "resnet50", "simclr", 256), { ms: 106, peakGiB: 23 });
  assert.match(parseGpuAnchorLine(out, "regnet_y_8gf", "swav", 64) as string, /no line for regnet_y_8gf swav batch 64/);
  assert.match(parseGpuAnchorLine(out, "regnet_y_8gf", "simclr", 128) as string, /failed OutOfMemoryError/);
});

test("run.device=cuda without a GPU fails before training, naming the key; run.channelsLast trains on the CPU too", async () => {
  const quiet = { progress: false, handleSignals: false, log: () => {} };
  const data = process.env.SEERKIT_GPU_DATA ?? "builtin:cifar10"; // as above: the GPU machine has only the carried sample
  const small = [`data.source=${data}/train`, "data.limit=64", "data.batchSize=16", "schedule.iterations=3", "optim.warmupIters=1", "knn.enabled=false", "swav.queueLength=0"];
  if (!cudaAvailable()) {
    const { config } = resolvePretrainConfig("swav-cifar-tiny", [...small, "run.device=cuda"]);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-nocuda-"));
    await assert.rejects(pretrain({ config, outDir: out, ...quiet }), /run\.device: cuda, but this libtorch \(.*\) sees no CUDA device/);
    fs.rmSync(out, { recursive: true });
  }
  const firstLosses: number[] = [];
  for (const layout of ["false", "true"]) {
    const { config } = resolvePretrainConfig("swav-cifar-tiny", [...small, "run.logEvery=1", `run.channelsLast=${layout}`]);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-nhwc-"));
    const r = await pretrain({ config, outDir: out, ...quiet });
    assert.equal(r.status, "completed");
    assert.ok(Number.isFinite(r.lastLoss!));
    const lines = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; loss?: number });
    firstLosses.push(lines.find((l) => l.step === 1)!.loss!);
    fs.rmSync(out, { recursive: true });
  }
  // Same first iteration, other memory layout: the same loss up to summation order (later iterations drift apart
  // through the sharp Sinkhorn codes, as any change of rounding does).
  assert.ok(Math.abs(firstLosses[0]! - firstLosses[1]!) < 1e-5 * Math.abs(firstLosses[0]!), `NCHW loss ${firstLosses[0]} vs NHWC ${firstLosses[1]}`);
});
