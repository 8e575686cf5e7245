#!/usr/bin/env bash
# The GPU check, in one call on a machine that has CUDA, g++ and PyTorch but no Node (scripts/gpu-pack.sh packs what
# it needs into .cache/gpu-carry/ beforehand):
#   1. unpack Node, its headers, node_modules, dist/ and a CIFAR-10 sample from .cache/gpu-carry
#   2. build the addon against that PyTorch's libtorch (LIBTORCH_USE_PYTORCH=1) with node-gyp, or with g++ directly
#      when make is missing; if c10d's NCCL/Gloo or the CUDA runtime headers do not compile, retry without them
#   3. seer info, then the CUDA tests (tests/cuda.test.ts), the SSL tests and the 2-process Gloo tests on this build
#   4. seer bench step on CUDA next to ../shared/anchors/pytorch_gpu_step.py (only its two matching configurations):
#      SwAV RegNetY-8GF 2x224+6x96 batch 128, SimCLR ResNet-50 2x224 batch 256; each eager, then the same step
#      captured as a CUDA graph and replayed (--cuda-graph); then seer bench optim (the optimizer step alone)
#   5. time permitting, CPU data-parallel scaling (small CNN, 2 and 4 processes) next to PyTorch's DDP
# Everything it prints also goes to $OUT/gpu-check.log (the device tool brings $OUT back): build logs, the full test
# log, the anchor's output, bench-*.json. Every stage has a time limit and the whole stays under GPU_CHECK_BUDGET_S
# (default 540 s); a stage that would start too late is skipped and named. On a CPU machine it is a dry run (CUDA
# tests skip, benchmarks are skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
start=$(date +%s)
budget=${GPU_CHECK_BUDGET_S:-540}
say() { echo "[gpu-check $(($(date +%s) - start))s] $*"; }
left() { echo $((budget - ($(date +%s) - start))); }
within() { # within SECONDS_NEEDED STAGE: false (and a note) when the stage would run past the budget
  if [ "$(left)" -lt "$1" ]; then say "skipping $2: $(left) s left, it needs about $1"; return 1; fi
}

