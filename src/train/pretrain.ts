// `seer pretrain`: self-supervised pretraining (SwAV / SimCLR) from a preset or a JSON config, with key=value
// overrides, resuming by itself from the newest intact checkpoint of its run folder.
//
//   seer pretrain --config PRESET|FILE.json [--data SRC] [--out DIR] [--threads N] [--force] [key=value ...]
//   seer pretrain --nproc N ...                  the same run data-parallel over N local processes
//
// A JSON config holds any subset of the keys (nested as in config.json of a run); its optional "preset" key names
// the preset it starts from (default swav-cifar-tiny). Overrides name keys with dots (`optim.baseLrPer256=0.3`,
// `swav.headDims=[512,128]`); unknown keys and wrong types are errors naming the key. The run folder defaults to
// runs/<preset or file name>, stable so that running the same command again resumes the run.
//
// Data parallel: `--nproc N` starts N workers of this same command through the local launcher (dist/launch.ts), with
// torchrun's variables set; run.threads (0: all cores) is shared among them unless --threads-per-proc says
// otherwise. Any launcher that sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (torchrun, or srun with
// SLURM's variables) works too: each process is then one rank, and the trainer joins the group (see trainer.ts). A
// rank that dies or hangs makes every rank exit non-zero within --dist-timeout, with messages naming it; rerun the
// command to resume from the last checkpoint.
//
// Exit status: 0 done, 130 interrupted by SIGINT/SIGTERM (a checkpoint was saved), 1 a non-finite loss or another
// failure (in any rank), 2 a usage or configuration error.
import * as fs from "fs";
import * as path from "path";
import { formatFlags, parseArgs, UsageError, type FlagSpec } from "../cli/args";
import { applyOverrides, ConfigError, mergeConfig } from "../config/overrides";
import { detectDistEnv, DistEnvError, type DistEnv } from "../dist/env";
import { spawnLocalWorkers } from "../dist/launch";
import { DEFAULT_PRESET, PRESET_NOTES, PRETRAIN_PRESETS, describeConfig, presetConfig, validatePretrainConfig, type PretrainConfig } from "./presets";

export const PRETRAIN_FLAGS: Record<string, FlagSpec> = {
  config: { type: "string", help: "a preset (--presets lists them) or a JSON config file", default: DEFAULT_PRESET },
  data: { type: "string", help: "training images (sets data.source): folder, .txt list, tar shards, builtin:NAME/SPLIT, several joined by +" },
  out: { type: "string", help: "run folder (default runs/<preset>); an existing run there is resumed" },
  threads: { type: "number", help: "intra-op threads (sets run.threads; 0: all cores); shared by the processes of one machine" },
  device: { type: "string", help: "cpu, cuda or cuda:N (sets run.device; on CUDA also bf16 autocast and channels-last unless set)" },
  nproc: { type: "number", help: "data-parallel processes on this machine (the global batch data.batchSize is split among them)", default: 1 },
  "threads-per-proc": { type: "number", help: "intra-op threads of each process (default run.threads / processes on this machine)" },
  "dist-timeout": { type: "number", help: "seconds a collective may wait for the other ranks before the run fails, naming them", default: 300 },
  force: { type: "boolean", help: "resume even if the run folder's config differs in keys that change the run" },
  "dry-run": { type: "boolean", help: "print the resolved config and exit" },
  presets: { type: "boolean", help: "list the presets and exit" },
  "no-progress": { type: "boolean", help: "no progress bar" },
  help: { type: "boolean", help: "show this help" },
};

export const PRETRAIN_USAGE =
  "usage: seer pretrain --config PRESET|FILE.json [--data SRC] [--out DIR] [--threads N] [--nproc N] [--force] [key=value ...]\n\n" +
  "SwAV / SimCLR pretraining. Running the same command again resumes from the newest intact checkpoint.\n" +
  "--nproc N trains data-parallel over N local processes (or start one process per rank under torchrun or srun).\n" +
  "Overrides name config keys with dots, e.g. schedule.iterations=200 optim.baseLrPer256=0.3 knn.enabled=false.";

