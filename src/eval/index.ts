// Evaluation of backbones: feature extraction and caching, weighted kNN, linear probe, full fine-tuning, low-shot
// subsets, and the `seer eval` command.
export * from "./backbone";
export * from "./features";
export * from "./knn";
export * from "./linear";
export * from "./lowshot";
export * from "./finetune";
export { evalCommand, formatEvalTable, type EvalReport } from "./command";
