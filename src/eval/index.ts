// Evaluation of frozen backbones: feature extraction and caching, weighted kNN, linear probe, low-shot subsets, and
// the `seer eval` command.
export * from "./backbone";
export * from "./features";
export * from "./knn";
export * from "./linear";
export * from "./lowshot";
export { evalCommand, formatEvalTable, type EvalReport } from "./command";