main() {
  local carry=.cache/gpu-carry node_root=/tmp/seerkit-node
  [ -f "$carry/node.xz" ] || { say "no $carry/node.xz: run scripts/gpu-pack.sh first and carry .cache/gpu-carry"; return 1; }
  command -v xz >/dev/null || { say "xz is missing: cannot unpack the carried Node"; return 1; }

  # 1. Node, the runtime files, the image sample.
  mkdir -p "$node_root/bin"
  xz -dc "$carry/node.xz" > "$node_root/bin/node" && chmod +x "$node_root/bin/node"
  tar -C "$node_root" -xJf "$carry/node-headers.tar.xz"
  tar -xJf "$carry/runtime.tar.xz"
  export PATH="$node_root/bin:$PATH"
  export SEERKIT_GPU_DATA=/tmp/seerkit-cifar # real images for the short training run in tests/cuda.test.ts
  mkdir -p "$SEERKIT_GPU_DATA" && tar -C "$SEERKIT_GPU_DATA" -xJf "$carry/cifar-sample.tar.xz"
  say "node $(node --version); $(nproc) CPUs; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"

  # 2. The addon, against the PyTorch of this machine.
  if [ -z "${PYTHON:-}" ]; then
    for p in /opt/torch/.venv/bin/python3 python3; do
      if "$p" -c "import torch" 2>/dev/null; then PYTHON=$p; break; fi
    done
  fi
  [ -n "${PYTHON:-}" ] || { say "no python with torch found (tried /opt/torch/.venv/bin/python3, python3; set PYTHON)"; return 1; }
  export PYTHON LIBTORCH_USE_PYTORCH=1
  say "python $PYTHON: torch $("$PYTHON" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)')"
  # pip's CUDA libraries (cuDNN, cuBLAS, NCCL) sit in site-packages/nvidia/*/lib; python preloads them, Node does not.
  local site; site=$("$PYTHON" -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))')
  local nvlibs; nvlibs=$(ls -d "$site"/nvidia/*/lib 2>/dev/null | tr '\n' ':')
  export LD_LIBRARY_PATH="${nvlibs}${LD_LIBRARY_PATH:-}"
  node native/find_libtorch.js > "$OUT/find_libtorch.json" 2>&1; cat "$OUT/find_libtorch.json"

  build() { # build LABEL [ENV...]
    local label=$1; shift
    within 150 "build $label" || return 1
    say "building the addon ($label)"
    if command -v make >/dev/null; then
      env "$@" timeout 300 node node_modules/node-gyp/bin/node-gyp.js rebuild --directory native --nodedir "$node_root" --jobs max \
        > "$OUT/build-$label.log" 2>&1
    else
      env "$@" timeout 300 bash -c "$(declare -f build_direct); build_direct $node_root" > "$OUT/build-$label.log" 2>&1
    fi
    if [ $? -eq 0 ]; then
      mkdir -p native/build && node native/source_hash.js > native/build/.source_hash
      say "build ok ($label)"
    else
      grep -E "error|Error" "$OUT/build-$label.log" | head -30
      say "build failed ($label): $OUT/build-$label.log"
      return 1
    fi
  }
  build full ||
    build no-nccl SEERKIT_NCCL=0 ||
    build no-c10d-backends SEERKIT_NCCL=0 SEERKIT_GLOO=0 ||
    build minimal SEERKIT_NCCL=0 SEERKIT_GLOO=0 SEERKIT_CUDA_HEADERS=0 ||
    { say "no build"; return 1; }
  ./bin/seer info || { say "the addon does not load"; return 1; }

  # 3. Tests on this build: CUDA parity and a short bf16 run, then the SSL layers the GPU numbers rest on.
  local cuda; cuda=$(node -e 'console.log(require("./dist/src/tensor").cudaAvailable() ? 1 : 0)')
  if within 150 "tests"; then
    timeout 240 node --test --test-concurrency=1 dist/tests/cuda.test.js dist/tests/ssl_losses.test.js dist/tests/ssl_methods.test.js \
      > "$OUT/tests.log" 2>&1
    say "tests exited $? (full log: $OUT/tests.log)"
    grep -E "^# (tests|pass|fail|skipped)|^not ok" "$OUT/tests.log" | head -30
    grep -E "error:|Error" "$OUT/tests.log" | head -20
  fi
  # c10d on this libtorch: 2 processes over Gloo (calling-thread all-reduces, SyncBatchNorm, overlapped buckets).
  local gloo; gloo=$(node -e 'console.log(require("./dist/src/dist").availableBackends().includes("gloo") ? 1 : 0)')
  if [ "$gloo" != 1 ]; then
    say "this build has no Gloo (see $OUT/find_libtorch.json): distributed tests skipped"
  elif within 60 "distributed tests"; then
    timeout 90 node --test dist/tests/dist.test.js > "$OUT/tests-dist.log" 2>&1
    say "distributed tests exited $? (full log: $OUT/tests-dist.log)"
    grep -E "^# (tests|pass|fail)|^not ok" "$OUT/tests-dist.log" | head -10
  fi

  # 4. Benchmarks next to PyTorch eager.
  if [ "$cuda" != 1 ]; then say "no CUDA device: benchmarks skipped (dry run)"; return 0; fi
  : > "$OUT/anchor.log" # an empty log still lets the benches record seerkit's own numbers
  local anchor=../shared/anchors/pytorch_gpu_step.py
  [ -f "$anchor" ] || anchor="$carry/anchors/pytorch_gpu_step.py"
  if within 200 "the PyTorch anchor"; then
    # The anchor's own definitions, then only the two configurations compared here (it times seven by default).
    say "PyTorch anchor ($anchor): regnet_y_8gf swav 128, resnet50 simclr 256"
    timeout 240 "$PYTHON" -c "
import sys; src = open(sys.argv[1]).read(); exec(src[:src.index('for name, bs in')])
for name, method, bs in [('regnet_y_8gf', 'swav', 128), ('resnet50', 'simclr', 256)]:
    try: bench(name, method, bs)
    except Exception as e: print(name, method, 'failed', repr(e)[:200], flush=True)
" "$anchor" > "$OUT/anchor.log" 2>&1
    cat "$OUT/anchor.log"
  fi
  bench() { # bench NAME ARGS...
    local name=$1; shift
    within 90 "bench $name" || return 0
    say "seer bench step $*"
    timeout 200 ./bin/seer bench step --device cuda:0 --anchor-log "$OUT/anchor.log" --steps 12 --rounds 1 --cuda-graph "$@" --json > "$OUT/bench-$name.json" \
      && node -e 'const r=require(process.argv[1]); console.log(require("./dist/src/bench/step_bench").formatStepBench(r))' "$(readlink -f "$OUT/bench-$name.json")" \
      || cat "$OUT/bench-$name.json"
  }
  bench swav-regnety8gf --arch regnet_y_8gf --method swav --batch 128 --crops 2x224+6x96
  bench simclr-resnet50 --arch resnet50 --method simclr --batch 256 --crops 2x224
  # The optimizer step alone (SGD, LARC) on RegNetY-8GF + SEER head, next to torch.optim.SGD (loop and foreach).
  if within 60 "bench optim"; then
    say "seer bench optim --device cuda:0"
    timeout 90 ./bin/seer bench optim --device cuda:0 --rounds 2 --steps 20 --python "$PYTHON" 2>&1 | tee "$OUT/bench-optim.log"
  fi

  # 5. If time is left: CPU data-parallel scaling on this machine's idle cores (issue 7 has only a busy 2-core VM),
  #    seerkit's small-CNN bench next to the same protocol with torch's DistributedDataParallel.
  #    Each prints the no-exchange control (the ceiling the machine allows) next to the distributed run.
  if within 90 "CPU scaling"; then
    for n in 2 4; do
      within 40 "CPU scaling with $n processes" || break
      timeout 60 node dist/src/dist/scaling_bench.js --nproc "$n" --rounds 2 2>&1 | grep -v '^JSON' | tee -a "$OUT/scaling.log"
      timeout 60 "$PYTHON" scripts/pytorch_ddp_scaling.py --nproc "$n" --rounds 2 2>&1 | tee -a "$OUT/scaling.log"
    done
  fi
  say "done"
}

# The addon with g++ alone (no make, so no node-gyp): the flags binding.gyp would pass, from find_libtorch.js.
build_direct() {
  local node_root=$1 f pids=()
  local std abi; std=$(node native/find_libtorch.js std); abi=$(node native/find_libtorch.js abi)
  local incs=(-I"$node_root/include/node"); for d in $(node native/find_libtorch.js include); do incs+=(-I"$d"); done
  local defs=(-DNAPI_VERSION=8 -DNODE_GYP_MODULE_NAME=seerkit -DBUILDING_NODE_EXTENSION -D_GLIBCXX_USE_CXX11_ABI="$abi"
    -DSEERKIT_SOURCE_HASH="\"$(node native/source_hash.js)\""
    -DSEERKIT_WITH_CUDA="$(node native/find_libtorch.js cuda)" -DSEERKIT_WITH_CUDA_HEADERS="$(node native/find_libtorch.js cudaheaders)" -DSEERKIT_TORCH_CUDA_VERSION="$(node native/find_libtorch.js cudaversion)"
    -DSEERKIT_WITH_GLOO="$(node native/find_libtorch.js gloo)" -DSEERKIT_GLOO_DIRECT="$(node native/find_libtorch.js gloodirect)"
    -DSEERKIT_WITH_NCCL="$(node native/find_libtorch.js nccl)")
  mkdir -p native/build/direct native/build/Release
  for f in native/src/*.cc; do
    g++ -c -fPIC -O2 -std="$std" -fexceptions -frtti -Wno-unused-parameter -Wno-deprecated-declarations "${defs[@]}" "${incs[@]}" \
      "$f" -o "native/build/direct/$(basename "$f" .cc).o" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || return 1; done
  # shellcheck disable=SC2046
  g++ -shared native/build/direct/*.o $(node native/find_libtorch.js libs) -o native/build/Release/seerkit.node
}

main 2>&1 | tee -a "$OUT/gpu-check.log"
exit "${PIPESTATUS[0]}"
