#!/usr/bin/env node
// Locates libtorch for the native build. Order (first hit wins):
//   1. LIBTORCH=/path/to/libtorch        a libtorch folder (include/ and lib/ inside)
//   2. LIBTORCH_USE_PYTORCH=1           ask `python3` (or $PYTHON) where its torch lives
//   3. the system                        Debian's libtorch-dev (/usr/include, multiarch lib dir)
// SEERKIT_GLOO=0 / SEERKIT_NCCL=0 build without the Gloo / NCCL process groups (for a libtorch whose c10d headers
// do not compile here; collectives then fail at run time with a message saying so).
// Prints one field for binding.gyp: `node find_libtorch.js include|libdir|libs|abi|std|cuda|cudaheaders|cudaversion|gloo|gloodirect|nccl`;
// no field: all, as JSON. `gloo` / `nccl` say whether native/src/dist.cc can bind c10d's ProcessGroupGloo /
// ProcessGroupNCCL (their headers are present next to libtorch's); `include` then also lists the folder that holds
// nccl.h. `gloodirect`: whether Gloo's own collectives are exported for dist.cc's calling-thread all-reduce.
"use strict";
const fs = require("fs");
const path = require("path");
const os = require("os");
const crypto = require("crypto");
const { execFileSync } = require("child_process");

function fromFolder(root, origin) {
  const include = [path.join(root, "include"), path.join(root, "include/torch/csrc/api/include")];
  const libdir = path.join(root, "lib");
  return { include, libdir, abi: guessAbi(libdir), origin };
}

// binding.gyp asks for one field at a time (several runs per build) and `import torch` takes seconds: the answer is
// kept in the temp folder, keyed by the interpreter and its torch's location and modification time.
function fromPython() {
  const python = process.env.PYTHON || "python3";
  const key = crypto.createHash("sha256").update(python).digest("hex").slice(0, 16);
  const cache = path.join(os.tmpdir(), `seerkit-find-libtorch-${key}.json`);
  try {
    const hit = JSON.parse(fs.readFileSync(cache, "utf8"));
    if (fs.statSync(hit.libdir).mtimeMs === hit.libdirMtime) return hit.info;
  } catch {
    // no cache yet, or a stale one
  }
  const info = askPython(python);
  try {
    fs.writeFileSync(cache, JSON.stringify({ info, libdir: info.libdir, libdirMtime: fs.statSync(info.libdir).mtimeMs }));
  } catch {
    // a read-only temp folder only costs time
  }
  return info;
}

