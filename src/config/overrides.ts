// Typed configuration objects with overrides from JSON files and `key=value` arguments.
//
// A config is a plain object of defaults; its shape is the schema. An override may only name a key the defaults
// have (nested keys joined by dots, "swav.epsilon"), and its value must have the default's type: numbers parse as
// numbers, booleans as true/false, arrays and objects as JSON. Anything else is an error naming the key.

export class ConfigError extends Error {
  override name = "ConfigError";
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function kind(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parses the text after `=` into the type of `like` (the default at that key). */
function parseValue(key: string, text: string, like: unknown): unknown {
  switch (kind(like)) {
    case "number": {
      const v = Number(text);
      if (text.trim() === "" || !Number.isFinite(v)) throw new ConfigError(`${key}: '${text}' is not a number`);
      return v;
    }
    case "boolean":
      if (text === "true") return true;
      if (text === "false") return false;
      throw new ConfigError(`${key}: '${text}' is not a boolean (true or false)`);
    case "string":
    case "null":
      return text;
    default: {
      let v: unknown;
      try {
        v = JSON.parse(text) as Json;
      } catch {
        throw new ConfigError(`${key}: '${text}' is not valid JSON (expected ${kind(like)})`);
      }
      return v;
    }
  }
}

/** Checks `value` against the type of `like`, recursively for objects; arrays only by kind. */
function checkType(key: string, value: unknown, like: unknown): void {
  const want = kind(like);
  const got = kind(value);
  if (like === null || want === got) {
    if (isPlainObject(like) && isPlainObject(value)) {
      for (const k of Object.keys(value)) {
        if (!(k in like)) throw new ConfigError(`unknown key '${key}.${k}' (known: ${Object.keys(like).join(", ")})`);
        checkType(`${key}.${k}`, value[k], like[k]);
      }
    }
    return;
  }
  throw new ConfigError(`${key}: expected ${want}, got ${got} (${JSON.stringify(value)})`);
}

function deepMerge<T>(base: T, patch: Record<string, unknown>, prefix: string): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(patch)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (!(k in out)) throw new ConfigError(`unknown key '${key}' (known: ${Object.keys(out).join(", ")})`);
    checkType(key, v, out[k]);
    out[k] = isPlainObject(out[k]) && isPlainObject(v) ? deepMerge(out[k], v, key) : v;
  }
  return out as T;
}

/** Merges a partial config (from a JSON file) into `base`; unknown keys and wrong types are errors. */
export function mergeConfig<T extends object>(base: T, patch: unknown, where = "config"): T {
  if (!isPlainObject(patch)) throw new ConfigError(`${where}: expected a JSON object`);
  try {
    return deepMerge(base, patch, "");
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${where}: ${e.message}`);
    throw e;
  }
}

/** Applies `a.b.c=value` overrides in order. */
export function applyOverrides<T extends object>(base: T, assignments: string[]): T {
  let cfg = base;
  for (const a of assignments) {
    const eq = a.indexOf("=");
    if (eq <= 0) throw new ConfigError(`override '${a}' is not key=value`);
    const key = a.slice(0, eq);
    const parts = key.split(".");
    let like: unknown = cfg;
    for (const [i, p] of parts.entries()) {
      if (!isPlainObject(like) || !(p in like)) {
        const known = isPlainObject(like) ? Object.keys(like).join(", ") : "(not an object)";
        throw new ConfigError(`unknown key '${parts.slice(0, i + 1).join(".")}' (known at that level: ${known})`);
      }
      like = like[p];
    }
    const value = parseValue(key, a.slice(eq + 1), like);
    let patch: Record<string, unknown> = { [parts[parts.length - 1]!]: value };
    for (let i = parts.length - 2; i >= 0; i--) patch = { [parts[i]!]: patch };
    cfg = deepMerge(cfg, patch, "");
  }
  return cfg;
}

/** Recursively freezes a config so no module can change it behind the trainer's back. */
export function freezeConfig<T>(cfg: T): Readonly<T> {
  if (isPlainObject(cfg) || Array.isArray(cfg)) {
    for (const v of Object.values(cfg as object)) freezeConfig(v);
    Object.freeze(cfg);
  }
  return cfg;
}