/** The resolved config of a --config argument, overrides and flags, and the run's name. */
export function resolvePretrainConfig(spec: string, overrides: string[], flags: { data?: string; threads?: number; device?: string } = {}): { config: PretrainConfig; name: string } {
  let config: PretrainConfig;
  let name: string;
  if (spec.endsWith(".json") || (fs.existsSync(spec) && fs.statSync(spec).isFile())) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(spec, "utf8")) as unknown;
    } catch (e) {
      throw new ConfigError(`${spec}: ${(e as Error).message}`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new ConfigError(`${spec}: expected a JSON object`);
    const { preset, ...rest } = parsed as Record<string, unknown>;
    if (preset !== undefined && typeof preset !== "string") throw new ConfigError(`${spec}: preset: expected a preset name`);
    config = mergeConfig(presetConfig(preset ?? DEFAULT_PRESET), rest, spec);
    name = path.basename(spec).replace(/\.json$/, "");
  } else {
    config = presetConfig(spec);
    name = spec;
  }
  if (flags.device !== undefined) {
    // --device picks the device's usual settings first (bf16 autocast and channels-last on CUDA, fp32 NCHW on the
    // CPU), so that explicit run.precision / run.channelsLast overrides still win.
    const cuda = flags.device !== "cpu";
    config = applyOverrides(config, [`run.device=${flags.device}`, `run.precision=${cuda ? "bf16" : "fp32"}`, `run.channelsLast=${cuda}`]);
  }
  config = applyOverrides(config, overrides);
  if (flags.data !== undefined) config = applyOverrides(config, [`data.source=${flags.data}`]);
  if (flags.threads !== undefined) config = applyOverrides(config, [`run.threads=${flags.threads}`]);
  validatePretrainConfig(config);
  return { config, name };
}

function fmtDuration(s: number): string {
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${Math.round(s % 60).toString().padStart(2, "0")}s` : `${s.toFixed(1)}s`;
}

/** `seer pretrain ...`; returns the exit status. */
export async function pretrainCommand(argv: string[]): Promise<number> {
  let flags: Record<string, string | number | boolean | undefined>;
  let positionals: string[];
  try {
    ({ flags, positionals } = parseArgs(argv, PRETRAIN_FLAGS));
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`seer pretrain: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (flags.help) {
    console.log(`${PRETRAIN_USAGE}\n\noptions:\n${formatFlags(PRETRAIN_FLAGS)}\n\npresets:\n${presetList()}`);
    return 0;
  }
  if (flags.presets) {
    console.log(presetList());
    return 0;
  }
  const bad = positionals.find((p) => !p.includes("="));
  if (bad !== undefined) {
    console.error(`seer pretrain: unexpected argument '${bad}' (overrides are key=value)`);
    return 2;
  }

  // One rank of a launched job (torchrun's or SLURM's variables), a launcher of local workers (--nproc), or alone.
  let distEnv: DistEnv | undefined;
  try {
    distEnv = detectDistEnv();
  } catch (e) {
    if (e instanceof DistEnvError) {
      console.error(`seer pretrain: ${e.message}`);
      return 2;
    }
    throw e;
  }
  const ranked = distEnv !== undefined && distEnv.worldSize > 1;
  const rank = distEnv?.rank ?? 0;
  const nproc = flags.nproc as number;
  const threadsPerProc = flags["threads-per-proc"] as number | undefined;
  const distTimeout = flags["dist-timeout"] as number;
  const usage =
    !Number.isInteger(nproc) || nproc < 1 ? `--nproc: expected a positive integer but received ${nproc}`
    : nproc > 1 && distEnv ? `--nproc: this process is already rank ${distEnv.rank} of ${distEnv.worldSize} (${distEnv.source} variables are set); under a launcher start one process per rank, without --nproc`
    : threadsPerProc !== undefined && (!Number.isInteger(threadsPerProc) || threadsPerProc < 1) ? `--threads-per-proc: expected a positive integer but received ${threadsPerProc}`
    : !(distTimeout > 0) ? `--dist-timeout: expected a positive number of seconds but received ${distTimeout}`
    : undefined;
  if (usage !== undefined) {
    console.error(`seer pretrain: ${usage}`);
    return 2;
  }

  let config: PretrainConfig;
  let name: string;
  try {
    ({ config, name } = resolvePretrainConfig(flags.config as string, positionals, {
      data: flags.data as string | undefined, threads: flags.threads as number | undefined, device: flags.device as string | undefined,
    }));
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`seer pretrain: ${e.message}`);
      return 2;
    }
    throw e;
  }
  const outDir = (flags.out as string | undefined) ?? path.join("runs", name);
  // Printed once per job: by the launcher of local workers, else by rank 0.
  if (rank === 0 && process.env[LAUNCHED_VAR] === undefined) {
    console.log(describeConfig(config, name));
    console.log(`out        ${outDir}`);
  }
  if (flags["dry-run"]) return 0;

  // libgomp reads its wait policy once, when libtorch loads: a spinning policy makes a shared machine's step
  // times swing several-fold (the benchmarks do the same). The user's own setting wins (and workers inherit it).
  process.env.OMP_WAIT_POLICY ??= "PASSIVE";
  if (nproc > 1) return launchLocalWorkers(nproc, argv, config.data.batchSize);

  if (ranked) console.log(`rank       ${rank} of ${distEnv!.worldSize}: pid ${process.pid}`);
  const tag = ranked ? `rank ${rank}: ` : "";
  const { pretrain, NonFiniteLossError, fmtPct } = await import("./trainer");
  const { DistError } = await import("../dist/process_group");
  try {
    const r = await pretrain({
      config, outDir, name, force: flags.force === true, progress: flags["no-progress"] !== true,
      threadsPerProcess: threadsPerProc, distTimeoutMs: Math.round(distTimeout * 1000),
    });
    if (r.status === "interrupted") return 130;
    if (r.rank !== 0) return 0; // rank 0 reports
    console.log(
      `done       ${r.step} iterations` + (r.resumedFrom > 0 ? ` (resumed at ${r.resumedFrom})` : "") +
        ` in ${fmtDuration(r.wallSeconds)} (training ${fmtDuration(r.trainSeconds)}, ${r.imagesPerS.toFixed(1)} images/s); final loss ${r.lastLoss?.toFixed(4) ?? "-"}`,
    );
    if (r.knnFinal !== undefined) {
      const gain = r.knnRandomInit !== undefined ? ` (${((r.knnFinal - r.knnRandomInit) * 100 >= 0 ? "+" : "")}${((r.knnFinal - r.knnRandomInit) * 100).toFixed(1)} points)` : "";
      console.log(`knn        top-1 (k ${config.knn.k}, T ${config.knn.temperature}) on ${config.knn.testSource}: random init ${fmtPct(r.knnRandomInit)} -> pretrained ${fmtPct(r.knnFinal)}${gain}`);
    }
    console.log(`weights    ${r.backboneFile} (trunk, torchvision names); checkpoints and metrics.jsonl in ${r.outDir}`);
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`seer pretrain: ${tag}${e.message}`);
      return 2;
    }
    // A DistError names this rank and the ranks that stopped answering already.
    console.error(`seer pretrain: ${e instanceof DistError ? "" : tag}${(e as Error).message}`);
    if (!(e instanceof NonFiniteLossError) && process.env.SEERKIT_DEBUG) console.error((e as Error).stack);
    return 1;
  }
}

