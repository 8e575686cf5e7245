# Builds seerkit's libtorch addon. libtorch is located by find_libtorch.js (LIBTORCH, LIBTORCH_USE_PYTORCH=1, system).
{
  "targets": [
    {
      "target_name": "seerkit",
      "sources": ["src/addon.cc", "src/tensor_ops.cc", "src/nn_ops.cc", "src/runtime.cc", "src/dist.cc", "src/cuda_graph.cc"],
      "include_dirs": ["<!@(node find_libtorch.js include)"],
      "defines": [
        "NAPI_VERSION=8",
        
        "_GLIBCXX_USE_CXX11_ABI=<!(node find_libtorch.js abi)",
        "SEERKIT_SOURCE_HASH=\"<!(node source_hash.js)\"",
        "SEERKIT_WITH_CUDA=<!(node find_libtorch.js cuda)",
        "SEERKIT_WITH_CUDA_HEADERS=<!(node find_libtorch.js cudaheaders)",
        "SEERKIT_TORCH_CUDA_VERSION=<!(node find_libtorch.js cudaversion)",
        "SEERKIT_WITH_GLOO=<!(node find_libtorch.js gloo)",
        "SEERKIT_GLOO_DIRECT=<!(node find_libtorch.js gloodirect)",
        "SEERKIT_WITH_NCCL=<!(node find_libtorch.js nccl)"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=<!(node find_libtorch.js std)", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "ldflags": ["<!@(node find_libtorch.js libs)"]
    }
  ]
}
