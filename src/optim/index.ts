// Optimizers (SGD, AdamW, LARC/LARS around SGD) and learning-rate schedules.
export * from "./optimizer";
export * from "./sgd";
export * from "./adamw";
export * from "./lars";
export * from "./schedule";
