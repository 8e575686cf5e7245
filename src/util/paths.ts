// Where the package lives on disk, found by walking up to package.json (works from src/ and from dist/src/).
import * as fs from "fs";
import * as path from "path";

function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "package.json"))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`seerkit: no package.json above ${start}`);
  }
}

export const PACKAGE_ROOT = findPackageRoot(__dirname);

/** The ignored cache folder for extracted data sets and generated goldens. */
export const CACHE_DIR = process.env.SEERKIT_CACHE ?? path.join(PACKAGE_ROOT, ".cache");
