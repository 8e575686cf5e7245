// Self-supervised pretraining: Sinkhorn, the SwAV and NT-Xent losses, heads, and the SwAV / SimCLR compositions.
export * from "./types";
export * from "./sinkhorn";
export * from "./heads";
export * from "./swav_loss";
export * from "./ntxent_loss";
export * from "./methods/swav";
export * from "./methods/simclr";
