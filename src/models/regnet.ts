// RegNetX / RegNetY backbones (Radosavovic, Kosaraju, Girshick, He, Dollár 2020, "Designing Network Design
// Spaces", arXiv 2003.13678), the trunk of SEER (Goyal et al. 2021, "Self-supervised Pretraining of Visual Features
// in the Wild").
//
// Built module for module as torchvision 0.14 `torchvision/models/regnet.py` (itself a port of pycls
// `pycls/models/anynet.py` and ClassyVision `classy_vision/models/anynet.py`), so torchvision state dicts load
// unchanged and the parameter names are torchvision's:
//
//   stem.0.weight, stem.1.*                                     SimpleStemIN: 3x3/2 conv 3->32, BN, ReLU
//   trunk_output.block{s}.block{s}-{i}.proj.{0,1}.*             1x1/stride conv + BN shortcut (when shape changes)
//   trunk_output.block{s}.block{s}-{i}.f.a.{0,1}.*              1x1 conv w_in->w_b, BN, ReLU
//   trunk_output.block{s}.block{s}-{i}.f.b.{0,1}.*              3x3/stride grouped conv w_b->w_b, BN, ReLU
//   trunk_output.block{s}.block{s}-{i}.f.se.fc{1,2}.{weight,bias}  SE (RegNetY): squeeze width round(0.25 · w_in)
//   trunk_output.block{s}.block{s}-{i}.f.c.{0,1}.*              1x1 conv w_b->w_out, BN (no ReLU)
//   fc.weight, fc.bias                                          after global average pooling
//
// with y = ReLU(proj(x) + F(x)) (or ReLU(x + F(x))) per block (seer-facts.md §5.2). The widths, groups and SE
// widths come from `regnetBlocks(design)` (regnet_design.ts); `complexity()` counts the same list.
//
// Init, as torchvision's `RegNet.__init__` (= ClassyVision `init_weights`, pycls `init_weights`): every layer is
// first built with torch.nn's default init (same draws, same order: proj before f), then, in `modules()` order,
// conv weights ~ N(0, 2 / (k·k·C_out)) (kaiming normal, fan-out), BN γ = 1, β = 0, Linear ~ N(0, 0.01²) with bias 0;
// the SE convs keep their default-init biases. With the same seed this draws exactly torchvision's weights.
//
// What differs: optional zero-init of each block's last BN (`zeroInitLastBn`, pycls `ZERO_INIT_FINAL_GAMMA`, timm
// `zero_init_last`), a CIFAR stem (`smallImageStem`: 3x3 stride 1, pycls `ResStemCifar`), and `numClasses: 0` for no
// classifier (timm). Other naming conventions (timm, VISSL/SEER, ClassyVision) map onto these names in
// weight_names.ts.
import { BatchNorm2d, Conv2d, Linear, Module } from "../nn";
import { constant_, normal_, ones_, zeros_ } from "../nn/init";
import { type Tensor, tidy } from "../tensor";
import {
  type BackboneOptions,
  Backbone,
  ConvNormAct,
  NamedSequential,
  type ResolvedBackboneOptions,
  SqueezeExcitation,
  resolveBackboneOptions,
} from "./blocks";
import { type RegNetBlock, type RegNetDesign, regnetBlocks } from "./regnet_design";

/** A RegNet built from a design (see `generateRegNet` / `modelDesign`); `createModel(name)` is the usual entry. */
export class RegNet extends Backbone {
  readonly design: RegNetDesign;
  readonly options: ResolvedBackboneOptions;
  /** Stem: 3x3 conv 3 -> stemWidth (stride 2, or 1 with smallImageStem), BN, ReLU. */
  readonly stem: ConvNormAct;
  /** Stages `block1`.. of blocks `block{s}-{i}`, as torchvision's `trunk_output`. */
  readonly trunkOutput: NamedSequential<NamedSequential<ResBottleneckBlock>>;
  /** Every block in forward order. */
  readonly blocks: readonly ResBottleneckBlock[];

  constructor(design: RegNetDesign, options: BackboneOptions = {}) {
    const o = resolveBackboneOptions(options);
    super(design.numFeatures, o.numClasses);
    this.design = design;
    this.options = o;
    this.stem = this.registerModule("stem", new ConvNormAct(3, design.stemWidth, 3, { stride: o.smallImageStem ? 1 : 2 }));
    const specs = regnetBlocks(design);
    const stages = design.stages.map((_, si) => {
      const blocks = specs.filter((b) => b.stage === si + 1).map((b): [string, ResBottleneckBlock] => [regnetBlockName(b), new ResBottleneckBlock(b)]);
      return [`block${si + 1}`, new NamedSequential(blocks)] as [string, NamedSequential<ResBottleneckBlock>];
    });
    this.trunkOutput = this.registerModule("trunk_output", new NamedSequential(stages));
    this.blocks = this.trunkOutput.layers.flatMap((s) => s.layers);
    this.addHead();
    regnetInit(this, { zeroInitLastBn: o.zeroInitLastBn });
  }

  forwardTrunk(x: Tensor): Tensor {
    return tidy(() => {
      let h = this.stem.forward(x); // (N, 32, H/2, W/2)
      for (const block of this.blocks) {
        const next = block.forward(h); // (N, w_out, H', W')
        h.dispose();
        h = next;
      }
      return h; // (N, numFeatures, H/32, W/32)
    });
  }

