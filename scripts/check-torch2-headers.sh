#!/usr/bin/env bash
# Compiles the addon's sources (syntax only) against a libtorch 2.x's headers, on a machine that has only Debian
# 12's libtorch 1.13: Debian 13's libtorch-dev (2.6) is downloaded with apt from Debian's archive into
# .cache/torch2-headers and unpacked there, never installed. The GPU machine builds against PyTorch 2.x, so this
# catches API drift between 1.13 and 2.x (c10::optional, c10d, _foreach_* signatures) before a device session.
# Two passes: the CPU build, and the CUDA branches against scripts/cuda-stub (Debian's libtorch has no CUDA, and
# the toolkit's headers are not here). The NCCL process group is left out of both.
# usage: bash scripts/check-torch2-headers.sh    (exit 0: every source compiles)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.cache/torch2-headers
mkdir -p "$cache/lists/partial" "$cache/archives/partial"
apt_opts=(-o Dir::Etc::sourcelist="$PWD/$cache/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$PWD/$cache/lists"
  -o Dir::Cache="$PWD/$cache" -o APT::Sandbox::User=root)
if [ ! -d "$cache/root/usr/include/ATen" ]; then
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" > "$cache/sources.list"
  apt-get -qq "${apt_opts[@]}" update
  (cd "$cache" && apt-get -qq "${apt_opts[@]}" download libtorch-dev)
  dpkg-deb -x "$cache"/libtorch-dev_*.deb "$cache/root"
fi
inc="$cache/root/usr/include"
node_inc=$(dirname "$(readlink -f "$(command -v node)")")/../include/node
[ -f "$node_inc/node_api.h" ] || node_inc=/usr/include/node
echo "libtorch headers: $(ls "$cache"/libtorch-dev_*.deb | xargs -n1 basename)"
failed=0
# check LABEL DEFINES... -- SOURCES...: each source compiled (syntax only) with the common flags plus DEFINES.
check() {
  local label=$1; shift
  local defs=(); while [ "$1" != "--" ]; do defs+=("$1"); shift; done; shift
  echo "$label"
  for f in "$@"; do
    local log="$cache/$(basename "$f" .cc)-$label.log"
    if g++ -std=c++17 -fsyntax-only -fexceptions -frtti -Wno-deprecated-declarations -D_GLIBCXX_USE_CXX11_ABI=1 -DNAPI_VERSION=8 \
      -DSEERKIT_SOURCE_HASH='"check"' -DSEERKIT_WITH_GLOO=1 -DSEERKIT_GLOO_DIRECT=1 -DSEERKIT_WITH_NCCL=0 "${defs[@]}" \
      -I"$inc" -I"$inc/torch/csrc/api/include" -I"$node_inc" "$f" 2> "$log"; then
      echo "  ok    $f"
    else
      echo "  FAIL  $f (first errors below; all in $log)"
      grep -m 5 "error" "$log" | sed 's/^/        /'
      failed=1
    fi
  done
}
check cpu -DSEERKIT_WITH_CUDA=0 -DSEERKIT_WITH_CUDA_HEADERS=0 -DSEERKIT_TORCH_CUDA_VERSION=0 -- native/src/*.cc
# The CUDA branches (graphs, streams, pinned copies, CUDA settings) against a stand-in for the CUDA runtime header
# (scripts/cuda-stub, CUDA 12.0, given as libtorch's CUDA version so that graphs are compiled in). NCCL stays off:
# its headers need the real toolkit's.
check cuda -DSEERKIT_WITH_CUDA=1 -DSEERKIT_WITH_CUDA_HEADERS=1 -DSEERKIT_TORCH_CUDA_VERSION=12000 -Iscripts/cuda-stub -- \
  native/src/cuda_graph.cc native/src/runtime.cc native/src/tensor_ops.cc native/src/dist.cc
exit $failed
