// report.md of a `seer reproduce` study, with its tables laid out as the SEER paper's (Goyal et al. 2021) and two
// plots drawn as SVG here and rendered to PNG by sharp (libvips' librsvg):
//
//   Table 1  frozen features: Method | Data | #images | Arch. | #param. | kNN | linear probe (the paper's comparison
//            tables: method, pretraining data and size, architecture, parameters, accuracy)
//   Table 2  low-shot: Method | Data | Arch. | #param. | 1% | 10% (the paper's low-shot table)
//   Table 3  pretrained vs scratch, same architecture and schedule (the paper's figure comparing fine-tuning of
//            pretrained and scratch RegNets across capacities, as numbers)
//   Table 4  uncurated vs curated pool of the same size
//   Table 5  the pretraining runs (iterations, final loss, speed)
//   plots    plots/accuracy_vs_params.png: low-shot top-1 against trunk parameters, pretrained and scratch, 1% and 10%
//            side by side; plots/lowshot.png: 1% and 10% bars per model, grouped by trunk
//
// Missing results (a study stopped early) show as "–". The paper's own figures quoted at the end are only those
// /work/shared/docs/seer-facts.md has from the abstract and the released checkpoints; its per-model tables were not
// available, and none are made up here.
import * as fs from "fs";
import * as path from "path";
import sharp from "sharp";
import { describeConfig } from "../train/presets";
import { pretrainConfigOf, type StudyModel, type StudyResults } from "./study";

/** Pixel sizes of the plots (width, height). */
export const PLOT_SIZES = Object.freeze({ accuracyVsParams: [1000, 420] as const, lowshot: [1000, 440] as const });

export interface ReportFiles {
  report: string;
  plots: string[];
}

const dash = "–";
const f1 = (v: number | undefined): string => (v === undefined ? dash : v.toFixed(1));
const signed = (v: number | undefined): string => (v === undefined ? dash : `${v >= 0 ? "+" : ""}${v.toFixed(1)}`);
const diff = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined ? undefined : a - b);

/** 2.79M, 167k, 1.27B. */
export function fmtParams(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)}k`;
  return String(n);
}

function fmtDuration(s: number): string {
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${s.toFixed(1)} s`;
}

