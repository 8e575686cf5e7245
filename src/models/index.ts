// The models layer: RegNet/ResNet designs and complexity (pure arithmetic), the backbone modules, the named-model
// registry (createModel, listModels) and state-dict name mapping (timm, VISSL/SEER, ClassyVision -> torchvision).
export * from "./regnet_design";
export * from "./complexity";
export * from "./registry_table";
export * from "./blocks";
export * from "./regnet";
export * from "./resnet";
export * from "./registry";
export * from "./weight_names";
