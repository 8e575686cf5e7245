// Where this process sits in a distributed job, read from the environment a launcher left: torchrun's variables
// (also what spawnLocalWorkers and `seer pretrain --nproc N` set) or SLURM's. Every problem is reported by
// variable name and value, so a misconfigured job stops at start-up with an actionable message.
//
//   torchrun: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (all five required, LOCAL_WORLD_SIZE optional)
//   SLURM:    SLURM_PROCID (rank), SLURM_NTASKS (world size), SLURM_LOCALID (local rank); the master is MASTER_ADDR
//             if set, else the first host of SLURM_JOB_NODELIST (or SLURM_NODELIST); the port is MASTER_PORT if
//             set, else 20000 + SLURM_JOB_ID mod 20000 (distinct per job, the same on every task of the job).

/** The rank layout and rendezvous address of this process. */
export interface DistEnv {
  rank: number;
  worldSize: number;
  /** Rank among the processes on this machine (picks the GPU). */
  localRank: number;
  /** Processes on this machine, when the launcher says. */
  localWorldSize?: number;
  masterAddr: string;
  masterPort: number;
  /** Which launcher's variables were read. */
  source: "torchrun" | "slurm";
}

/** A missing or malformed launcher variable. */
export class DistEnvError extends Error {
  override name = "DistEnvError";
}

type Env = Readonly<Record<string, string | undefined>>;

const TORCHRUN_VARS = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"] as const;
const TORCHRUN_MEANING: Record<(typeof TORCHRUN_VARS)[number], string> = {
  RANK: "this process's rank",
  WORLD_SIZE: "the number of processes",
  LOCAL_RANK: "the rank on this machine",
  MASTER_ADDR: "the host of rank 0",
  MASTER_PORT: "the port rank 0 listens on",
};

const isSet = (env: Env, k: string): boolean => env[k] !== undefined && env[k]!.trim() !== "";

function nonNegativeInt(env: Env, key: string): number {
  const raw = env[key]!.trim();
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new DistEnvError(`${key}="${env[key]}" is not a non-negative integer`);
  }
  return Number(raw);
}

function port(env: Env, key: string): number {
  const p = nonNegativeInt(env, key);
  if (p < 1 || p > 65535) throw new DistEnvError(`${key}=${p} is not a TCP port (1..65535)`);
  return p;
}

function check(e: DistEnv, names: { rank: string; worldSize: string; localRank: string }): DistEnv {
  if (e.worldSize < 1) throw new DistEnvError(`${names.worldSize}=${e.worldSize}: a job needs at least one process`);
  if (e.rank >= e.worldSize) throw new DistEnvError(`${names.rank}=${e.rank} is not below ${names.worldSize}=${e.worldSize}`);
  if (e.localRank >= e.worldSize) throw new DistEnvError(`${names.localRank}=${e.localRank} is not below ${names.worldSize}=${e.worldSize}`);
  if (e.localWorldSize !== undefined && e.localRank >= e.localWorldSize) {
    throw new DistEnvError(`${names.localRank}=${e.localRank} is not below LOCAL_WORLD_SIZE=${e.localWorldSize}`);
  }
  return e;
}

function fromTorchrun(env: Env): DistEnv {
  const missing = TORCHRUN_VARS.filter((k) => !isSet(env, k));
  if (missing.length > 0) {
    const present = TORCHRUN_VARS.filter((k) => isSet(env, k));
    throw new DistEnvError(
      `torchrun-style environment is incomplete: ${missing.map((k) => `${k} (${TORCHRUN_MEANING[k]})`).join(", ")} ` +
        `${missing.length === 1 ? "is" : "are"} not set, while ${present.join(", ")} ${present.length === 1 ? "is" : "are"}`,
    );
  }
  return check(
    {
      rank: nonNegativeInt(env, "RANK"),
      worldSize: nonNegativeInt(env, "WORLD_SIZE"),
      localRank: nonNegativeInt(env, "LOCAL_RANK"),
      localWorldSize: isSet(env, "LOCAL_WORLD_SIZE") ? nonNegativeInt(env, "LOCAL_WORLD_SIZE") : undefined,
      masterAddr: env.MASTER_ADDR!.trim(),
      masterPort: port(env, "MASTER_PORT"),
      source: "torchrun",
    },
    { rank: "RANK", worldSize: "WORLD_SIZE", localRank: "LOCAL_RANK" },
  );
}

