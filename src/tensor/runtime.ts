// Process-wide settings: threads, the random seed, devices, and what `seer info` reports.
import { torch } from "../native/load";
import { dtypeCode, type Device } from "./dtype";

/** Intra-op threads libtorch uses for CPU kernels. */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
  torch.setNumThreads(n);
}
export const getNumThreads = (): number => torch.getNumThreads();

/**
 * Seeds every libtorch generator (CPU and CUDA). With the same seed and thread count, CPU results are
 * bit-identical from run to run.
 */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`manualSeed: expected a non-negative integer, got ${seed}`);
  torch.manualSeed(seed);
}

export const cudaAvailable = (): boolean => torch.cudaAvailable();
export const cudaDeviceCount = (): number => torch.cudaDeviceCount();
export const torchVersion = (): string => torch.torchVersion();

/** The CUDA device index of "cuda" / "cuda:N" (0 for plain "cuda"); undefined for the CPU. */
export function cudaIndex(device: Device): number | undefined {
  if (device === "cpu") return undefined;
  return device === "cuda" ? 0 : Number(device.slice(5));
}

/**
 * Makes a CUDA device this thread's current one (torch.cuda.set_device), as every process of a multi-GPU job does
 * with its local rank's GPU. Throws when this libtorch has no CUDA.
 */
export function setCudaDevice(device: Device): void {
  const i = cudaIndex(device);
  if (i === undefined) throw new RangeError(`setCudaDevice: expected a CUDA device, got ${device}`);
  torch.setCudaDevice(i);
}

/** Waits for every queued CUDA kernel (torch.cuda.synchronize); a no-op without CUDA. */
export const cudaSynchronize = (): void => torch.cudaSynchronize();

/**
 * Bytes the caching allocator holds for tensors on a CUDA device now and at its peak (zeros on the CPU; NaN when the
 * addon was built without the CUDA runtime's headers, see native/find_libtorch.js).
 */
export function cudaMemory(device: Device): { allocated: number; peak: number } {
  const i = cudaIndex(device);
  if (i === undefined) return { allocated: 0, peak: 0 };
  const [allocated, peak] = torch.cudaMemory(i);
  return allocated < 0 ? { allocated: NaN, peak: NaN } : { allocated, peak };
}

/** Starts a new peak for cudaMemory (torch.cuda.reset_peak_memory_stats). */
export function resetCudaPeak(device: Device): void {
  const i = cudaIndex(device);
  if (i !== undefined) torch.cudaResetPeak(i);
}

/**
 * cuDNN autotuning and TF32 matmuls/convolutions, process-wide (PyTorch: torch.backends.cudnn.benchmark,
 * torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32). Autotuning pays off with fixed
 * shapes, as in training; TF32 only affects float32 work (bf16 autocast regions are unaffected).
 */
export function setCudaBackend(o: { cudnnBenchmark: boolean; allowTf32: boolean }): void {
  torch.setCudaBackendFlags(o.cudnnBenchmark, o.allowTf32);
}

/**
 * Runs `fn` with CUDA autocast to `dtype` (torch.autocast("cuda", dtype)): convolutions and matmuls on CUDA tensors
 * run in bf16/f16, reductions and losses stay float32. `null` runs `fn` unchanged. The previous state is restored
 * even if `fn` throws, and autocast's weight-cast cache is cleared when the outermost region ends.
 */
export function withAutocast<R>(dtype: "bfloat16" | "float16" | null, fn: () => R): R {
  if (dtype === null) return fn();
  const was = torch.setAutocastCuda(true, dtypeCode(dtype));
  try {
    return fn();
  } finally {
    if (!was) torch.setAutocastCuda(false, dtypeCode(dtype));
  }
}

export interface RuntimeInfo {
  libtorch: string;
  threads: number;
  devices: string[];
  parallel: string;
  /** Whether glibc's malloc keeps freed memory in the process (native/src/addon.cc; SEERKIT_MALLOC_TUNING=0: off). */
  mallocTuned: boolean;
}

export function runtimeInfo(): RuntimeInfo {
  const devices = ["cpu"];
  for (let i = 0; i < torch.cudaDeviceCount(); i++) devices.push(`cuda:${i}`);
  return { libtorch: torch.torchVersion(), threads: torch.getNumThreads(), devices, parallel: torch.parallelInfo(), mallocTuned: torch.mallocTuned() };
}
