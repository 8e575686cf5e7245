// Local multi-process launcher (what `seer pretrain --nproc N` runs, and torchrun's --standalone in small):
// starts N copies of a Node script with torchrun's variables set, so each can call initProcessGroupFromEnv().
//
// Fault handling: when a worker exits with a non-zero code or is killed by a signal while others still run, the
// launcher names that rank, stops the others (SIGTERM, then SIGKILL after killGraceMs) and reports failure, with
// the failed worker's last line on stderr (prefix and capture modes). A worker that hangs is caught by the others'
// collective timeout: one of them fails with a DistError naming it ("... Rank 1 did not answer a roll call"),
// which that last line carries, and the launcher stops it.
// Signals: the workers run in their own process group, so a Ctrl-C in the terminal reaches the launcher alone, and
// it passes SIGINT / SIGTERM / SIGHUP on to every worker exactly once (a trainer that saves on the first signal and
// exits at once on the second must not get two). A launcher that exits stops what is left of its workers.
//
// As a command: node dist/src/dist/launch.js --nproc N [--master-port P] script.js [args...]
import { spawn, type ChildProcess } from "child_process";
import * as net from "net";
import * as readline from "readline";

export interface LaunchOptions {
  /** Default 127.0.0.1 (a one-machine job). */
  masterAddr?: string;
  /** Default: a free port on masterAddr. */
  masterPort?: number;
  /** Extra environment for every worker (on top of this process's). */
  env?: Record<string, string>;
  /** Node flags before the script (e.g. --max-old-space-size=4096). */
  nodeArgs?: string[];
  /**
   * "prefix" (default): each line of a worker's stdout/stderr is printed with "[rank N] " in front;
   * "inherit": workers write to this process's terminal directly; "capture": nothing is printed, lines are
   * returned in LaunchResult.output and passed to onLine.
   */
  output?: "prefix" | "inherit" | "capture";
  /** Called with every output line (prefix and capture modes). */
  onLine?: (rank: number, line: string) => void;
  /** How long stopped workers get between SIGTERM and SIGKILL (default 3000 ms). */
  killGraceMs?: number;
}

export interface WorkerExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Ended by the launcher's signal after another worker failed (or the launcher was interrupted). */
  stopped: boolean;
}

export interface LaunchResult {
  ok: boolean;
  /** The first rank that failed on its own. */
  failedRank?: number;
  /** One line: "all 2 workers finished", "rank 1 was killed by SIGKILL; stopped rank 0". */
  message: string;
  exits: WorkerExit[];
  /** Output lines per rank (prefix and capture modes). */
  output: string[][];
}

/** A TCP port that was free a moment ago on host (the kernel picks it). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** torchrun's variables for one worker of a one-machine job. */
export function torchrunEnv(rank: number, n: number, masterAddr: string, masterPort: number): Record<string, string> {
  return {
    RANK: String(rank),
    LOCAL_RANK: String(rank),
    WORLD_SIZE: String(n),
    LOCAL_WORLD_SIZE: String(n),
    GROUP_RANK: "0",
    ROLE_RANK: String(rank),
    MASTER_ADDR: masterAddr,
    MASTER_PORT: String(masterPort),
  };
}

const describeExit = (e: { code: number | null; signal: NodeJS.Signals | null }): string =>
  e.signal !== null ? `was killed by ${e.signal}` : `exited with code ${e.code}`;

/**
 * Runs n workers of `script` and resolves when all have exited: ok when every one exited with code 0. Never
 * rejects for a worker's failure (see LaunchResult); rejects only if a worker could not be started.
 */
