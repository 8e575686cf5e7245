// The nn layer: Module, the torch.nn layers, functional ops (as F) and weight initialization (as init).
export * from "./module";
export * from "./layers";
export * as F from "./functional";
export * as init from "./init";
