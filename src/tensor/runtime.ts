// Process-wide settings: threads, the random seed, devices, and what `seer info` reports.
import { torch } from "../native/load";

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