export async function spawnLocalWorkers(n: number, script: string, args: string[] = [], o: LaunchOptions = {}): Promise<LaunchResult> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`spawnLocalWorkers: n ${n} is not a positive integer`);
  const masterAddr = o.masterAddr ?? "127.0.0.1";
  const masterPort = o.masterPort ?? (await freePort(masterAddr));
  const mode = o.output ?? "prefix";
  const grace = o.killGraceMs ?? 3000;
  const output: string[][] = Array.from({ length: n }, () => []);
  const exits: (WorkerExit | undefined)[] = new Array(n).fill(undefined);
  let failed: { rank: number; how: string } | undefined;
  const stoppedByUs = new Set<number>();
  const lastErrLine: string[] = new Array(n).fill("");

  const children: ChildProcess[] = [];
  for (let rank = 0; rank < n; rank++) {
    const env = {
      ...process.env,
      // torchrun's choice: one OpenMP thread per worker unless told otherwise (N workers share the cores).
      OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? (n > 1 ? "1" : undefined),
      ...o.env,
      ...torchrunEnv(rank, n, masterAddr, masterPort),
    };
    const child = spawn(process.execPath, [...(o.nodeArgs ?? []), script, ...args], {
      env,
      stdio: mode === "inherit" ? "inherit" : ["ignore", "pipe", "pipe"],
      detached: true, // its own process group: terminal signals go to the launcher only (see the header)
    });
    children.push(child);
    if (mode !== "inherit") {
      for (const stream of [child.stdout, child.stderr]) {
        if (!stream) continue;
        const toConsole = stream === child.stdout ? process.stdout : process.stderr;
        readline.createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) => {
          output[rank]!.push(line);
          if (stream === child.stderr && line.trim() !== "") lastErrLine[rank] = line.trim();
          o.onLine?.(rank, line);
          if (mode === "prefix") toConsole.write(`[rank ${rank}] ${line}\n`);
        });
      }
    }
  }

  const killTimers: NodeJS.Timeout[] = [];
  const stopOthers = (signal: NodeJS.Signals): void => {
    children.forEach((c, rank) => {
      if (exits[rank] !== undefined) return;
      stoppedByUs.add(rank);
      c.kill(signal);
    });
    const t = setTimeout(() => children.forEach((c, rank) => exits[rank] === undefined && c.kill("SIGKILL")), grace);
    t.unref();
    killTimers.push(t);
  };

  // Ctrl-C, a scheduler's SIGTERM, a closed terminal: pass it on, so no worker outlives the launcher. Workers that
  // end after that, however they end (a trainer saves and exits with 130), were interrupted, not failed.
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = true;
    stopOthers(signal === "SIGHUP" ? "SIGTERM" : signal);
  };
  const forwarded = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  for (const sig of forwarded) process.on(sig, onSignal);
  // The launcher ending for any other reason (an exception, process.exit) takes its workers with it.
  const onExit = (): void => children.forEach((c, rank) => exits[rank] === undefined && c.kill("SIGKILL"));
  process.on("exit", onExit);

  try {
    await Promise.all(
      children.map(
        (child, rank) =>
          new Promise<void>((resolve, reject) => {
            child.on("error", reject);
            child.on("close", (code, signal) => {
              // Signalled by us counts as stopped; exiting with an error code after our signal is a failure of its own,
              // unless the launcher itself was interrupted (then the workers were asked to stop and did).
              const exit: WorkerExit = { rank, code, signal, stopped: stoppedByUs.has(rank) && (signal !== null || interrupted) };
              exits[rank] = exit;
              if ((code !== 0 || signal !== null) && !exit.stopped && failed === undefined) {
                // Its last words, e.g. "DistError: allReduce failed on rank 0 ... Rank 1 did not answer a roll call".
                const why = signal === null && lastErrLine[rank] !== "" ? ` (${lastErrLine[rank]})` : "";
                failed = { rank, how: describeExit(exit) + why };
                stopOthers("SIGTERM");
              }
              resolve();
            });
          }),
      ),
    );
  } finally {
    for (const sig of forwarded) process.off(sig, onSignal);
    process.off("exit", onExit);
    for (const t of killTimers) clearTimeout(t);
  }

  const all = exits as WorkerExit[];
  if (failed === undefined) {
    const interrupted = all.filter((e) => e.stopped);
    if (interrupted.length > 0) return { ok: false, message: `interrupted; stopped ranks ${interrupted.map((e) => e.rank).join(", ")}`, exits: all, output };
    return { ok: true, message: `all ${n} workers finished`, exits: all, output };
  }
  const stopped = all.filter((e) => e.stopped).map((e) => e.rank);
  const alsoFailed = all.filter((e) => e.rank !== failed!.rank && !e.stopped && (e.code !== 0 || e.signal !== null));
  const message =
    `rank ${failed.rank} ${failed.how}` +
    alsoFailed.map((e) => `; then rank ${e.rank} ${describeExit(e)}`).join("") +
    (stopped.length > 0 ? `; stopped rank${stopped.length > 1 ? "s" : ""} ${stopped.join(", ")}` : "");
  return { ok: false, failedRank: failed.rank, message, exits: all, output };
}

/** The command: prints the result and sets the exit code (non-zero, naming the rank, when a worker failed). */
export async function main(argv: string[]): Promise<number> {
  let nproc = 1;
  let masterPort: number | undefined;
  let i = 0;
  for (; i < argv.length && argv[i]!.startsWith("--"); i++) {
    const flag = argv[i]!;
    const value = Number(argv[++i]);
    if (flag === "--nproc" && Number.isInteger(value) && value >= 1) nproc = value;
    else if (flag === "--master-port" && Number.isInteger(value) && value >= 1 && value <= 65535) masterPort = value;
    else throw new Error(`launch: bad flag ${flag} ${argv[i] ?? ""} (usage: launch --nproc N [--master-port P] script.js [args...])`);
  }
  const script = argv[i];
  if (script === undefined) throw new Error("launch: no script (usage: launch --nproc N [--master-port P] script.js [args...])");
  const r = await spawnLocalWorkers(nproc, script, argv.slice(i + 1), { masterPort });
  (r.ok ? console.log : console.error)(`launch: ${r.message}`);
  return r.ok ? 0 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: Error) => {
      console.error(e.message);
      process.exitCode = 2;
    },
  );
}