function askPython(python) {
  const script =
    "import torch, os, json; from torch.utils import cpp_extension as ce;" +
    "print(json.dumps({'include': ce.include_paths(), 'libdir': os.path.join(os.path.dirname(torch.__file__), 'lib')," +
    " 'abi': int(torch._C._GLIBCXX_USE_CXX11_ABI), 'version': torch.__version__, 'cuda': torch.version.cuda}))";
  let out;
  try {
    out = execFileSync(python, ["-c", script], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    throw new Error(`LIBTORCH_USE_PYTORCH=1 but '${python} -c "import torch"' failed: ${String(e.stderr || e.message).trim()}`);
  }
  const info = JSON.parse(out.trim().split("\n").pop());
  return { include: info.include, libdir: info.libdir, abi: info.abi, origin: `pytorch ${info.version} via ${python}`, pyVersion: info.version, pyCuda: info.cuda };
}

function fromSystem() {
  const candidates = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"];
  const libdir = candidates.find((d) => fs.existsSync(path.join(d, "libtorch_cpu.so")));
  if (!libdir || !fs.existsSync("/usr/include/ATen/ATen.h")) {
    throw new Error(
      "libtorch not found. Install Debian's libtorch-dev (apt-get install libtorch-dev), " +
        "or set LIBTORCH=/path/to/libtorch, or LIBTORCH_USE_PYTORCH=1 to use the torch of `python3`.",
    );
  }
  return { include: ["/usr/include", "/usr/include/torch/csrc/api/include"], libdir, abi: 1, origin: "system" };
}

// Pre-built libtorch archives name the ABI in their folder; a pip wheel says it through python. Default: new ABI.
function guessAbi(libdir) {
  return /pre-cxx11|cxx03/.test(libdir) ? 0 : 1;
}

function locate() {
  if (process.env.LIBTORCH) return fromFolder(path.resolve(process.env.LIBTORCH), "LIBTORCH");
  if (process.env.LIBTORCH_USE_PYTORCH === "1") return fromPython();
  return fromSystem();
}

function libs(info) {
  const has = (name) => fs.existsSync(path.join(info.libdir, name));
  const names = ["c10", "torch_cpu", "torch"];
  if (has("libc10_cuda.so")) names.push("c10_cuda");
  if (has("libtorch_cuda.so")) names.push("torch_cuda");
  // --no-as-needed keeps libtorch_cuda linked although no symbol of it is referenced directly:
  // without it, CUDA kernels never register and `cuda` devices look absent at run time.
  return ["-Wl,--no-as-needed", `-L${info.libdir}`, `-Wl,-rpath,${info.libdir}`, ...names.map((n) => `-l${n}`), "-Wl,--as-needed"].join(" ");
}

// libtorch's version, read from its headers (recent versions define it in torch/headeronly/version.h, which
// torch/version.h includes), else from python's torch.__version__: decides the C++ standard (PyTorch 2.10 moved to
// C++20).
function version(info) {
  for (const dir of info.include) {
    const candidates = [
      path.join(dir, "torch", "headeronly", "version.h"),
      path.join(dir, "torch", "csrc", "api", "include", "torch", "version.h"),
      path.join(dir, "torch", "version.h"),
    ];
    for (const f of candidates.filter((c) => fs.existsSync(c))) {
      const text = fs.readFileSync(f, "utf8");
      const num = (k) => Number((text.match(new RegExp(`define TORCH_VERSION_${k} (\\d+)`)) || [])[1]);
      if (!Number.isNaN(num("MAJOR"))) return { major: num("MAJOR"), minor: num("MINOR") };
    }
  }
  const m = /^(\d+)\.(\d+)/.exec(info.pyVersion || "");
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : { major: NaN, minor: NaN };
}

function cxxStd(info) {
  const v = version(info);
  return v.major > 2 || (v.major === 2 && v.minor >= 10) ? "c++20" : "c++17";
}

// c10d's Gloo binding needs ProcessGroupGloo.hpp and gloo's own headers from the same build as libtorch: pip wheels
// and libtorch archives ship both under include/; Debian's libtorch-dev has the first, libgloo-dev the second.
function hasGloo(info) {
  if (process.env.SEERKIT_GLOO === "0") return false; // opt out: build without c10d's Gloo backend
  const found = (rel) => info.include.some((d) => fs.existsSync(path.join(d, rel)));
  return found("torch/csrc/distributed/c10d/ProcessGroupGloo.hpp") && found("gloo/context.h");
}

// dist.cc's small all-reduces call Gloo's own allgather, not only c10d's classes. Debian links Gloo as libgloo.so.0;
// pip wheels build it into libtorch_cpu.so. The symbol must be exported by one of them (checked with nm), else the
// addon would fail to load; without nm, or without the symbol, small all-reduces take c10d's path.
function hasGlooDirect(info) {
  if (!hasGloo(info) || process.env.SEERKIT_GLOO_DIRECT === "0") return false;
  const cpu = path.join(info.libdir, "libtorch_cpu.so");
  const run = (cmd, args) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], maxBuffer: 1 << 28 });
  try {
    const deps = run("ldd", [cpu]).split("\n").map((l) => (/=>\s*(\S*gloo\S*)\s/.exec(l) || [])[1]).filter(Boolean);
    return [cpu, ...deps].some((lib) => /4gloo9allgather/.test(run("nm", ["-D", "--defined-only", lib])));
  } catch {
    return false;
  }
}

// The CUDA runtime's headers (cuda_runtime_api.h), for c10/cuda (the caching allocator's statistics, CUDA graphs)
// and nccl.h: pip's nvidia-* wheels next to torch first, since they are the CUDA version torch was built with (CUDA
// 13: nvidia/cu13/include; CUDA 12: one folder per library, nvidia/cuda_runtime/include), else a CUDA toolkit. Some
// of libtorch's classes (CUDAGraph) change layout with CUDA_VERSION, so headers of torch's version are taken first:
// `cudaversion` gives python's torch.version.cuda as CUDA_VERSION writes it (12.8 -> 12080; 0 when unknown), and
// cuda_graph.cc leaves CUDA graphs out when the headers found are of another version. SEERKIT_CUDA_HEADERS=0 builds
// without them (no memory statistics, no CUDA graphs).
function cudaInclude(info) {
  if (!fs.existsSync(path.join(info.libdir, "libtorch_cuda.so")) || process.env.SEERKIT_CUDA_HEADERS === "0") return undefined;
  const candidates = [
    ...wheelIncludeDirs(info),
    ...["CUDA_HOME", "CUDA_PATH"].filter((k) => process.env[k]).map((k) => path.join(process.env[k], "include")),
    "/usr/local/cuda/include",
    "/usr/include",
  ];
  const found = candidates.filter((d) => fs.existsSync(path.join(d, "cuda_runtime_api.h")));
  const want = Math.floor(cudaVersion(info) / 10);
  return found.find((d) => Math.floor(cudartVersion(d) / 10) === want) ?? found[0];
}

