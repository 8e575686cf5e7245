#!/usr/bin/env bash
# Packs what a GPU machine without Node or npm needs to run scripts/gpu-check.sh, into .cache/gpu-carry/ (ignored
# by git; the device tool carries it with the working tree, 64 MiB at most):
#   node.xz                 this machine's node binary, xz-compressed
#   node-headers.tar.xz     Node's C headers (include/node without OpenSSL's), for node-gyp --nodedir
#   runtime.tar.xz          node_modules without the build-only TypeScript and @types, and the compiled dist/
#   anchors/                ../shared/anchors (the PyTorch side of the benchmark), in case the machine lacks it
#   cifar-sample.tar.xz     50 train and 20 test CIFAR-10 images per class (real images for the short GPU run)
# Then, with the device tool: run `bash scripts/gpu-check.sh` with carry [".cache/gpu-carry"].
set -euo pipefail
cd "$(dirname "$0")/.."

out=.cache/gpu-carry
rm -rf "$out" && mkdir -p "$out"
[ -d node_modules ] && [ -d dist ] || { echo "gpu-pack: run 'bash scripts/setup.sh' first (needs node_modules and dist)"; exit 1; }
npx tsc -p tsconfig.json

node_bin=$(readlink -f "$(command -v node)")
node_prefix=$(dirname "$(dirname "$node_bin")")
headers="$node_prefix/include/node"
[ -f "$headers/node_api.h" ] || { echo "gpu-pack: Node's headers not found at $headers"; exit 1; }

echo "gpu-pack: node $(node --version) from $node_bin"
xz -T0 -9 -c "$node_bin" > "$out/node.xz"
tar -C "$node_prefix" --exclude='include/node/openssl' -cJf "$out/node-headers.tar.xz" include/node
tar --exclude='node_modules/typescript' --exclude='node_modules/@types' --exclude='node_modules/.cache' \
  -cJf "$out/runtime.tar.xz" node_modules dist
if [ -d ../shared/anchors ]; then cp -r ../shared/anchors "$out/anchors"; fi
cifar=.cache/datasets/cifar10/cifar10-jpeg
[ -d "$cifar/train" ] || ./bin/seer data scan builtin:cifar10/test >/dev/null # extracts the set into .cache once
files=$(cd "$cifar" && for split in train test; do n=50; [ $split = test ] && n=20
  for cls in "$split"/*/; do ls "$cls" | head -n $n | sed "s#^#${cls}#"; done; done)
(cd "$cifar" && echo "$files" | tar -cJf - -T -) > "$out/cifar-sample.tar.xz"
node --version > "$out/node-version"
du -sh "$out"/* | sed 's/^/gpu-pack: /'
total=$(du -sm "$out" | cut -f1)
echo "gpu-pack: ${total} MiB in $out (the carry limit is 64 MiB)"
[ "$total" -lt 64 ] || { echo "gpu-pack: too large to carry"; exit 1; }
