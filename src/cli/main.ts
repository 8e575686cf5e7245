// The `seer` command line. Each subcommand parses its own flags (strictly: unknown flags are errors) and calls
// into the library; nothing here does numerics.
import * as os from "os";
import * as path from "path";
import { PACKAGE_ROOT } from "../util/paths";
import { formatFlags, parseArgs, UsageError, type FlagSpec } from "./args";

interface Command {
  summary: string;
  flags: Record<string, FlagSpec>;
  run(flags: Record<string, unknown>, positionals: string[]): Promise<void> | void;
}

const defaultThreads = Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 16));

const COMMANDS: Record<string, Command> = {
  info: {
    summary: "libtorch version, threads, devices",
    flags: {
      threads: { type: "number", help: "intra-op threads", default: defaultThreads },
      json: { type: "boolean", help: "print JSON" },
    },
    run(flags) {
      const { runtimeInfo, setNumThreads } = require("../tensor") as typeof import("../tensor");
      setNumThreads(flags.threads as number);
      const info = runtimeInfo();
      if (flags.json) console.log(JSON.stringify(info, null, 2));
      else {
        console.log(`seerkit ${(require(path.join(PACKAGE_ROOT, "package.json")) as { version: string }).version}`);
        console.log(`libtorch  ${info.libtorch}`);
        console.log(`threads   ${info.threads} intra-op (commands that compute take --threads)`);
        console.log(`devices   ${info.devices.join(", ")}`);
        console.log(`malloc    ${info.mallocTuned ? "tuned: freed memory stays in the process (SEERKIT_MALLOC_TUNING=0 turns this off)" : "glibc defaults"}`);
      }
    },
  },

  demo: {
    summary: "seer info, then a small real training run (CNN on Fashion-MNIST) with test accuracy before and after",
    flags: {
      steps: { type: "number", help: "training steps", default: 400 },
      batch: { type: "number", help: "images per step", default: 128 },
      lr: { type: "number", help: "peak learning rate (SGD, nesterov, cosine)", default: 0.1 },
      threads: { type: "number", help: "intra-op threads", default: defaultThreads },
      seed: { type: "number", help: "random seed", default: 0 },
      json: { type: "boolean", help: "print the result as JSON" },
    },
    run(flags) {
      COMMANDS.info!.run({ threads: flags.threads }, []);
      console.log("");
      const { runSupervisedDemo } = require("../train/supervised_demo") as typeof import("../train/supervised_demo");
      const r = runSupervisedDemo({
        steps: flags.steps as number, batch: flags.batch as number, lr: flags.lr as number,
        threads: flags.threads as number, seed: flags.seed as number,
      });
      if (flags.json) console.log(JSON.stringify(r));
    },
  },

  models: {
    summary: "the model registry: parameters and FLOPs (multiply-adds) at 224x224",
    flags: {
      size: { type: "number", help: "input size for FLOPs", default: 224 },
      json: { type: "boolean", help: "print JSON" },
    },
    run(flags) {
      const { listModels, formatModelTable } = require("../models/registry") as typeof import("../models/registry");
      const rows = listModels({ imageSize: flags.size as number });
      console.log(flags.json ? JSON.stringify(rows, null, 2) : formatModelTable(rows));
    },
  },

  "data scan": {
    summary: "scan an image source: formats, bad files by reason, sizes, exact duplicates (SRC: folder, list.txt, shard-{0..9}.tar, builtin:NAME/SPLIT)",
    flags: {
      concurrency: { type: "number", help: "images decoded at once", default: defaultThreads * 2 },
      "headers-only": { type: "boolean", help: "read headers only (fast; misses truncated data)" },
      sniff: { type: "boolean", help: "also try files without an image extension" },
      json: { type: "boolean", help: "print JSON" },
    },
    async run(flags, positionals) {
      if (positionals.length !== 1) throw new UsageError("expected one source: seer data scan SRC");
      const { resolveSource, scanSource, formatScanReport } = require("../data/scan") as typeof import("../data/scan");
      const { Progress } = require("./progress") as typeof import("./progress");
      const source = await resolveSource(positionals[0]!, { sniff: Boolean(flags.sniff) });
      const total = "length" in source ? (source as { length: number }).length : 0;
      const progress = total > 0 ? new Progress("scan", total, "images") : undefined;
      const report = await scanSource(source, {
        concurrency: flags.concurrency as number,
        verify: !flags["headers-only"],
        onProgress: (done) => progress?.update(done),
      });
      console.log(flags.json ? JSON.stringify(report, null, 2) : formatScanReport(report));
    },
  },

  "bench ops": {
    summary: "per-op overhead and a small CNN training step, against PyTorch eager on the same libtorch and threads",
    flags: {
      threads: { type: "number", help: "intra-op threads, both engines", default: 2 },
      calls: { type: "number", help: "calls per op timing", default: 200000 },
      steps: { type: "number", help: "timed CNN steps", default: 20 },
      batch: { type: "number", help: "CNN batch size", default: 64 },
      rounds: { type: "number", help: "rounds, alternating engines (best of)", default: 3 },
      python: { type: "string", help: "python with torch (the baseline)", default: "/usr/bin/python3" },
      json: { type: "boolean", help: "print JSON" },
    },
    run(flags) {
      quietOpenMp();
      const { runOpsBench, formatOpsBench } = require("../bench/ops_bench") as typeof import("../bench/ops_bench");
      const r = runOpsBench({
        threads: flags.threads as number, calls: flags.calls as number, steps: flags.steps as number,
        batch: flags.batch as number, python: flags.python as string, rounds: flags.rounds as number,
      });
      console.log(flags.json ? JSON.stringify(r, null, 2) : formatOpsBench(r));
    },
  },

  "bench optim": {
    summary: "the optimizer step alone (SGD, LARC) on a SEER model's parameters, against PyTorch eager, same threads",
    flags: {
      arch: { type: "string", help: "trunk whose parameters (plus SEER's head and prototypes) are stepped", default: "regnet_y_8gf" },
      device: { type: "string", help: "cpu or cuda[:N]", default: "cpu" },
      threads: { type: "number", help: "intra-op threads, both engines", default: 2 },
      steps: { type: "number", help: "timed steps per optimizer", default: 5 },
      rounds: { type: "number", help: "rounds, alternating engines (best of)", default: 3 },
      tiny: { type: "boolean", help: "one element per tensor: only the per-tensor overhead is timed" },
      python: { type: "string", help: "python with torch (the baseline)", default: "/usr/bin/python3" },
      json: { type: "boolean", help: "print JSON" },
    },
    async run(flags) {
      quietOpenMp();
      const { runOptimBench, formatOptimBench } = require("../bench/optim_bench") as typeof import("../bench/optim_bench");
      const r = await runOptimBench({
        arch: flags.arch as string, device: flags.device as string, threads: flags.threads as number, steps: flags.steps as number,
        rounds: flags.rounds as number, tiny: Boolean(flags.tiny), python: flags.python as string,
      });
      console.log(flags.json ? JSON.stringify(r, null, 2) : formatOptimBench(r));
    },
  },

  "bench backbone": {
    summary: "a supervised training step of a backbone against torchvision in PyTorch eager, same threads",
    flags: {
      arch: { type: "string", help: "model name", default: "regnet_y_400mf" },
      batch: { type: "number", help: "images per step", default: 32 },
      size: { type: "number", help: "input height and width", default: 64 },
      steps: { type: "number", help: "timed steps", default: 10 },
      threads: { type: "number", help: "intra-op threads, both engines", default: 2 },
      python: { type: "string", help: "python with torch and torchvision (the baseline)", default: "/usr/bin/python3" },
      json: { type: "boolean", help: "print JSON" },
    },
    run(flags) {
      quietOpenMp();
      const { runBackboneBench, formatBackboneBench } = require("../bench/backbone_bench") as typeof import("../bench/backbone_bench");
      const r = runBackboneBench({
        arch: flags.arch as string, batch: flags.batch as number, size: flags.size as number,
        steps: flags.steps as number, threads: flags.threads as number, python: flags.python as string,
      });
      console.log(flags.json ? JSON.stringify(r, null, 2) : formatBackboneBench(r));
    },
  },

  "bench data": {
    summary: "multi-crop loading throughput against a torchvision + PIL DataLoader on the same files and cores",
    flags: {
      data: { type: "string", help: "image source", default: "builtin:imagenette/train" },
      crops: { type: "string", help: "crops per image, e.g. 2x224+4x96", default: "2x224+4x96" },
      workers: { type: "number", help: "decode workers, both loaders", default: 2 },
      batches: { type: "number", help: "timed batches", default: 20 },
      batch: { type: "number", help: "images per batch", default: 32 },
      threads: { type: "number", help: "libtorch intra-op threads, both sides", default: 1 },
      rounds: { type: "number", help: "rounds, alternating loaders (best of)", default: 3 },
      python: { type: "string", help: "python with torchvision (the baseline)", default: "/usr/bin/python3" },
      json: { type: "boolean", help: "print JSON" },
    },
    async run(flags) {
      quietOpenMp();
      const { runDataBench } = require("../bench/data_bench") as typeof import("../bench/data_bench");
      await runDataBench({
        data: flags.data as string, crops: flags.crops as string, workers: flags.workers as number,
        batches: flags.batches as number, batch: flags.batch as number, threads: flags.threads as number,
        rounds: flags.rounds as number, warmup: 3, python: flags.python as string, json: Boolean(flags.json),
      });
    },
  },
};

