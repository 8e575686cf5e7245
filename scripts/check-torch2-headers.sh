#!/usr/bin/env bash
# Compiles the addon's sources (syntax only) against a libtorch 2.x's headers, on a machine that has only Debian
# 12's libtorch 1.13: Debian 13's libtorch-dev (2.6) is downloaded with apt from Debian's archive into
# .cache/torch2-headers and unpacked there, never installed. The GPU machine builds against PyTorch 2.x, so this
# catches API drift between 1.13 and 2.x (c10::optional, c10d, _foreach_* signatures) before a device session.
# CPU build only (SEERKIT_WITH_CUDA=0): Debian's libtorch has no CUDA, and its CUDA headers need the CUDA toolkit's.
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
for f in native/src/*.cc; do
  if g++ -std=c++17 -fsyntax-only -fexceptions -frtti -Wno-deprecated-declarations -D_GLIBCXX_USE_CXX11_ABI=1 -DNAPI_VERSION=8 \
    -DSEERKIT_SOURCE_HASH='"check"' -DSEERKIT_WITH_CUDA=0 -DSEERKIT_WITH_CUDA_HEADERS=0 -DSEERKIT_TORCH_CUDA_VERSION=0 \
    -DSEERKIT_WITH_GLOO=1 -DSEERKIT_GLOO_DIRECT=1 -DSEERKIT_WITH_NCCL=0 \
    -I"$inc" -I"$inc/torch/csrc/api/include" -I"$node_inc" "$f" 2> "$cache/$(basename "$f").log"; then
    echo "  ok    $f"
  else
    echo "  FAIL  $f (first errors below; all in $cache/$(basename "$f").log)"
    grep -m 5 "error" "$cache/$(basename "$f").log" | sed 's/^/        /'
    failed=1
  fi
done
exit $failed
