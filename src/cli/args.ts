// A small, strict command-line parser: `--flag`, `--key value`, `--key=value`, and positionals.
// Unknown flags are errors that name the flag; numeric flags must parse.

export interface FlagSpec {
  type: "boolean" | "number" | "string";
  help: string;
  default?: boolean | number | string;
}

export type FlagValues = Record<string, boolean | number | string | undefined>;

export class UsageError extends Error {
  override name = "UsageError";
}

/** Throws a UsageError naming the first flag (by its name without dashes) whose value is not a positive integer. */
export function expectPositiveIntegers(values: Record<string, number>): void {
  for (const [k, v] of Object.entries(values)) {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${k}: expected a positive integer but got ${v}`);
  }
}

export function parseArgs(argv: string[], spec: Record<string, FlagSpec>): { flags: FlagValues; positionals: string[] } {
  const flags: FlagValues = {};
  for (const [k, s] of Object.entries(spec)) flags[k] = s.default;
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const s = spec[name];
    if (!s) throw new UsageError(`unknown option --${name} (known: ${Object.keys(spec).map((k) => `--${k}`).join(", ")})`);
    let raw: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (s.type === "boolean") {
      flags[name] = raw === undefined ? true : raw !== "false";
      continue;
    }
    if (raw === undefined) {
      raw = argv[++i];
      if (raw === undefined) throw new UsageError(`--${name} needs a value`);
    }
    if (s.type === "number") {
      const v = Number(raw);
      if (!Number.isFinite(v)) throw new UsageError(`--${name}: '${raw}' is not a number`);
      flags[name] = v;
    } else flags[name] = raw;
  }
  return { flags, positionals };
}

export function formatFlags(spec: Record<string, FlagSpec>): string {
  return Object.entries(spec)
    .map(([k, s]) => `  --${(k + (s.type === "boolean" ? "" : ` <${s.type}>`)).padEnd(22)} ${s.help}${s.default !== undefined ? ` (default ${String(s.default)})` : ""}`)
    .join("\n");
}