/** Set in the workers of `--nproc N`: the launcher printed the config already. */
const LAUNCHED_VAR = "SEERKIT_PRETRAIN_WORKER";

/** argv without --nproc N / --nproc=N: what each worker runs. */
export function workerArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--nproc") i++;
    else if (!argv[i]!.startsWith("--nproc=")) out.push(argv[i]!);
  }
  return out;
}

/**
 * `--nproc N`: N workers of this command on this machine (ranks 0..N-1, torchrun's variables, a free port on
 * 127.0.0.1), their output prefixed with their rank. Returns 0 when all finished, 130 when interrupted, else 1 with
 * the launcher's message naming the rank that failed first (and, from its last line, the ranks it lost).
 */
async function launchLocalWorkers(nproc: number, argv: readonly string[], batch: number): Promise<number> {
  if (batch % nproc !== 0) {
    console.error(`seer pretrain: data.batchSize: the global batch ${batch} does not split evenly over ${nproc} processes`);
    return 2;
  }
  console.log(`launch     ${nproc} local processes, ${batch / nproc} images each per iteration (global batch ${batch})`);
  const r = await spawnLocalWorkers(nproc, __filename, workerArgs(argv), { env: { [LAUNCHED_VAR]: "1" } });
  if (r.ok) return 0;
  if (r.failedRank === undefined) return 130; // interrupted: the workers saved a checkpoint and stopped
  console.error(`seer pretrain: ${r.message}`);
  return r.exits.every((e) => e.code === 2) ? 2 : 1;
}

// The workers of --nproc run this file.
if (require.main === module) {
  pretrainCommand(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}

function presetList(): string {
  return Object.keys(PRETRAIN_PRESETS)
    .map((n) => `  ${n.padEnd(20)} ${PRESET_NOTES[n] ?? ""}${n === DEFAULT_PRESET ? " (default)" : ""}`)
    .join("\n");
}
