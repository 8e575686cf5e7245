#!/usr/bin/env bash
# The GPU check, in one call on a machine that has CUDA, g++ and PyTorch but no Node (scripts/gpu-pack.sh packs what
# it needs into .cache/gpu-carry/ beforehand):
#   1. unpack Node, its headers, node_modules and dist/ from .cache/gpu-carry
#   2. build the addon against that PyTorch's libtorch (LIBTORCH_USE_PYTORCH=1); if c10d's NCCL or Gloo headers do
#      not compile, retry without them, and say so
#   3. seer info, then the CUDA tests (tests/cuda.test.ts) and the SSL/model tests on this build
#   4. seer bench step on CUDA next to ../shared/anchors/pytorch_gpu_step.py (run once, its output saved):
#      SwAV RegNetY-8GF 2x224+6x96 batch 128, SimCLR ResNet-50 2x224 batch 256
# Everything it prints also goes to $OUT/gpu-check.log (the device tool brings $OUT back); the bench results are
# $OUT/bench-*.json. Stages run against a clock: a stage that would start past GPU_CHECK_BUDGET_S (default 540)
# is skipped and named. Runs on a CPU machine too (CUDA tests skip, benchmarks are skipped), as a dry run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-check.log") 2>&1
start=$(date +%s)
budget=${GPU_CHECK_BUDGET_S:-540}
say() { echo "[gpu-check $(($(date +%s) - start))s] $*"; }
within() { # within SECONDS_NEEDED STAGE: false (and a note) when the stage would run past the budget
  if [ $(($(date +%s) - start + $1)) -gt "$budget" ]; then say "skipping $2: not enough time left"; return 1; fi
}

carry=.cache/gpu-carry
[ -f "$carry/node.xz" ] || { say "no $carry/node.xz: run scripts/gpu-pack.sh here first and carry .cache/gpu-carry"; exit 1; }

# 1. Node and the runtime files.
node_root=/tmp/seerkit-node
mkdir -p "$node_root/bin"
xz -dc "$carry/node.xz" > "$node_root/bin/node" && chmod +x "$node_root/bin/node"
tar -C "$node_root" -xJf "$carry/node-headers.tar.xz"
tar -xJf "$carry/runtime.tar.xz"
export SEERKIT_GPU_DATA=/tmp/seerkit-cifar # a real image sample for the short training run in tests/cuda.test.ts
mkdir -p "$SEERKIT_GPU_DATA" && tar -C "$SEERKIT_GPU_DATA" -xJf "$carry/cifar-sample.tar.xz"
export PATH="$node_root/bin:$PATH"
say "node $(node --version); $(nproc) CPUs; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"

# 2. The addon, against the PyTorch of this machine.
if [ -z "${PYTHON:-}" ]; then
  for p in /opt/torch/.venv/bin/python3 python3; do
    if "$p" -c "import torch" 2>/dev/null; then PYTHON=$p; break; fi
  done
fi
export PYTHON LIBTORCH_USE_PYTORCH=1
say "python $PYTHON: torch $("$PYTHON" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)')"
node native/find_libtorch.js | head -40
build() { # build LABEL [ENV...]
  local label=$1; shift
  say "building the addon ($label)"
  if env "$@" node node_modules/node-gyp/bin/node-gyp.js rebuild --directory native --nodedir "$node_root" --jobs max \
      > "$OUT/build-$label.log" 2>&1; then
    node native/source_hash.js > native/build/.source_hash
    say "build ok ($label)"
  else
    grep -E "error|Error" "$OUT/build-$label.log" | head -30
    say "build failed ($label): $OUT/build-$label.log"
    return 1
  fi
}
build full || build no-nccl SEERKIT_NCCL=0 || build no-c10d-backends SEERKIT_NCCL=0 SEERKIT_GLOO=0 || { say "no build"; exit 1; }
./bin/seer info

# 3. Tests on this build: CUDA parity, then the layers the GPU numbers rest on.
cuda=$(node -e 'console.log(require("./dist/src/tensor").cudaAvailable() ? 1 : 0)')
within 120 "tests" && node --test --test-concurrency=1 dist/tests/cuda.test.js dist/tests/ssl_losses.test.js dist/tests/ssl_methods.test.js \
  2>&1 | grep -E "^# (tests|pass|fail|skipped)|^not ok|error|Error" | head -40

# 4. Benchmarks next to PyTorch eager.
if [ "$cuda" != 1 ]; then say "no CUDA device: benchmarks skipped (dry run)"; exit 0; fi
anchor=../shared/anchors/pytorch_gpu_step.py
[ -f "$anchor" ] || anchor="$carry/anchors/pytorch_gpu_step.py"
if within 180 "the PyTorch anchor"; then
  say "PyTorch anchor: $anchor"
  "$PYTHON" "$anchor" > "$OUT/anchor.log" 2>&1; cat "$OUT/anchor.log"
fi
bench() { # bench NAME ARGS...
  local name=$1; shift
  within 90 "bench $name" || return 0
  say "seer bench step $*"
  ./bin/seer bench step --device cuda:0 --anchor-log "$OUT/anchor.log" --steps 12 --rounds 1 "$@" --json > "$OUT/bench-$name.json" \
    && node -e 'const r=require(process.argv[1]); console.log(require("./dist/src/bench/step_bench").formatStepBench(r))' "$(readlink -f "$OUT/bench-$name.json")" 2>/dev/null \
    || cat "$OUT/bench-$name.json"
}
bench swav-regnety8gf --arch regnet_y_8gf --method swav --batch 128 --crops 2x224+6x96
bench simclr-resnet50 --arch resnet50 --method simclr --batch 256 --crops 2x224
say "done"
