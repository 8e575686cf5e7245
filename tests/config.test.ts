// Config overrides: known keys only, typed values, errors that name the key.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { applyOverrides, mergeConfig } from "../src/config/overrides";

const defaults = { arch: "regnet_y_400mf", optim: { lr: 0.3, nesterov: false, milestones: [10, 20] }, note: null as string | null };

test("overrides parse into the default's type", () => {
  const c = applyOverrides(defaults, ["optim.lr=0.6", "optim.nesterov=true", "optim.milestones=[5]", "arch=resnet18", "note=hi"]);
  assert.deepEqual(c, { arch: "resnet18", optim: { lr: 0.6, nesterov: true, milestones: [5] }, note: "hi" });
  assert.equal(defaults.optim.lr, 0.3, "defaults untouched");
});

test("unknown keys and wrong types are errors naming the key", () => {
  assert.throws(() => applyOverrides(defaults, ["optim.lrr=1"]), /unknown key 'optim.lrr'.*lr, nesterov, milestones/);
  assert.throws(() => applyOverrides(defaults, ["optim.lr=fast"]), /optim.lr: 'fast' is not a number/);
  assert.throws(() => applyOverrides(defaults, ["optim.nesterov=yes"]), /optim.nesterov: 'yes' is not a boolean/);
  assert.throws(() => applyOverrides(defaults, ["optim.milestones={\"a\":1}"]), /optim.milestones: expected array, got object/);
  assert.throws(() => applyOverrides(defaults, ["lr"]), /not key=value/);
});

test("JSON config files merge with the same checks", () => {
  assert.deepEqual(mergeConfig(defaults, { optim: { lr: 1 } }).optim, { lr: 1, nesterov: false, milestones: [10, 20] });
  assert.throws(() => mergeConfig(defaults, { optim: { lr: "1" } }, "my.json"), /my.json: optim.lr: expected number, got string/);
  assert.throws(() => mergeConfig(defaults, { extra: 1 }, "my.json"), /my.json: unknown key 'extra'/);
});
