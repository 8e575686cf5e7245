#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh Debian machine: system packages, npm packages, the native addon and the
# TypeScript build. Safe to rerun: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# libtorch (the engine), gloo's headers (c10d's CPU collectives in native/src/dist.cc), PyTorch + torchvision (test
# oracles only), Fashion-MNIST (the demo's data). OpenBLAS (OpenMP build, so it follows the engine's thread count)
# replaces Debian's default reference BLAS behind libblas.so.3: libtorch's CPU matrix products go through it, and
# the reference one made a SwAV step about twice as slow (BENCHMARKS.md).
APT_PACKAGES=(libtorch-dev libgloo-dev libopenblas0-openmp python3-torch python3-torchvision dataset-fashion-mnist gcc g++ make)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (apt-get)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Rebuild the addon only when its sources changed (the loader checks the same hash at run time).
want=$(node native/source_hash.js)
have=$(cat native/build/.source_hash 2>/dev/null || true)
if [ ! -f native/build/Release/seerkit.node ] || [ "$want" != "$have" ]; then
  echo "setup: building the native addon against libtorch ($(node native/find_libtorch.js libdir))"
  npm run --silent build:native >/tmp/seerkit-native-build.log 2>&1 || { tail -40 /tmp/seerkit-native-build.log; echo "setup: native build failed (full log: /tmp/seerkit-native-build.log)"; exit 1; }
  echo "$want" > native/build/.source_hash
fi

echo "setup: compiling TypeScript"
npx tsc -p tsconfig.json
