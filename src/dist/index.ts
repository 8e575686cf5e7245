// Distributed training: process groups and collectives (c10d: Gloo on CPUs, NCCL on GPUs where built), the
// launcher environment, data-parallel helpers, synchronized BatchNorm and the local multi-process launcher.
export * from "./env";
export * from "./process_group";
export * from "./data_parallel";
export * from "./sync_batchnorm";
export { freePort, spawnLocalWorkers, torchrunEnv, type LaunchOptions, type LaunchResult, type WorkerExit } from "./launch";
