// `seer reproduce` (src/reproduce/) end to end with the hidden micro budget `test` (2 pretraining iterations per
// run, 16 px, tiny eval sets, real images from the built-in sets): the report renders from a tiny run. Checks:
// report.md's tables have a row per model with numbers in every cell; the PNG plots decode with sharp at their
// sizes; every stage wrote its result; a rerun skips every stage and recomputes exactly a deleted one; a folder
// of another study is refused; the full budget refuses to start on this machine; a failing stage still leaves a
// (partial) report; the scratch twin is the pretraining's initial trunk; nothing leaks.
import "./helpers/quiet_omp"; // first: before libtorch loads
import { after, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import sharp from "sharp";
import { reproduceCommand } from "../src/reproduce/command";
import { reproduceBudget } from "../src/reproduce/budgets";
import { PLOT_SIZES, writeReport } from "../src/reproduce/report";
import { planStudy, pretrainConfigOf, runStudy } from "../src/reproduce/study";
import { loadBackbone } from "../src/eval/backbone";
import { createModel } from "../src/models/registry";
import { modelOptions } from "../src/train/presets";
import { manualSeed, memory } from "../src/tensor";
import { captureCommand } from "./helpers/capture";

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), "seerkit-reproduce-"));
after(() => fs.rmSync(TMP, { recursive: true, force: true }));
const OUT = path.join(TMP, "study");

const run = (argv: string[]): Promise<{ code: number; out: string; err: string }> => captureCommand(reproduceCommand, argv);

/** The data rows of the markdown table under a heading starting with `title`. */
function tableRows(md: string, title: string): string[][] {
  const at = md.indexOf(`## ${title}`);
  assert.ok(at >= 0, `report has a section "${title}"`);
  const lines = md.slice(at).split("\n").slice(1);
  const start = lines.findIndex((l) => l.startsWith("|"));
  const block: string[] = [];
  for (const l of lines.slice(start)) {
    if (!l.startsWith("|")) break;
    block.push(l);
  }
  assert.ok(block.length >= 2, `${title}: a header and a separator`);
  assert.match(block[1]!, /^\| (---:?|:?---) \|/);
  return block.slice(2).map((l) => l.slice(2, -2).split(" | "));
}

const NUM = /^[+-]?\d+\.\d$/;
const budget = reproduceBudget("test");
const plan = planStudy(budget);

test("the report renders from a micro run: tables, plots, one result per stage, no leaks", async () => {
  const before = memory().numTensors;
  const started = Date.now();
  const r = await run(["--budget", "test", "--out", OUT, "--no-progress", "--threads", "2"]);
  assert.equal(r.code, 0, r.err);
  assert.equal(memory().numTensors, before, "the study frees everything");
  assert.ok(Date.now() - started < 90_000, `micro budget took ${(Date.now() - started) / 1000} s`);
  assert.equal(plan.models.length, 2 + 2 * 2 * 2, "2 scratch twins + 2 trunks x 2 pools x 2 methods");
  assert.equal(plan.stages.length, 8 + plan.models.length * 3);
  assert.deepEqual(fs.readdirSync(path.join(OUT, "results")).sort(), plan.stages.map((s) => `${s.id}.json`).sort());
  assert.match(r.out, /^model\s+kNN\s+linear\s+1% FT\s+10% FT$/m);

  const md = fs.readFileSync(path.join(OUT, "report.md"), "utf8");
  assert.match(md, /^# SEER at small scale: `seer reproduce --budget test --out /);
  assert.match(md, /All stages finished\./);
  const t1 = tableRows(md, "Table 1.");
  assert.equal(t1.length, plan.models.length);
  for (const row of t1) {
    assert.equal(row.length, 8);
    for (const cell of row.slice(5)) assert.match(cell, NUM, `Table 1 row ${row.join(" | ")}`);
  }
  assert.equal(t1.filter((row) => row[0] === "Scratch (random init)").length, 2);
  assert.deepEqual(new Set(t1.map((row) => row[1])), new Set(["–", "uncurated mix", "Imagenette (curated)"]));
  const t2 = tableRows(md, "Table 2.");
  assert.equal(t2.length, plan.models.length);
  for (const row of t2) for (const cell of row.slice(4)) assert.match(cell, NUM);
  const t3 = tableRows(md, "Table 3.");
  assert.equal(t3.length, 8);
  for (const row of t3) {
    assert.match(row[6]!, NUM);
    // gain = pretrained - scratch, as printed
    assert.ok(Math.abs(Number(row[4]) - Number(row[5]) - Number(row[6])) < 0.11, `gain of ${row.join(" | ")}`);
  }
  assert.equal(tableRows(md, "Table 4.").length, 2 * 2);
  const t5 = tableRows(md, "Table 5.");
  assert.deepEqual(t5.map((row) => row[1]), Array(8).fill("2"));
  assert.match(md, /!\[accuracy vs parameters\]\(plots\/accuracy_vs_params\.png\)/);
  assert.match(md, /77\.9% top-1 with 10% of ImageNet/);

  for (const [name, [w, h]] of [["accuracy_vs_params", PLOT_SIZES.accuracyVsParams], ["lowshot", PLOT_SIZES.lowshot]] as const) {
    const meta = await sharp(path.join(OUT, "plots", `${name}.png`)).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["png", w, h], name);
    const stats = await sharp(path.join(OUT, "plots", `${name}.png`)).stats();
    assert.ok(stats.channels.slice(0, 3).some((c) => c.min < 100), `${name} has dark strokes on its white background`);
  }
});

