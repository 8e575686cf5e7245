// Checkpoints that survive anything: a killed process, a full disk, a truncated copy.
//
// A checkpoint is a folder `checkpoint-<step>` in the run folder, holding
//   model.safetensors   the weights (torchvision/timm names: loadable by PyTorch directly)
//   state.safetensors   every other tensor the run needs to continue (optimizer buffers, SwAV queue, ...)
//   state.json          step, config, sampler/RNG state, and the size and SHA-256 of both tensor files
// It is written as `checkpoint-<step>.tmp-<pid>` and renamed into place only when complete (rename of a folder is
// atomic on one filesystem), so a crash leaves either the old set of checkpoints or the new one, never half of
// one. On load, the sizes and hashes are checked: a checkpoint damaged afterwards (truncated, bit rot) is skipped
// with a warning and the previous one is used.
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { loadSafetensors, saveSafetensors } from "../io/safetensors";
import type { Tensor } from "../tensor/tensor";

const PREFIX = "checkpoint-";
const STEP_DIGITS = 9;

export interface CheckpointContents {
  step: number;
  /** The model's state dict (names as in PyTorch). */
  model: Map<string, Tensor>;
  /** Other tensors needed to resume (optimizer state, queue). */
  tensors: Map<string, Tensor>;
  /** JSON-serializable run state (sampler position, schedule, config, RNG seed...). */
  state: Record<string, unknown>;
}

interface StateFile {
  format: "seerkit-checkpoint-v1";
  step: number;
  files: Record<string, { bytes: number; sha256: string }>;
  state: Record<string, unknown>;
}

export class CheckpointError extends Error {
  override name = "CheckpointError";
}

function sha256File(file: string): string {
  const h = createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export class CheckpointManager {
  constructor(
    /** The run folder. */
    readonly dir: string,
    /** How many complete checkpoints to keep (older ones are deleted after a successful save). */
    readonly keep = 3,
    private readonly warn: (msg: string) => void = (m) => console.warn(m),
  ) {
    if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`CheckpointManager: keep must be a positive integer, got ${keep}`);
    fs.mkdirSync(dir, { recursive: true });
  }

  private folder(step: number): string {
    return path.join(this.dir, PREFIX + String(step).padStart(STEP_DIGITS, "0"));
  }

  /** Steps of the complete checkpoints on disk, newest first (unverified: see loadLatest). */
  list(): number[] {
    const re = new RegExp(`^${PREFIX}(\\d{${STEP_DIGITS}})$`);
    return fs
      .readdirSync(this.dir)
      .map((name) => re.exec(name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => b - a);
  }

  /** Writes a checkpoint atomically, then prunes old ones and leftovers of interrupted saves. Returns its folder. */
  save(c: CheckpointContents): string {
    const final = this.folder(c.step);
    const tmp = `${final}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp);
    try {
      const files: StateFile["files"] = {};
      for (const [name, tensors] of [["model.safetensors", c.model], ["state.safetensors", c.tensors]] as const) {
        const file = path.join(tmp, name);
        saveSafetensors(file, tensors, { step: String(c.step) });
        files[name] = { bytes: fs.statSync(file).size, sha256: sha256File(file) };
      }
      const stateFile: StateFile = { format: "seerkit-checkpoint-v1", step: c.step, files, state: c.state };
      const json = path.join(tmp, "state.json");
      const fd = fs.openSync(json, "w");
      try {
        fs.writeSync(fd, JSON.stringify(stateFile, null, 1));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fsyncDir(tmp);
      fs.rmSync(final, { recursive: true, force: true }); // a same-step checkpoint from an earlier attempt
      fs.renameSync(tmp, final);
      fsyncDir(this.dir);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw new CheckpointError(`could not write checkpoint ${final}: ${(e as Error).message}`);
    }
    this.prune();
    return final;
  }

  private prune(): void {
    for (const step of this.list().slice(this.keep)) fs.rmSync(this.folder(step), { recursive: true, force: true });
    // Temp folders of saves that died before their rename.
    for (const name of fs.readdirSync(this.dir)) {
      if (name.startsWith(PREFIX) && name.includes(".tmp-") && !name.endsWith(`.tmp-${process.pid}`)) {
        fs.rmSync(path.join(this.dir, name), { recursive: true, force: true });
      }
    }
  }

  /** Checks sizes and hashes of one checkpoint; returns what is wrong, or undefined when it is intact. */
  verify(step: number): string | undefined {
    const dir = this.folder(step);
    let s: StateFile;
    try {
      s = JSON.parse(fs.readFileSync(path.join(dir, "state.json"), "utf8")) as StateFile;
    } catch (e) {
      return `state.json unreadable (${(e as Error).message})`;
    }
    if (s.format !== "seerkit-checkpoint-v1" || s.step !== step) return "state.json is not a seerkit checkpoint of this step";
    for (const [name, want] of Object.entries(s.files)) {
      const file = path.join(dir, name);
      if (!fs.existsSync(file)) return `${name} is missing`;
      const bytes = fs.statSync(file).size;
      if (bytes !== want.bytes) return `${name} has ${bytes} bytes, expected ${want.bytes} (truncated?)`;
      if (sha256File(file) !== want.sha256) return `${name} does not match its SHA-256 (corrupt)`;
    }
    return undefined;
  }

  /** The newest intact checkpoint, or undefined when there is none; damaged ones are reported and skipped. */
  loadLatest(): CheckpointContents | undefined {
    for (const step of this.list()) {
      const problem = this.verify(step);
      if (problem) {
        this.warn(`checkpoint ${this.folder(step)} is damaged: ${problem}; trying the previous one`);
        continue;
      }
      return this.load(step);
    }
    return undefined;
  }

  /** Loads one checkpoint (tensors on the CPU; the caller disposes them). */
  load(step: number): CheckpointContents {
    const dir = this.folder(step);
    const s = JSON.parse(fs.readFileSync(path.join(dir, "state.json"), "utf8")) as StateFile;
    return {
      step: s.step,
      model: loadSafetensors(path.join(dir, "model.safetensors")),
      tensors: loadSafetensors(path.join(dir, "state.safetensors")),
      state: s.state,
    };
  }
}
