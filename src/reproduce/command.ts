// `seer reproduce`: the SEER study at a budget (budgets.ts), run stage by stage with every finished stage cached
// in the output folder (study.ts), then report.md and its plots (report.ts).
//
//   seer reproduce [--budget tiny|small|full] [--out DIR] [--threads N] [--dry-run] [--no-progress]
//
// Exit status: 0 done, 130 interrupted (a pretraining checkpoint was saved; run the same command to continue), 1 a
// stage failed (the report shows what finished), 2 a usage error or a budget this machine cannot run.
import * as path from "path";
import { formatFlags, parseArgs, UsageError, type FlagSpec } from "../cli/args";
import { describeConfig } from "../train/presets";
import { BUDGET_NAMES, reproduceBudget, type ReproduceBudget } from "./budgets";
import { fmtParams, writeReport } from "./report";
import { StudyInterrupted, planStudy, pretrainConfigOf, runStudy, trunkParams, type StudyResults } from "./study";

const FLAGS: Record<string, FlagSpec> = {
  budget: { type: "string", help: `how much compute: ${BUDGET_NAMES.join(", ")}`, default: "tiny" },
  out: { type: "string", help: "output folder (default runs/reproduce-<budget>); a rerun there skips finished stages" },
  threads: { type: "number", help: "intra-op threads (0: all cores)", default: 0 },
  "dry-run": { type: "boolean", help: "print the plan (models, stages, pretraining configs) and exit" },
  "no-progress": { type: "boolean", help: "no progress bars" },
  help: { type: "boolean", help: "show this help" },
};

const USAGE =
  "usage: seer reproduce [--budget tiny|small|full] [--out DIR] [--threads N] [--dry-run]\n\n" +
  "The SEER study at small scale: SwAV and SimCLR pretraining of RegNetY trunks of two or three sizes on an uncurated\n" +
  "pool and on a curated pool of the same size; each trunk evaluated by kNN, linear probe and low-shot (1% / 10%)\n" +
  "fine-tuning, next to its scratch twin. Writes report.md and plots/*.png in the output folder. Every finished stage\n" +
  "is cached there: rerunning the command continues where it stopped (Ctrl-C included).";

function describePlan(b: ReproduceBudget): string {
  const plan = planStudy(b);
  const lines = [`budget     ${b.name}: ${b.summary}`, `expected   ${b.expected}`];
  for (const t of b.trunks) lines.push(`trunk      ${t.label}: ${t.arch}${Object.keys(t.design).length ? ` ${JSON.stringify(t.design)}` : ""}, ${fmtParams(trunkParams(t))} parameters`);
  for (const p of b.pools) lines.push(`pool       ${p.id}: ${p.source}${b.poolImages > 0 ? ` (${b.poolImages} images)` : ""}`);
  lines.push(`eval       ${b.eval.trainSource} (${b.eval.trainSamples || "all"}) / ${b.eval.testSource} (${b.eval.testSamples || "all"}); low-shot ${b.eval.lowshot.map((l) => `${l.pct}%: ${l.iterations} it of ${l.batchSize}`).join(", ")}`);
  lines.push(`stages     ${plan.stages.length}: ${plan.stages.map((s) => s.id).join(", ")}`);
  for (const method of b.methods) {
    const m = plan.models.find((x) => x.method === method)!;
    lines.push("", `pretraining config of ${m.id}:`, describeConfig(pretrainConfigOf(b, m, 0), m.id));
  }
  return lines.join("\n");
}

/** A few lines of results for the terminal (report.md has the tables). */
function summary(r: StudyResults): string {
  const pcts = r.budget.eval.lowshot.map((l) => l.pct);
  const head = ["model", "kNN", "linear", ...pcts.map((p) => `${p}% FT`)];
  const rows = r.plan.models.map((m) => [m.id, r.frozen[m.id]?.knnTop1, r.frozen[m.id]?.linearTop1, ...pcts.map((p) => r.lowshot[m.id]?.[p]?.top1)].map((v) => (typeof v === "number" ? v.toFixed(1) : v ?? "-")));
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => String(row[i]).length)));
  const line = (cells: (string | number)[]): string => cells.map((c, i) => (i === 0 ? String(c).padEnd(w[i]!) : String(c).padStart(w[i]!))).join("  ");
  return [line(head), ...rows.map(line)].join("\n");
}

/** `seer reproduce ...`; returns the exit status. */
export async function reproduceCommand(argv: string[]): Promise<number> {
  let budget: ReproduceBudget;
  let flags: Record<string, string | number | boolean | undefined>;
  try {
    const parsed = parseArgs(argv, FLAGS);
    flags = parsed.flags;
    if (flags.help) {
      console.log(`${USAGE}\n\noptions:\n${formatFlags(FLAGS)}\n\nbudgets:\n${BUDGET_NAMES.map((n) => `  ${n.padEnd(6)} ${reproduceBudget(n).summary} (${reproduceBudget(n).expected})`).join("\n")}`);
      return 0;
    }
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument '${parsed.positionals[0]}'`);
    try {
      budget = reproduceBudget(flags.budget as string);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const threads = flags.threads as number;
    if (!Number.isInteger(threads) || threads < 0) throw new UsageError(`Expected a non-negative integer for --threads but received ${threads}`);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`seer reproduce: ${e.message}`);
    return 2;
  }
  if (flags["dry-run"]) {
    console.log(describePlan(budget));
    return 0;
  }
  if (!budget.cpu) {
    console.error(
      `seer reproduce: budget '${budget.name}' is the paper's configuration (${budget.summary}). It needs a GPU cluster ` +
        `(${budget.expected}), the uncurated pool as tar shards and ImageNet; this command runs the study in one process ` +
        `on this machine and will not start it. --dry-run prints its configuration; the small budget is the largest that runs here.`,
    );
    return 2;
  }

  const outDir = (flags.out as string | undefined) ?? path.join("runs", `reproduce-${budget.name}`);
  const command = `seer reproduce --budget ${budget.name}${flags.out !== undefined ? ` --out ${flags.out as string}` : ""}`;
  const plan = planStudy(budget);
  console.log(`reproduce  budget ${budget.name}: ${budget.summary}`);
  console.log(`           ${plan.models.length} models, ${plan.stages.length} stages, expected ${budget.expected}; output ${outDir} (finished stages are kept: rerun to continue)`);
  let results: StudyResults;
  try {
    results = await runStudy({ budget, outDir, threads: flags.threads as number, progress: flags["no-progress"] !== true });
  } catch (e) {
    console.error(`seer reproduce: ${(e as Error).message}`);
    return 1;
  }
  const files = await writeReport(results, outDir, command);
  console.log("");
  console.log(summary(results));
  console.log("");
  console.log(`report     ${files.report} (plots: ${files.plots.map((p) => path.relative(outDir, p)).join(", ")}); wall time ${results.wallSeconds.toFixed(0)} s`);
  const stopped = results.stoppedBy;
  if (stopped instanceof StudyInterrupted) {
    console.error(`seer reproduce: ${stopped.message}`);
    return 130;
  }
  if (stopped) {
    console.error(`seer reproduce: stopped: ${stopped.message}`);
    if (process.env.SEERKIT_DEBUG) console.error(stopped.stack);
    return 1;
  }
  return 0;
}