// The include folders of pip's nvidia-* wheels next to torch (site-packages/nvidia/*/include).
function wheelIncludeDirs(info) {
  const nvidia = path.join(info.libdir, "..", "..", "nvidia");
  if (!fs.existsSync(nvidia)) return [];
  return fs.readdirSync(nvidia).map((d) => path.join(nvidia, d, "include")).filter((d) => fs.existsSync(d));
}

// CUDART_VERSION of a folder's cuda_runtime_api.h (12080 for 12.8), or -1.
function cudartVersion(dir) {
  const m = /#define\s+CUDART_VERSION\s+(\d+)/.exec(fs.readFileSync(path.join(dir, "cuda_runtime_api.h"), "utf8"));
  return m ? Number(m[1]) : -1;
}

// ProcessGroupNCCL needs a CUDA build, its header, and nccl.h. pip's torch takes nccl.h from the nvidia-nccl wheel
// (site-packages/nvidia/nccl/include), a CUDA toolkit or NCCL_INCLUDE_DIR may hold it too.
function ncclInclude(info) {
  if (process.env.SEERKIT_NCCL === "0") return undefined; // opt out: build without ProcessGroupNCCL
  if (!fs.existsSync(path.join(info.libdir, "libtorch_cuda.so"))) return undefined;
  if (!info.include.some((d) => fs.existsSync(path.join(d, "torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp")))) return undefined;
  const candidates = [
    ...(process.env.NCCL_INCLUDE_DIR ? [process.env.NCCL_INCLUDE_DIR] : []),
    ...info.include,
    path.join(info.libdir, "..", "..", "nvidia", "nccl", "include"),
    "/usr/local/cuda/include",
    "/usr/include",
  ];
  return candidates.find((d) => fs.existsSync(path.join(d, "nccl.h")));
}

function cudaVersion(info) {
  const m = /^(\d+)\.(\d+)/.exec(info.pyCuda || "");
  return m ? Number(m[1]) * 1000 + Number(m[2]) * 10 : 0;
}

const info = locate();
const cuda = cudaInclude(info);
if (cuda !== undefined && !info.include.includes(cuda)) info.include.push(cuda);
// From the wheels: every nvidia/*/include, so that headers split over wheels (cuda.h, cuBLAS, ...) are found too.
const wheelDirs = wheelIncludeDirs(info);
if (cuda !== undefined && wheelDirs.includes(cuda)) for (const d of wheelDirs) if (!info.include.includes(d)) info.include.push(d);
const nccl = cuda === undefined && fs.existsSync(path.join(info.libdir, "libtorch_cuda.so")) ? undefined : ncclInclude(info); // nccl.h includes cuda_runtime.h
if (nccl !== undefined && !info.include.includes(nccl)) info.include.push(nccl);
const field = process.argv[2];
if (field === "include") console.log(info.include.join(" "));
else if (field === "libdir") console.log(info.libdir);
else if (field === "libs") console.log(libs(info));
else if (field === "abi") console.log(info.abi);
else if (field === "std") console.log(cxxStd(info));
else if (field === "cuda") console.log(fs.existsSync(path.join(info.libdir, "libtorch_cuda.so")) ? 1 : 0);
else if (field === "gloo") console.log(hasGloo(info) ? 1 : 0);
else if (field === "gloodirect") console.log(hasGlooDirect(info) ? 1 : 0);
else if (field === "nccl") console.log(nccl !== undefined ? 1 : 0);
else if (field === "cudaheaders") console.log(cuda !== undefined ? 1 : 0);
else if (field === "cudaversion") console.log(cudaVersion(info));
else console.log(JSON.stringify({ ...info, version: version(info), std: cxxStd(info), libs: libs(info), gloo: hasGloo(info), glooDirect: hasGlooDirect(info), nccl: nccl !== undefined, cudaHeaders: cuda !== undefined, cudaVersion: cudaVersion(info) }, null, 2));