/**
 * Benchmarks run both engines with OpenMP's passive wait policy unless the user chose one: with the default
 * (spinning) policy, a machine shared with other processes makes step times swing several-fold. Must run before
 * libtorch loads (libgomp reads it once); Python children inherit it.
 */
function quietOpenMp(): void {
  process.env.OMP_WAIT_POLICY ??= "PASSIVE";
}

function usage(): string {
  const lines = ["usage: seer <command> [options]", "", "commands:"];
  for (const [name, c] of [...Object.entries(COMMANDS), ...Object.entries(DELEGATED)]) lines.push(`  ${name.padEnd(14)} ${c.summary}`);
  lines.push("", "seer <command> --help lists a command's options.");
  return lines.join("\n");
}

/** Commands with their own parsers (their modules own the flags and help). */
const DELEGATED: Record<string, { summary: string; load(): (argv: string[]) => Promise<number> }> = {
  pretrain: {
    summary: "self-supervised pretraining (SwAV / SimCLR) from a preset or config file; resumes by itself",
    load: () => (require("../train/pretrain") as typeof import("../train/pretrain")).pretrainCommand,
  },
  "bench step": {
    summary: "images/s of a full SwAV/SimCLR training step, against the PyTorch eager anchor script",
    load: () => {
      quietOpenMp();
      return (require("../bench/step_bench") as typeof import("../bench/step_bench")).stepBenchCommand;
    },
  },
  eval: {
    summary: "evaluate a backbone: knn | linear | finetune | lowshot (seer eval knn --help)",
    load: () => {
      quietOpenMp(); // spinning OpenMP threads starve the image decoders of fine-tuning (2.4 s/step instead of 0.5 here)
      return (require("../eval/command") as typeof import("../eval/command")).evalCommand;
    },
  },
  reproduce: {
    summary: "the SEER study at small scale: SwAV/SimCLR on uncurated vs curated pools, RegNetY sizes, kNN/linear/low-shot vs scratch; report.md",
    load: () => {
      quietOpenMp();
      return (require("../reproduce/command") as typeof import("../reproduce/command")).reproduceCommand;
    },
  },
};