  /**
   * The (key, shape) pairs of this design's state dict, in state-dict order, computed without building anything
   * (for models too large to build in a test; checked against the built modules on the small ones).
   */
  static stateShapes(design: RegNetDesign, options: BackboneOptions = {}): [string, number[]][] {
    const o = resolveBackboneOptions(options);
    const out: [string, number[]][] = [...ConvNormAct.stateShapes("stem", 3, design.stemWidth, 3)];
    for (const b of regnetBlocks(design)) {
      const p = `trunk_output.block${b.stage}.${regnetBlockName(b)}`;
      if (b.projection) out.push(...ConvNormAct.stateShapes(`${p}.proj`, b.wIn, b.wOut, 1));
      out.push(...ConvNormAct.stateShapes(`${p}.f.a`, b.wIn, b.bottleneckWidth, 1));
      out.push(...ConvNormAct.stateShapes(`${p}.f.b`, b.bottleneckWidth, b.bottleneckWidth, 3, b.groups));
      if (b.seWidth > 0) out.push(...SqueezeExcitation.stateShapes(`${p}.f.se`, b.bottleneckWidth, b.seWidth));
      out.push(...ConvNormAct.stateShapes(`${p}.f.c`, b.bottleneckWidth, b.wOut, 1));
    }
    return [...out, ...Backbone.headStateShapes(design.numFeatures, o.numClasses)];
  }
}

/**
 * torchvision `RegNet.__init__`'s weight init, in `modules()` order (so that the draws match torchvision's):
 * conv weight ~ N(0, 2 / (kH·kW·C_out)), BN γ = 1 and β = 0, Linear weight ~ N(0, 0.01²) and bias 0; conv biases
 * (the SE's) keep their default init. With zeroInitLastBn, the BNs flagged `finalBn` get γ = 0 afterwards.
 */
export function regnetInit(model: Module, o: { zeroInitLastBn?: boolean } = {}): void {
  for (const m of model.modules()) {
    if (m instanceof Conv2d) {
      const fanOut = m.kernelSize[0] * m.kernelSize[1] * m.outChannels;
      normal_(m.weight, 0.0, Math.sqrt(2.0 / fanOut));
    } else if (m instanceof BatchNorm2d && m.weight && m.bias) {
      ones_(m.weight);
      zeros_(m.bias);
    } else if (m instanceof Linear) {
      normal_(m.weight, 0.0, 0.01);
      if (m.bias) zeros_(m.bias);
    }
  }
  if (!o.zeroInitLastBn) return;
  for (const m of model.modules()) if (m instanceof BatchNorm2d && m.finalBn && m.weight) constant_(m.weight, 0);
}

/** torchvision/ClassyVision's block name: stage s (1-based), block i (0-based): `block{s}-{i}`. */
export const regnetBlockName = (b: RegNetBlock): string => `block${b.stage}-${b.index - 1}`;

/**
 * torchvision `ResBottleneckBlock`: y = ReLU(proj(x) + f(x)), with proj a 1x1/stride conv + BN when the width or the
 * resolution changes, the identity otherwise. (N, w_in, H, W) -> (N, w_out, H/stride, W/stride).
 */
export class ResBottleneckBlock extends Module {
  readonly proj: ConvNormAct | undefined;
  readonly f: BottleneckTransform;

  constructor(readonly spec: RegNetBlock) {
    super();
    // Built before f, as torchvision, so that default-init draws come in the same order.
    this.proj = spec.projection ? this.registerModule("proj", new ConvNormAct(spec.wIn, spec.wOut, 1, { stride: spec.stride, act: false })) : undefined;
    this.f = this.registerModule("f", new BottleneckTransform(spec));
  }

  forward(x: Tensor): Tensor {
    const y = this.f.forward(x); // (N, w_out, H/s, W/s)
    if (this.proj) {
      using s = this.proj.forward(x); // (N, w_out, H/s, W/s)
      y.add_(s);
    } else {
      y.add_(x);
    }
    return y.relu_(); // (N, w_out, H/s, W/s)
  }
}

/**
 * torchvision `BottleneckTransform`: a (1x1) -> b (3x3 grouped, stride) -> se (RegNetY) -> c (1x1, no ReLU).
 * (N, w_in, H, W) -> (N, w_out, H/stride, W/stride).
 */
export class BottleneckTransform extends Module {
  readonly a: ConvNormAct;
  readonly b: ConvNormAct;
  readonly se: SqueezeExcitation | undefined;
  readonly c: ConvNormAct;

  constructor(blk: RegNetBlock) {
    super();
    const wb = blk.bottleneckWidth;
    this.a = this.registerModule("a", new ConvNormAct(blk.wIn, wb, 1));
    this.b = this.registerModule("b", new ConvNormAct(wb, wb, 3, { stride: blk.stride, groups: blk.groups }));
    this.se = blk.seWidth > 0 ? this.registerModule("se", new SqueezeExcitation(wb, blk.seWidth)) : undefined;
    this.c = this.registerModule("c", new ConvNormAct(wb, blk.wOut, 1, { act: false }));
    this.c.bn.finalBn = true; // the BN zeroInitLastBn zeroes
  }

  forward(x: Tensor): Tensor {
    using a = this.a.forward(x); // (N, w_b, H, W)
    using b = this.b.forward(a); // (N, w_b, H/s, W/s)
    if (!this.se) return this.c.forward(b); // (N, w_out, H/s, W/s)
    using e = this.se.forward(b); // (N, w_b, H/s, W/s)
    return this.c.forward(e); // (N, w_out, H/s, W/s)
  }
}
