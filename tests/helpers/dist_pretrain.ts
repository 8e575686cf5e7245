// Data-parallel pretraining test support (tests/pretrain_dist.test.ts).
// - Run as a script with a launcher's variables set (`node dist/tests/helpers/dist_pretrain.js CONFIG.json OUTDIR`),
//   it is one rank of a float64 run: pretrain() joins the group from the environment, and the script checks that
//   the rank leaked no tensor and prints "RESULT {json}" with the PretrainResult.
// - Imported, it makes the runs' configs: a narrow RegNetY on a seeded subset of real CIFAR-10 images, batch 8.
import * as fs from "fs";
import * as path from "path";
import { memory } from "../../src/tensor";

export const PRETRAIN_WORKER = __filename;

/** The CLI entry that `seer pretrain --nproc N` runs in each worker (and that the tests run as the launcher). */
export const PRETRAIN_CLI = path.join(__dirname, "..", "..", "src", "train", "pretrain.js");

/**
 * A tiny run over the first 32 images of a seeded CIFAR-10 subset: 4 iterations per epoch of a global batch of 8,
 * a RegNetY of depth 3 and width 8-16 with the CIFAR stem, BatchNorm in trunk and head. SwAV: 2x16 + 2x8 crops,
 * LARC, 16 prototypes frozen for 2 iterations, a queue of 16 (2 batches) used from iteration 3 on; SimCLR: two
 * 16 px views, no weight decay on biases and norms. `extra` is merged one level deep.
 */
export function tinyDistConfig(method: "swav" | "simclr", extra: Record<string, Record<string, unknown>> = {}): Record<string, unknown> {
  const base: Record<string, Record<string, unknown>> = {
    model: { arch: "regnet_y_200mf", smallImageStem: true, depth: 3, w0: 8, wa: 8, wm: 2, groupWidth: 8 },
    data: { source: "builtin:cifar10/train", limit: 32, crops: method === "swav" ? "2x16@0.3-1+2x8@0.1-0.3" : "2x16@0.3-1", batchSize: 8, workers: 0 },
    optim: method === "swav" ? { larc: true, baseLrPer256: 4.8, warmupIters: 1 } : { larc: false, baseLrPer256: 4.8, warmupIters: 1, weightDecay: 5e-4, excludeBiasAndNorm: true },
    schedule: { iterations: 6 },
    swav: { headDims: [32, 16], prototypes: 16, freezePrototypesIters: 2, queueLength: 16, queueStartEpoch: 0 },
    simclr: { headDims: [32, 16], headBatchNorm: true, temperature: 0.2 },
    run: { seed: 3, threads: 1, checkpointEvery: 3, keep: 10, logEvery: 1 },
    knn: { enabled: false },
  };
  for (const [k, v] of Object.entries(extra)) base[k] = { ...base[k], ...v };
  return { preset: method === "swav" ? "swav-cifar-tiny" : "simclr-cifar-tiny", ...base };
}

/** Writes a config file for `seer pretrain --config`; returns its path. */
export function writeConfig(dir: string, name: string, config: Record<string, unknown>): string {
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(config, null, 1));
  return file;
}

async function worker(configFile: string, outDir: string): Promise<void> {
  const { resolvePretrainConfig } = await import("../../src/train/pretrain");
  const { pretrain } = await import("../../src/train/trainer");
  const { config } = resolvePretrainConfig(configFile, []);
  const before = memory().numTensors;
  const r = await pretrain({ config, outDir, dtype: "float64", progress: false, handleSignals: false, distTimeoutMs: 30_000, log: () => {} });
  const leaked = memory().numTensors - before;
  if (leaked !== 0) throw new Error(`rank ${r.rank}: pretrain() leaked ${leaked} native tensors`);
  console.log(`RESULT ${JSON.stringify(r)}`);
}

if (require.main === module) {
  const [configFile, outDir] = process.argv.slice(2);
  worker(configFile!, outDir!).then(
    () => process.exit(0),
    (e: Error) => {
      console.error(`${e.name}: ${e.message}`);
      process.exit(1);
    },
  );
}