test("a rerun skips every finished stage; a deleted result is recomputed alone", async () => {
  const resultsDir = path.join(OUT, "results");
  const victim = "lowshot10.scratch-microa.json";
  const mtimes = new Map(fs.readdirSync(resultsDir).map((f) => [f, fs.statSync(path.join(resultsDir, f)).mtimeMs]));
  const again = await run(["--budget", "test", "--out", OUT, "--no-progress"]);
  assert.equal(again.code, 0, again.err);
  assert.equal((again.out.match(/: done before/g) ?? []).length, plan.stages.length);
  for (const [f, m] of mtimes) assert.equal(fs.statSync(path.join(resultsDir, f)).mtimeMs, m, `${f} untouched`);
  // The report of a rerun that decoded nothing still describes the evaluation data (saved by the first run).
  assert.match(fs.readFileSync(path.join(OUT, "report.md"), "utf8"), /1%: \d+ images, .* 10%: \d+ images/);

  const saved = JSON.parse(fs.readFileSync(path.join(resultsDir, victim), "utf8")) as { result: { top1: number } };
  fs.rmSync(path.join(resultsDir, victim));
  const third = await run(["--budget", "test", "--out", OUT, "--no-progress"]);
  assert.equal(third.code, 0, third.err);
  assert.equal((third.out.match(/: done before/g) ?? []).length, plan.stages.length - 1);
  assert.match(third.out, /lowshot10\.scratch-microa: fine-tuned on 947 images/);
  const redone = JSON.parse(fs.readFileSync(path.join(resultsDir, victim), "utf8")) as { result: { top1: number } };
  assert.equal(redone.result.top1, saved.result.top1, "the same seeded stage gives the same result");

  // A lost pretraining record: the finished run folder is recognized, not reopened (its weights keep their mtime),
  // and the evaluations of those weights stay cached.
  const runDir = path.join(OUT, "pretrain", "simclr-curated-microb");
  const weightsMtime = fs.statSync(path.join(runDir, "backbone.safetensors")).mtimeMs;
  fs.rmSync(path.join(resultsDir, "pretrain.simclr-curated-microb.json"));
  const fourth = await run(["--budget", "test", "--out", OUT, "--no-progress"]);
  assert.equal(fourth.code, 0, fourth.err);
  assert.equal((fourth.out.match(/: done before/g) ?? []).length, plan.stages.length);
  assert.equal(fs.statSync(path.join(runDir, "backbone.safetensors")).mtimeMs, weightsMtime);
  assert.ok(fs.existsSync(path.join(resultsDir, "pretrain.simclr-curated-microb.json")), "the record is written back");
});

test("another study's folder is refused; the full budget does not start here; --dry-run prints the plan", async () => {
  const other = await run(["--budget", "tiny", "--out", OUT, "--no-progress"]);
  assert.equal(other.code, 1);
  assert.match(other.err, /holds a reproduce study with other settings \(budget 'test'/);
  const full = await run(["--budget", "full"]);
  assert.equal(full.code, 2);
  assert.match(full.err, /GPU cluster/);
  const dry = await run(["--budget", "full", "--dry-run"]);
  assert.equal(dry.code, 0);
  assert.match(dry.out, /trunk\s+RegNetY-256GF: seer_regnet_y_256gf, 1\.27B parameters/);
  assert.match(dry.out, /LARC\(trust 0\.001\) \+ SGD momentum 0\.9, 0\.3 per 256 images/);
  const bad = await run(["--budget", "huge"]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /unknown budget 'huge' \(known: tiny, small, full\)/);
});

test("a failing stage stops the study with what finished, and the report says it is partial", async () => {
  const b = reproduceBudget("test");
  b.eval.testSource = "builtin:imagenette/nope";
  const dir = path.join(TMP, "broken");
  const r = await runStudy({ budget: b, outDir: dir, threads: 2, progress: false, log: () => {} });
  assert.match(String(r.stoppedBy?.message), /nope/);
  assert.equal(r.complete, false);
  await writeReport(r, dir, "seer reproduce --budget test");
  const md = fs.readFileSync(path.join(dir, "report.md"), "utf8");
  assert.match(md, /Partial: some stages have not run yet/);
  assert.ok(tableRows(md, "Table 1.").every((row) => row[5] === "–"));
});

test("the scratch twin is the pretraining run's initial trunk (same seed, same createModel call)", () => {
  const m = plan.models.find((x) => x.kind === "pretrained" && x.trunk.id === "microb")!;
  const c = pretrainConfigOf(budget, m, 1);
  manualSeed(c.run.seed); // what train/trainer.ts buildMethod does before building the trunk
  using init = createModel(c.model.arch, modelOptions(c.model));
  const twin = loadBackbone({ checkpoint: `random:${m.trunk.arch}`, smallImageStem: m.trunk.smallImageStem, modelOptions: m.trunk.design, seed: budget.seed });
  try {
    for (const [k, t] of init.stateDict()) assert.deepEqual(twin.backbone.stateDict().get(k)!.toArray(), t.toArray(), k);
  } finally {
    twin.backbone.dispose();
  }
});
