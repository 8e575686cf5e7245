// A one-line progress bar with rate and ETA, redrawn in place on a terminal and printed every few seconds
// otherwise (logs, CI), so long work always shows that it is moving.

export class Progress {
  private readonly start = Date.now();
  private lastPrint = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(private readonly label: string, private readonly total: number, private readonly unit = "it") {}

  update(done: number, extra = ""): void {
    const now = Date.now();
    const final = done >= this.total;
    if (!final && now - this.lastPrint < (this.tty ? 100 : 5000)) return;
    this.lastPrint = now;
    const elapsed = (now - this.start) / 1000;
    const rate = done / Math.max(elapsed, 1e-9);
    const eta = rate > 0 ? (this.total - done) / rate : 0;
    const width = 24;
    const filled = Math.round((width * done) / Math.max(this.total, 1));
    const bar = "#".repeat(filled) + "-".repeat(width - filled);
    const line = `${this.label} [${bar}] ${done}/${this.total} ${rate.toFixed(1)} ${this.unit}/s elapsed ${fmt(elapsed)} eta ${fmt(eta)}${extra ? "  " + extra : ""}`;
    if (this.tty) process.stderr.write(`\r${line}\x1b[K${final ? "\n" : ""}`);
    else process.stderr.write(line + "\n");
  }
}

function fmt(s: number): string {
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${Math.round(s % 60).toString().padStart(2, "0")}s` : `${s.toFixed(0)}s`;
}