async function main(argv: string[]): Promise<number> {
  const twoWords = argv.slice(0, 2).join(" ");
  const delegatedName = DELEGATED[twoWords] ? twoWords : argv[0];
  const delegated = delegatedName !== undefined ? DELEGATED[delegatedName] : undefined;
  if (delegated) return delegated.load()(argv.slice(delegatedName === twoWords ? 2 : 1));
  // Two-word commands ("bench ops") take precedence over one-word ones.
  const two = argv.slice(0, 2).join(" ");
  const name = COMMANDS[two] ? two : argv[0];
  const rest = argv.slice(name === two ? 2 : 1);
  if (!name || name === "--help" || name === "help") {
    console.log(usage());
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`seer: unknown command '${argv.slice(0, 2).join(" ")}'\n\n${usage()}`);
    return 2;
  }
  if (rest.includes("--help")) {
    console.log(`usage: seer ${name} [options]\n\n${cmd.summary}\n\noptions:\n${formatFlags(cmd.flags)}`);
    return 0;
  }
  try {
    const { flags, positionals } = parseArgs(rest, cmd.flags);
    await cmd.run(flags, positionals);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`seer ${name}: ${e.message}`);
      return 2;
    }
    console.error(`seer ${name}: ${(e as Error).message}`);
    if (process.env.SEERKIT_DEBUG) console.error((e as Error).stack);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