function table(head: string[], rows: string[][], align?: ("l" | "r")[]): string {
  const a = align ?? head.map((_, i) => (i === 0 ? "l" : "r"));
  const sep = a.map((x) => (x === "r" ? "---:" : "---"));
  return [head, sep, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

const methodLabel = (m: StudyModel): string => (m.kind === "scratch" ? "Scratch (random init)" : m.method === "swav" ? "SwAV" : "SimCLR");

/** The report's markdown (without writing anything). */
export function reportMarkdown(r: StudyResults, command: string): string {
  const b = r.budget;
  const { models } = r.plan;
  const trunkOf = (id: string): number => r.trunkParams[id] ?? 0;
  const C = 10; // Imagenette / CIFAR-10 classes: chance top-1 10%
  const out: string[] = [];
  out.push(`# SEER at small scale: \`${command}\``, "");
  const compute = Object.values(r.stageSeconds).reduce((a, s) => a + s, 0);
  const pretrainS = Object.entries(r.stageSeconds).filter(([k]) => k.startsWith("pretrain.")).reduce((a, [, s]) => a + s, 0);
  out.push(
    `Budget **${b.name}**: ${b.summary}. ${r.complete ? "All stages finished." : "**Partial: some stages have not run yet (\"–\"); rerun the command to finish them.**"}`,
    `Wall time of this invocation ${fmtDuration(r.wallSeconds)}; recorded stage time ${fmtDuration(compute)} (pretraining ${fmtDuration(pretrainS)}, evaluation ${fmtDuration(compute - pretrainS)}), including stages cached from earlier invocations.`,
    "",
    "The study of Goyal et al. 2021 (\"Self-supervised Pretraining of Visual Features in the Wild\"): self-supervised pretraining of RegNetY trunks of several sizes on uncurated images, against the same trunks trained from scratch, by low-shot fine-tuning and by linear evaluation; SimCLR next to SwAV. Here at a scale that fits the budget (see the notes at the end for how far the numbers carry).",
    "",
  );

  // Setup.
  out.push("## Setup", "");
  out.push(table(["Pool", "Images", "What"], b.pools.map((p) => [p.label, b.poolImages > 0 ? b.poolImages.toLocaleString("en-US") : "all", p.description]), ["l", "r", "l"]), "");
  out.push(
    table(
      ["Arch.", "createModel", "Stem", "#param. (trunk)"],
      b.trunks.map((t) => [t.label, `${t.arch}${Object.keys(t.design).length ? ` ${JSON.stringify(t.design)}` : ""}`, t.smallImageStem ? "3x3 stride 1 (CIFAR)" : "3x3 stride 2", fmtParams(trunkOf(t.id))]),
      ["l", "l", "l", "r"],
    ),
    "",
  );
  const first = models.filter((m) => m.kind === "pretrained");
  for (const method of b.methods) {
    const m = first.find((x) => x.method === method);
    if (!m) continue;
    out.push(`Pretraining, ${method === "swav" ? "SwAV" : "SimCLR"} (shown for ${m.id}; the other runs differ in model and data.source only):`, "", "```", describeConfig(pretrainConfigOf(b, m, 0), m.id), "```", "");
  }
  const e = b.eval;
  const ed = r.evalData;
  out.push(
    `Evaluation: images at ${b.imageSize} px (${ed?.transform ?? "resize, center crop"}, ImageNet mean/std). kNN (k ${e.knn.k}, T ${e.knn.temperature}) and a linear probe (BN without affine + linear, SGD, ${e.linear.epochs} epochs, lr ${e.linear.lr}) on frozen features of ${ed ? `${ed.nTrain} images of ${ed.train}` : e.trainSource}; ` +
      `low-shot: full fine-tuning (trunk + BN without affine + new linear head, SGD Nesterov, cosine, RandomResizedCrop (${e.cropScale}, 1) + flip, BN in train mode, wd ${e.weightDecay}) on the stratified ${e.lowshot.map((l) => `${l.pct}%`).join(" / ")} subsets of ${e.trainSource}` +
      ` (${e.lowshot.map((l) => `${l.pct}%: ${ed?.lowshotTrain[l.pct] ?? "?"} images, ${l.iterations} iterations of ${l.batchSize}, lr ${l.lr}${l.headLr !== l.lr ? ` / head ${l.headLr}` : ""}`).join("; ")}); ` +
      `all tested on ${ed ? `${ed.nTest} images of ${ed.test}` : e.testSource}. Scratch twins: the same trunk at the random init the pretraining started from (same seed), through the same evaluations.`,
    "",
  );

  // Table 1.
  const rows1: string[][] = [];
  for (const t of b.trunks) {
    for (const m of models.filter((x) => x.trunk.id === t.id)) {
      const fr = r.frozen[m.id];
      rows1.push([methodLabel(m), m.pool?.label ?? dash, m.pool ? b.poolImages.toLocaleString("en-US") : dash, t.label, fmtParams(trunkOf(t.id)), f1(fr?.knnTop1), f1(fr?.linearTop1), f1(fr?.linearTop5)]);
    }
  }
  out.push("## Table 1. Frozen features: kNN and linear probe (top-1 / top-5, %)", "");
  out.push(table(["Method", "Data", "#images", "Arch.", "#param.", "kNN top-1", "Linear top-1", "Linear top-5"], rows1, ["l", "l", "r", "l", "r", "r", "r", "r"]), "");

  // Table 2.
  const pcts = e.lowshot.map((l) => l.pct);
  const rows2: string[][] = [];
  for (const t of b.trunks) {
    for (const m of models.filter((x) => x.trunk.id === t.id)) {
      const ls = r.lowshot[m.id] ?? {};
      rows2.push([m.kind === "scratch" ? "Scratch (same schedule)" : methodLabel(m), m.pool?.label ?? dash, t.label, fmtParams(trunkOf(t.id)), ...pcts.map((p) => f1(ls[p]?.top1)), ...pcts.map((p) => f1(ls[p]?.top5))]);
    }
  }
  out.push(`## Table 2. Low-shot learning: fine-tuning on ${pcts.map((p) => `${p}%`).join(" and ")} of the labels (top-1 / top-5, %)`, "");
  out.push(table(["Method", "Data", "Arch.", "#param.", ...pcts.map((p) => `${p}% top-1`), ...pcts.map((p) => `${p}% top-5`)], rows2, ["l", "l", "l", "r", ...pcts.map(() => "r" as const), ...pcts.map(() => "r" as const)]), "");

  // Table 3.
  const rows3: string[][] = [];
  for (const m of models.filter((x) => x.kind === "pretrained")) {
    const scratch = r.lowshot[`scratch-${m.trunk.id}`] ?? {};
    const mine = r.lowshot[m.id] ?? {};
    rows3.push([methodLabel(m), m.pool!.label, m.trunk.label, fmtParams(trunkOf(m.trunk.id)), ...pcts.flatMap((p) => [f1(mine[p]?.top1), f1(scratch[p]?.top1), signed(diff(mine[p]?.top1, scratch[p]?.top1))])]);
  }
  out.push("## Table 3. Pretrained vs scratch: the same architecture and fine-tuning schedule (top-1, %)", "");
  out.push(table(["Method", "Data", "Arch.", "#param.", ...pcts.flatMap((p) => [`${p}% pretrained`, `${p}% scratch`, "gain"])], rows3, ["l", "l", "l", "r", ...pcts.flatMap(() => ["r", "r", "r"] as const)]), "");

  // Table 4.
  const uncurated = b.pools.find((p) => p.id === "uncurated");
  const curated = b.pools.find((p) => p.id === "curated");
  if (uncurated && curated) {
    const rows4: string[][] = [];
    for (const t of b.trunks) {
      for (const method of b.methods) {
        const u = `${method}-uncurated-${t.id}`;
        const c = `${method}-curated-${t.id}`;
        const cells: string[] = [method === "swav" ? "SwAV" : "SimCLR", t.label];
        const pairs: [number | undefined, number | undefined][] = [
          [r.frozen[u]?.knnTop1, r.frozen[c]?.knnTop1],
          [r.frozen[u]?.linearTop1, r.frozen[c]?.linearTop1],
          ...pcts.map((p): [number | undefined, number | undefined] => [r.lowshot[u]?.[p]?.top1, r.lowshot[c]?.[p]?.top1]),
        ];
        for (const [a, bb] of pairs) cells.push(f1(a), f1(bb), signed(diff(a, bb)));
        rows4.push(cells);
      }
    }
    const metrics = ["kNN", "linear", ...pcts.map((p) => `${p}%`)];
    out.push(`## Table 4. Uncurated vs curated pool, ${b.poolImages.toLocaleString("en-US")} images each (top-1, %)`, "");
    out.push(table(["Method", "Arch.", ...metrics.flatMap((x) => [`${x} uncurated`, `${x} curated`, "Δ"])], rows4, ["l", "l", ...metrics.flatMap(() => ["r", "r", "r"] as const)]), "");
  }

  // Table 5.
  const rows5 = models.filter((m) => m.kind === "pretrained").map((m) => {
    const p = r.pretrain[m.id];
    const c = pretrainConfigOf(b, m, 0);
    // The loss of uninformative outputs: SwAV's uniform predictions over K prototypes, ln K; SimCLR's uniform
    // similarities over the 2B - 1 other views, ln(2B - 1).
    const uniform = c.method === "swav" ? Math.log(c.swav.prototypes) : Math.log(2 * c.data.batchSize - 1);
    return [m.id, p ? String(p.iterations) : dash, p?.lastLoss !== undefined ? p.lastLoss.toFixed(3) : dash, uniform.toFixed(3), p ? p.imagesPerS.toFixed(1) : dash, p ? fmtDuration(r.stageSeconds[`pretrain.${m.id}`] ?? p.wallSeconds) : dash];
  });
  out.push("## Table 5. Pretraining runs", "", "\"Uniform\" is the loss of outputs that carry no information (SwAV: ln K prototypes; SimCLR: ln(2B − 1) candidates): a final loss near it means the run had not started to learn.", "");
  out.push(table(["Run", "Iterations", "Final loss", "Uniform", "Images/s", "Time"], rows5), "");

  // Plots.
  out.push("## Plots", "", "Low-shot top-1 against trunk parameters, pretrained (solid: uncurated pool, dashed: curated) and scratch (grey, dotted):", "", "![accuracy vs parameters](plots/accuracy_vs_params.png)", "", "Low-shot top-1 per model, grouped by trunk:", "", "![low-shot bars](plots/lowshot.png)", "");

  // Paper reference and reading notes.
  out.push(
    "## The paper, for reference",
    "",
    "SEER (RegNetY-256GF as the paper names it, 1.3B parameters, SwAV on 1B random Instagram images, 512 V100 GPUs) reaches 84.2% top-1 fine-tuned on ImageNet and 77.9% top-1 with 10% of ImageNet's labels (paper abstract). " +
      "The re-released checkpoints fine-tuned at 384 px: RegNetY-32GF 83.4, 64GF 84.0, 128GF 84.5, 256GF 85.2 (VISSL projects/SEER README, 2022). " +
      "The paper's per-model fine-tuning, low-shot and pretrained-vs-scratch tables were not available to this project (seer-facts.md), so no rows of them appear here.",
    "",
    "## How far these numbers carry",
    "",
  );
  const n = ed?.nTest ?? e.testSamples;
  if (n > 0) {
    const se = (p: number): number => 100 * Math.sqrt((p / 100) * (1 - p / 100) / n);
    out.push(`- ${C} classes: chance is ${(100 / C).toFixed(0)}% top-1 and ${(500 / C).toFixed(0)}% top-5. With ${n} test images the standard error of a top-1 near 30% is ±${se(30).toFixed(1)} points (±${se(10).toFixed(1)} near 10%): differences below about twice that are noise.`);
  }
  out.push(
    `- Budget ${b.name}: ${b.name === "small" ? "an overnight CPU run; still orders of magnitude below the paper (minutes of a GPU cluster's compute)" : b.name === "full" ? "the paper's configuration" : "seconds to minutes of CPU per run, a few dozen iterations; the pipeline is real but the gaps are small and partly noise"}. The paper's conclusions rest on 1B images and up to 1.3B parameters; whether they hold at this scale is what the tables show, not what they assume.`,
    "- Scratch twins get the same fine-tuning schedule as the pretrained trunks; a schedule tuned for training from scratch would do better on them (the paper's scratch models were trained to convergence on full ImageNet).",
    "",
  );
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// SVG plots

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const FONT = `font-family="DejaVu Sans, Arial, sans-serif"`;

function text(x: number, y: number, s: string, o: { size?: number; anchor?: "start" | "middle" | "end"; fill?: string; weight?: string; rotate?: number } = {}): string {
  const rot = o.rotate ? ` transform="rotate(${o.rotate} ${x} ${y})"` : "";
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${FONT} font-size="${o.size ?? 12}" text-anchor="${o.anchor ?? "start"}" fill="${o.fill ?? "#222"}"${o.weight ? ` font-weight="${o.weight}"` : ""}${rot}>${esc(s)}</text>`;
}

/** "Nice" tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, count = 5): number[] {
  const span = Math.max(hi - lo, 1e-9);
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count + 0.5) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

/** A y range of whole tens around the values and chance, within [0, 100]. */
function yRange(values: number[], chance: number): [number, number] {
  const vs = [...values, chance];
  return [Math.max(0, Math.floor((Math.min(...vs) - 2) / 10) * 10), Math.min(100, Math.ceil((Math.max(...vs) + 2) / 10) * 10)];
}

interface Series {
  label: string;
  color: string;
  dash?: string;
  points: [number, number][]; // (params, top-1)
}

const COLORS: Record<string, string> = { swav: "#1f5fa8", simclr: "#c0392b", scratch: "#666666" };

function seriesFor(r: StudyResults, pct: number): Series[] {
  const b = r.budget;
  const out: Series[] = [];
  for (const method of b.methods) {
    for (const pool of b.pools) {
      const points = b.trunks.flatMap((t): [number, number][] => {
        const v = r.lowshot[`${method}-${pool.id}-${t.id}`]?.[pct]?.top1;
        return v === undefined ? [] : [[r.trunkParams[t.id]!, v]];
      });
      out.push({ label: `${method === "swav" ? "SwAV" : "SimCLR"}, ${pool.id}`, color: COLORS[method]!, ...(pool.id === "curated" ? { dash: "7 4" } : {}), points });
    }
  }
  const scratch = b.trunks.flatMap((t): [number, number][] => {
    const v = r.lowshot[`scratch-${t.id}`]?.[pct]?.top1;
    return v === undefined ? [] : [[r.trunkParams[t.id]!, v]];
  });
  out.push({ label: "scratch", color: COLORS.scratch!, dash: "2 3", points: scratch });
  return out;
}

/** Two panels (one per low-shot pct): top-1 against log parameters. */
export function accuracyVsParamsSvg(r: StudyResults): string {
  const [W, H] = PLOT_SIZES.accuracyVsParams;
  const pcts = r.budget.eval.lowshot.map((l) => l.pct).slice(0, 2);
  const panelW = W / Math.max(pcts.length, 1);
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  const params = Object.values(r.trunkParams).filter((p) => p > 0);
  const lx = params.map((p) => Math.log10(p));
  let [xlo, xhi] = [Math.min(...lx), Math.max(...lx)];
  if (!(xhi > xlo)) [xlo, xhi] = [xlo - 0.5, xhi + 0.5];
  const pad = (xhi - xlo) * 0.12;
  [xlo, xhi] = [xlo - pad, xhi + pad];
  // One y range for both panels, so that they compare at a glance.
  const allValues = pcts.flatMap((p) => seriesFor(r, p).flatMap((s) => s.points.map(([, v]) => v)));
  const [ylo, yhi] = yRange(allValues.length ? allValues : [10], 10);
  pcts.forEach((p, k) => {
    const x0 = k * panelW + 60;
    const x1 = (k + 1) * panelW - (k === pcts.length - 1 ? 170 : 30);
    const y0 = 50;
    const y1 = H - 55;
    const series = seriesFor(r, p);
    const X = (v: number): number => x0 + ((Math.log10(v) - xlo) / (xhi - xlo)) * (x1 - x0);
    const Y = (v: number): number => y1 - ((v - ylo) / (yhi - ylo)) * (y1 - y0);
    parts.push(text((x0 + x1) / 2, 28, `Fine-tuned on ${p}% of the labels`, { size: 15, anchor: "middle", weight: "bold" }));
    for (const t of ticks(ylo, yhi)) {
      parts.push(`<line x1="${x0}" y1="${Y(t).toFixed(1)}" x2="${x1}" y2="${Y(t).toFixed(1)}" stroke="#e3e3e3"/>`, text(x0 - 8, Y(t) + 4, `${t}`, { anchor: "end", size: 11 }));
    }
    parts.push(`<line x1="${x0}" y1="${Y(10).toFixed(1)}" x2="${x1}" y2="${Y(10).toFixed(1)}" stroke="#999" stroke-dasharray="4 4"/>`, text(x0 + 4, Y(10) - 4, "chance", { size: 10, fill: "#777" }));
    for (const t of r.budget.trunks) {
      const v = r.trunkParams[t.id]!;
      parts.push(`<line x1="${X(v).toFixed(1)}" y1="${y1}" x2="${X(v).toFixed(1)}" y2="${y1 + 5}" stroke="#333"/>`, text(X(v), y1 + 18, fmtParams(v), { anchor: "middle", size: 11 }));
    }
    parts.push(`<rect x="${x0}" y="${y0}" width="${x1 - x0}" height="${y1 - y0}" fill="none" stroke="#333"/>`);
    parts.push(text((x0 + x1) / 2, H - 12, "trunk parameters (log scale)", { anchor: "middle", size: 12 }), text(18, (y0 + y1) / 2, "top-1 (%)", { anchor: "middle", size: 12, rotate: -90 }));
    for (const s of series) {
      if (s.points.length === 0) continue;
      const pts = s.points.map(([px, v]) => `${X(px).toFixed(1)},${Y(v).toFixed(1)}`).join(" ");
      parts.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`);
      for (const [px, v] of s.points) parts.push(`<circle cx="${X(px).toFixed(1)}" cy="${Y(v).toFixed(1)}" r="4" fill="${s.dash === "7 4" ? "white" : s.color}" stroke="${s.color}" stroke-width="2"/>`);
    }
    if (k === pcts.length - 1) {
      series.forEach((s, i) => {
        const ly = y0 + 12 + i * 22;
        parts.push(`<line x1="${x1 + 15}" y1="${ly}" x2="${x1 + 45}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`, text(x1 + 52, ly + 4, s.label, { size: 11 }));
      });
    }
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/** Bars of low-shot top-1 per model (two pcts side by side), grouped by trunk. */
export function lowshotBarsSvg(r: StudyResults): string {
  const [W, H] = PLOT_SIZES.lowshot;
  const b = r.budget;
  const pcts = b.eval.lowshot.map((l) => l.pct);
  const groups = b.trunks.map((t) => ({ trunk: t, models: r.plan.models.filter((m) => m.trunk.id === t.id) }));
  const values = r.plan.models.flatMap((m) => pcts.map((p) => r.lowshot[m.id]?.[p]?.top1)).filter((v): v is number => v !== undefined);
  const [ylo, yhi] = [0, yRange(values.length ? values : [10], 10)[1]];
  const x0 = 60;
  const x1 = W - 20;
  const y0 = 50;
  const y1 = H - 95;
  const Y = (v: number): number => y1 - ((v - ylo) / (yhi - ylo)) * (y1 - y0);
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  parts.push(text(W / 2, 28, `Low-shot fine-tuning: top-1 with ${pcts.map((p) => `${p}%`).join(" and ")} of the labels`, { size: 15, anchor: "middle", weight: "bold" }));
  for (const t of ticks(ylo, yhi)) parts.push(`<line x1="${x0}" y1="${Y(t).toFixed(1)}" x2="${x1}" y2="${Y(t).toFixed(1)}" stroke="#e3e3e3"/>`, text(x0 - 8, Y(t) + 4, `${t}`, { anchor: "end", size: 11 }));
  const slots = groups.reduce((n, g) => n + g.models.length, 0) + (groups.length - 1) * 0.6;
  const slotW = (x1 - x0) / Math.max(slots, 1);
  const barW = (slotW * 0.8) / Math.max(pcts.length, 1);
  const shade = (m: StudyModel, i: number): string => {
    const base = m.kind === "scratch" ? ["#b5b5b5", "#6b6b6b"] : m.method === "swav" ? ["#9dbce0", "#1f5fa8"] : ["#e8a49c", "#c0392b"];
    return base[Math.min(i, 1)]!;
  };
  let slot = 0;
  for (const g of groups) {
    const gStart = x0 + slot * slotW;
    for (const m of g.models) {
      const cx = x0 + slot * slotW;
      pcts.forEach((p, i) => {
        const v = r.lowshot[m.id]?.[p]?.top1;
        const bx = cx + slotW * 0.1 + i * barW;
        if (v === undefined) return;
        const hatch = m.pool?.id === "curated" ? ` stroke="#222" stroke-dasharray="3 2"` : "";
        parts.push(`<rect x="${bx.toFixed(1)}" y="${Y(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(y1 - Y(v)).toFixed(1)}" fill="${shade(m, i)}"${hatch}/>`);
        parts.push(text(bx + (barW - 2) / 2, Y(v) - 3, v.toFixed(0), { anchor: "middle", size: 9, fill: "#333" }));
      });
      const short = m.kind === "scratch" ? ["scratch", ""] : [m.method === "swav" ? "SwAV" : "SimCLR", m.pool!.id === "uncurated" ? "uncur." : "curated"];
      parts.push(text(cx + slotW / 2, y1 + 16, short[0]!, { anchor: "middle", size: 11 }), text(cx + slotW / 2, y1 + 30, short[1]!, { anchor: "middle", size: 10, fill: "#555" }));
      slot++;
    }
    const gEnd = x0 + slot * slotW;
    parts.push(`<line x1="${gStart + 4}" y1="${y1 + 40}" x2="${gEnd - 4}" y2="${y1 + 40}" stroke="#333"/>`, text((gStart + gEnd) / 2, y1 + 56, `${g.trunk.label.replace(/ \(.*\)$/, "")} (${fmtParams(r.trunkParams[g.trunk.id] ?? 0)})`, { anchor: "middle", size: 12 }));
    slot += 0.6;
  }
  parts.push(`<line x1="${x0}" y1="${Y(10).toFixed(1)}" x2="${x1}" y2="${Y(10).toFixed(1)}" stroke="#999" stroke-dasharray="4 4"/>`, text(x0 + 4, Y(10) - 4, "chance", { size: 10, fill: "#777" }));
  parts.push(`<line x1="${x0}" y1="${y1}" x2="${x1}" y2="${y1}" stroke="#333"/>`, text(18, (y0 + y1) / 2, "top-1 (%)", { anchor: "middle", size: 12, rotate: -90 }));
  // Legend: the lighter bar of a pair is the first pct, the darker one the second.
  const legend = pcts.length === 2 ? `left, lighter bar: ${pcts[0]}% of the labels; right, darker bar: ${pcts[1]}%.` : `${pcts.map((p) => `${p}%`).join(", ")} of the labels, left to right.`;
  parts.push(text(x0, H - 12, `${legend} Blue: SwAV, red: SimCLR, grey: scratch; dashed outline: curated pool.`, { size: 11, fill: "#444" }));
  parts.push("</svg>");
  return parts.join("\n");
}

/** Writes report.md and the plots (PNG, and their SVG sources) into outDir. */
export async function writeReport(r: StudyResults, outDir: string, command: string): Promise<ReportFiles> {
  const plotsDir = path.join(outDir, "plots");
  fs.mkdirSync(plotsDir, { recursive: true });
  const plots: string[] = [];
  for (const [name, svg] of [["accuracy_vs_params", accuracyVsParamsSvg(r)], ["lowshot", lowshotBarsSvg(r)]] as const) {
    fs.writeFileSync(path.join(plotsDir, `${name}.svg`), svg);
    const png = path.join(plotsDir, `${name}.png`);
    const tmp = `${png}.tmp-${process.pid}.png`;
    await sharp(Buffer.from(svg)).png().toFile(tmp);
    fs.renameSync(tmp, png);
    plots.push(png);
  }
  const report = path.join(outDir, "report.md");
  const tmp = `${report}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, reportMarkdown(r, command));
  fs.renameSync(tmp, report);
  return { report, plots };
}
