// `seer reproduce`: the SEER study (pretrained vs scratch, uncurated vs curated, SwAV vs SimCLR, several RegNetY
// sizes) at a budget, with its report.
export * from "./budgets";
export * from "./study";
export * from "./report";
export { reproduceCommand } from "./command";
