// The benchmarks' own machinery: `seer bench optim` end to end on small shapes, and the peak-memory probe that
// `seer bench step --peak-memory` preloads into each engine's process (bench/alloc_peak.c).
import { describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { cudaAvailable, memory } from "../src/tensor";
import { runStepBench } from "../src/bench/step_bench";
import { CACHE_DIR, PACKAGE_ROOT } from "../src/util/paths";

describe("seer bench optim", () => {
  test("times both engines on a model's parameter shapes and refuses bad options", async () => {
    const { runOptimBench, formatOptimBench } = await import("../src/bench/optim_bench");
    const before = memory().numTensors;
    const r = await runOptimBench({ arch: "regnet_y_400mf", device: "cpu", threads: 1, steps: 1, rounds: 1, tiny: true, python: "/usr/bin/python3" });
    assert.equal(memory().numTensors, before, "the bench frees its tensors");
    // RegNetY-400MF's trunk, SEER's head (3 linears, 2 BNs) and the prototypes: one tensor per parameter.
    const { createModel } = await import("../src/models/registry");
    const trunk = createModel("regnet_y_400mf", { numClasses: 0 });
    assert.equal(r.tensors, trunk.parameters().length + 3 * 2 + 2 * 2 + 1);
    trunk.dispose();
    for (const v of [...Object.values(r.seerkit), ...Object.values(r.pytorch), ...Object.values(r.ratios)]) assert.ok(Number.isFinite(v) && v > 0, String(v));
    assert.deepEqual(Object.keys(r.pytorch).sort(), ["larc", "sgd_foreach", "sgd_loop"]);
    assert.match(formatOptimBench(r), /seerkit LARC \+ SGD/);
    await assert.rejects(runOptimBench({ arch: "regnet_y_400mf", device: "cpu", threads: 0, steps: 1, rounds: 1, tiny: true, python: "/usr/bin/python3" }), /--threads/);
    if (!cudaAvailable()) {
      await assert.rejects(runOptimBench({ arch: "regnet_y_400mf", device: "cuda:0", threads: 1, steps: 1, rounds: 1, tiny: true, python: "/usr/bin/python3" }), /--device cuda:0: this libtorch .* sees no CUDA device/);
    }
  });
});

describe("peak memory probe (bench/alloc_peak.c)", () => {
  /** The peak in MiB of a node process that runs `code` with the probe preloaded. */
  function peakMiB(code: string): number {
    const lib = path.join(CACHE_DIR, "alloc_peak.so");
    const out = path.join(os.tmpdir(), `seerkit-test-peak-${process.pid}`);
    execFileSync(process.execPath, ["-e", `const T = require(${JSON.stringify(path.join(PACKAGE_ROOT, "dist", "src", "tensor"))}); ${code}`], {
      env: { ...process.env, LD_PRELOAD: lib, ALLOC_PEAK_OUT: out },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const bytes = Number(fs.readFileSync(out, "utf8").trim());
    fs.rmSync(out);
    return bytes / 2 ** 20;
  }

  test("counts a tensor's storage while it lives, and not after it is freed", async () => {
    // Builds the probe as the bench does (a step bench with --peak-memory on a tiny configuration).
    const r = await runStepBench({
      arch: "regnet_y_400mf", method: "swav", batch: 4, crops: "2x32+2x16", threads: 1, device: "cpu", precision: "fp32",
      channelsLast: false, steps: 1, rounds: 1, python: "/usr/bin/python3", anchor: path.resolve(PACKAGE_ROOT, "..", "shared", "anchors", "pytorch_cpu_step.py"),
      peakMemory: true,
    });
    // Both processes hold RegNetY-400MF (4.3 M parameters), its gradients and momentum: at least 3 x 17 MiB.
    for (const e of [r.seerkit, r.pytorch!]) assert.ok(e.peak_gib! * 1024 > 50 && e.peak_gib! < 2, `${e.engine}: peak ${e.peak_gib} GiB`);

    // The baseline's own peak (libtorch loading) is a few MiB that partly overlap the tensor's: bounds, not equality.
    const base = peakMiB("");
    const one = peakMiB("const a = T.zeros([16, 1024, 1024]); a.dispose();"); // 64 MiB
    const twoInTurn = peakMiB("for (let i = 0; i < 2; i++) T.zeros([16, 1024, 1024]).dispose();");
    const twoAtOnce = peakMiB("const a = T.zeros([16, 1024, 1024]); const b = T.zeros([16, 1024, 1024]); a.dispose(); b.dispose();");
    assert.ok(one - base > 60 && one - base < 64 + 8, `one 64 MiB tensor: ${one - base} MiB above the baseline`);
    assert.ok(Math.abs(twoInTurn - one) < 8, `two in turn: ${twoInTurn} MiB, one: ${one} MiB`);
    assert.ok(twoAtOnce - base > 124 && twoAtOnce - base < 128 + 8, `two at once: ${twoAtOnce - base} MiB above the baseline`);
  });

  test("--peak-memory is refused on CUDA and without the anchor", async () => {
    const o = { arch: "regnet_y_400mf", method: "swav" as const, batch: 4, crops: "2x32", threads: 1, precision: "fp32" as const, channelsLast: false, steps: 1, rounds: 1, python: "/usr/bin/python3", peakMemory: true };
    await assert.rejects(runStepBench({ ...o, device: "cuda:0" }), /--peak-memory is the CPU's measure/);
    await assert.rejects(runStepBench({ ...o, device: "cpu", anchor: "none" }), /cannot go with --anchor none/);
  });
});