function fromSlurm(env: Env): DistEnv {
  const required = ["SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"];
  const missing = required.filter((k) => !isSet(env, k));
  if (missing.length > 0) throw new DistEnvError(`SLURM environment is incomplete: ${missing.join(", ")} not set (run the job with srun)`);
  let masterAddr: string;
  if (isSet(env, "MASTER_ADDR")) masterAddr = env.MASTER_ADDR!.trim();
  else {
    const list = env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
    if (list === undefined || list.trim() === "") {
      throw new DistEnvError("SLURM environment has neither MASTER_ADDR nor SLURM_JOB_NODELIST (or SLURM_NODELIST) to find rank 0's host");
    }
    masterAddr = firstSlurmHost(list);
  }
  let masterPort: number;
  if (isSet(env, "MASTER_PORT")) masterPort = port(env, "MASTER_PORT");
  else if (isSet(env, "SLURM_JOB_ID")) masterPort = 20000 + (nonNegativeInt(env, "SLURM_JOB_ID") % 20000);
  else throw new DistEnvError("SLURM environment has neither MASTER_PORT nor SLURM_JOB_ID to choose the rendezvous port");
  return check(
    {
      rank: nonNegativeInt(env, "SLURM_PROCID"),
      worldSize: nonNegativeInt(env, "SLURM_NTASKS"),
      localRank: nonNegativeInt(env, "SLURM_LOCALID"),
      localWorldSize: isSet(env, "SLURM_NTASKS_PER_NODE") && /^\d+$/.test(env.SLURM_NTASKS_PER_NODE!.trim())
        ? nonNegativeInt(env, "SLURM_NTASKS_PER_NODE") : undefined,
      masterAddr,
      masterPort,
      source: "slurm",
    },
    { rank: "SLURM_PROCID", worldSize: "SLURM_NTASKS", localRank: "SLURM_LOCALID" },
  );
}

/**
 * Reads the distributed layout from torchrun's variables, or else from SLURM's. torchrun's win when RANK or
 * WORLD_SIZE is set (srun + torchrun sets both kinds). Throws a DistEnvError naming each missing or bad variable.
 */
export function fromEnv(env: Env = process.env): DistEnv {
  if (isSet(env, "RANK") || isSet(env, "WORLD_SIZE")) return fromTorchrun(env);
  if (isSet(env, "SLURM_PROCID")) return fromSlurm(env);
  throw new DistEnvError(
    "no distributed environment: set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (as torchrun and " +
      "`seer pretrain --nproc N` do), or run under SLURM (srun sets SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_JOB_NODELIST)",
  );
}

/**
 * The distributed layout if a launcher left one (torchrun's RANK or WORLD_SIZE, or SLURM's SLURM_PROCID is set),
 * else undefined: what a program that runs either alone or under a launcher asks. Throws a DistEnvError when the
 * variables are there but incomplete or malformed. NOTE: inside a SLURM allocation a program started without srun
 * still sees SLURM_PROCID and the job's SLURM_NTASKS, and would wait for tasks that never come: start it with srun.
 */
export function detectDistEnv(env: Env = process.env): DistEnv | undefined {
  if (isSet(env, "RANK") || isSet(env, "WORLD_SIZE") || isSet(env, "SLURM_PROCID")) return fromEnv(env);
  return undefined;
}

/**
 * The first host of a SLURM node list: "node[003-005,9],gpu1" -> "node003", "a1,a2" -> "a1",
 * "rack[1-2]-n[07-08]" -> "rack1-n07" (zero padding kept).
 */
export function firstSlurmHost(nodelist: string): string {
  const list = nodelist.trim();
  let depth = 0;
  let end = list.length;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === "[") depth++;
    else if (c === "]") depth--;
    else if (c === "," && depth === 0) {
      end = i;
      break;
    }
  }
  const item = list.slice(0, end);
  const m = /^([^[]*)\[([^\]]*)\](.*)$/.exec(item);
  if (!m) {
    if (item === "" || /[[\]]/.test(item)) throw new DistEnvError(`SLURM node list "${nodelist}" is malformed`);
    return item;
  }
  const first = m[2]!.split(",")[0]!.split("-")[0]!.trim();
  if (first === "") throw new DistEnvError(`SLURM node list "${nodelist}" has an empty range`);
  const rest = m[3]!;
  return m[1]! + first + (rest.includes("[") ? firstSlurmHost(rest) : rest);
}
