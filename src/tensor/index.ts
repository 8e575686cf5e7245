// The tensor layer: Tensor, creation, scopes, grad mode and runtime settings.
export * from "./dtype";
export * from "./tensor";
export * from "./creation";
export * from "./scope";
export * from "./grad";
export * from "./runtime";
export * from "./cuda_graph";
export * from "./foreach";
