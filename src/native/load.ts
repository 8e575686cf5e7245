// The single place that loads the native addon. A missing or stale build fails here, once, with the command
// that fixes it, instead of as an obscure "undefined is not a function" later.
import * as fs from "fs";
import * as path from "path";
import type { TorchBinding } from "./binding";
import { PACKAGE_ROOT } from "../util/paths";

const ADDON = path.join(PACKAGE_ROOT, "native", "build", "Release", "seerkit.node");
const BUILD_HINT =
  "Build it with `npm run build:native` (needs libtorch: Debian's libtorch-dev, or LIBTORCH=/path/to/libtorch, " +
  "or LIBTORCH_USE_PYTORCH=1 for the torch of python3). `bash scripts/setup.sh` does all set-up.";

export class NativeLoadError extends Error {
  override name = "NativeLoadError";
}

function expectedSourceHash(): string | undefined {
  const hasher = path.join(PACKAGE_ROOT, "native", "source_hash.js");
  if (!fs.existsSync(hasher)) return undefined; // an installed package without sources: nothing to compare
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(hasher) as { sourceHash(): string }).sourceHash();
}

function load(): TorchBinding {
  if (!fs.existsSync(ADDON)) throw new NativeLoadError(`seerkit's native addon is not built (${ADDON} is missing). ${BUILD_HINT}`);
  let binding: TorchBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = require(ADDON) as TorchBinding;
  } catch (e) {
    throw new NativeLoadError(`seerkit's native addon failed to load: ${(e as Error).message}. ${BUILD_HINT}`);
  }
  const expected = expectedSourceHash();
  if (expected !== undefined && binding.sourceHash() !== expected) {
    throw new NativeLoadError(
      `seerkit's native addon is stale: it was built from other sources (build ${binding.sourceHash()}, ` +
        `sources ${expected}). ${BUILD_HINT}`,
    );
  }
  return binding;
}

/** The native binding, loaded on first import. */
export const torch: TorchBinding = load();
