// ResNet-18/50 in torchvision's layout (He, Zhang, Ren, Sun 2016, "Deep Residual Learning for Image Recognition";
// torchvision 0.14 `torchvision/models/resnet.py`), the baselines next to the RegNets.
//
// Parameter names are torchvision's, so its state dicts (and timm's, which uses the same names for ResNets) load
// unchanged:
//
//   conv1.weight, bn1.*                        stem: 7x7/2 conv 3->64, BN, ReLU, 3x3/2 max-pool
//   layer{l}.{i}.conv1/bn1, conv2/bn2          BasicBlock (ResNet-18): 3x3 (stride), 3x3
//   layer{l}.{i}.conv1/bn1, conv2/bn2, conv3/bn3  Bottleneck (ResNet-50, "v1.5": the stride is on the 3x3 conv2)
//   layer{l}.{i}.downsample.{0,1}.*            1x1/stride conv + BN shortcut, first block of a stage
//   fc.weight, fc.bias
//
// Init, as torchvision's `ResNet.__init__`: layers are built with torch.nn's default init (the downsample before its
// block, as `_make_layer`), then, in `modules()` order, conv weights ~ kaiming normal (fan-out, ReLU gain), BN γ = 1,
// β = 0; `fc` keeps its default init; with zeroInitLastBn (torchvision `zero_init_residual`) the last BN of each
// block (bn2 / bn3) gets γ = 0. With the same seed this draws exactly torchvision's weights.
//
// What differs: `smallImageStem` (3x3 stride-1 conv1, no max-pool: the usual CIFAR ResNet stem, pycls
// `ResStemCifar`) and `numClasses: 0` for no classifier. Groups/width-per-group/dilation variants are not built.
import { BatchNorm2d, Conv2d, Module, Sequential } from "../nn";
import { maxPool2d } from "../nn/functional";
import { torchvisionResNetInit } from "../nn/init";
import { type Tensor, tidy } from "../tensor";
import { type BackboneOptions, Backbone, type ResolvedBackboneOptions, bnStateShapes, resolveBackboneOptions } from "./blocks";
import { type ResNetBlock, type ResNetDesign, resnetBlocks } from "./regnet_design";

/** A torchvision ResNet built from a design (`generateResNet` / `modelDesign`); `createModel(name)` is the usual entry. */
export class ResNet extends Backbone {
  readonly design: ResNetDesign;
  readonly options: ResolvedBackboneOptions;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  /** layer1..layer4: Sequentials of blocks named "0", "1", ... */
  readonly layers: readonly Sequential[];
  /** Every block in forward order. */
  readonly blocks: readonly ResNetBlockModule[];

  constructor(design: ResNetDesign, options: BackboneOptions = {}) {
    const o = resolveBackboneOptions(options);
    super(design.numFeatures, o.numClasses);
    this.design = design;
    this.options = o;
    const w = design.stemWidth;
    this.conv1 = this.registerModule("conv1", o.smallImageStem ? conv3x3(3, w) : new Conv2d(3, w, 7, { stride: 2, padding: 3, bias: false }));
    this.bn1 = this.registerModule("bn1", new BatchNorm2d(w));
    const specs = resnetBlocks(design);
    const Block = design.block === "basic" ? BasicBlock : Bottleneck;
    const blocks: ResNetBlockModule[] = [];
    this.layers = design.stages.map((_, si) => {
      // The downsample is built before its block, as torchvision's `_make_layer` does.
      const stage = specs.filter((b) => b.stage === si + 1).map((b) => new Block(b, downsample(b)));
      blocks.push(...stage);
      return this.registerModule(`layer${si + 1}`, new Sequential(...stage));
    });
    this.blocks = blocks;
    this.addHead();
    torchvisionResNetInit(this, { zeroInitResidual: o.zeroInitLastBn });
  }

  /** conv1 -> bn1 -> ReLU -> max-pool (no max-pool with the small stem). */
  private forwardStem(x: Tensor): Tensor {
    using c = this.conv1.forward(x); // (N, 64, H/2, W/2), or (N, 64, H, W) with the small stem
    const s = this.bn1.forward(c).relu_();
    if (this.options.smallImageStem) return s;
    using t = s;
    return maxPool2d(t, 3, { stride: 2, padding: 1 }); // (N, 64, H/4, W/4)
  }

  forwardTrunk(x: Tensor): Tensor {
    return tidy(() => {
      let h = this.forwardStem(x); // (N, 64, H/4, W/4)
      for (const block of this.blocks) {
        const next = block.forward(h); // (N, w_out, H', W')
        h.dispose();
        h = next;
      }
      return h; // (N, numFeatures, H/32, W/32), or H/8 with the small stem
    });
  }

  /** The (key, shape) pairs of this design's state dict, in state-dict order, without building anything. */
  static stateShapes(design: ResNetDesign, options: BackboneOptions = {}): [string, number[]][] {
    const o = resolveBackboneOptions(options);
    const w = design.stemWidth;
    const k = o.smallImageStem ? 3 : 7;
    const out: [string, number[]][] = [["conv1.weight", [w, 3, k, k]], ...bnStateShapes("bn1", w)];
    const Block = design.block === "basic" ? BasicBlock : Bottleneck;
    for (const b of resnetBlocks(design)) out.push(...Block.stateShapes(`layer${b.stage}.${b.index - 1}`, b));
    return [...out, ...Backbone.headStateShapes(design.numFeatures, o.numClasses)];
  }
}

/** torchvision `BasicBlock` (expansion 1): 3x3 (stride) + BN + ReLU, 3x3 + BN, + shortcut, ReLU. */
export class BasicBlock extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: Sequential | undefined;

  constructor(b: ResNetBlock, down: Sequential | undefined) {
    super();
    this.conv1 = this.registerModule("conv1", conv3x3(b.wIn, b.wOut, b.stride));
    this.bn1 = this.registerModule("bn1", new BatchNorm2d(b.wOut));
    this.conv2 = this.registerModule("conv2", conv3x3(b.wOut, b.wOut));
    this.bn2 = this.registerModule("bn2", new BatchNorm2d(b.wOut));
    this.bn2.finalBn = true;
    this.downsample = down ? this.registerModule("downsample", down) : undefined;
  }

  forward(x: Tensor): Tensor {
    using c1 = this.conv1.forward(x); // (N, w_out, H/s, W/s)
    using h1 = this.bn1.forward(c1);
    h1.relu_();
    using c2 = this.conv2.forward(h1); // (N, w_out, H/s, W/s)
    return addShortcut(this.bn2.forward(c2), x, this.downsample); // (N, w_out, H/s, W/s)
  }

  static stateShapes(prefix: string, b: ResNetBlock): [string, number[]][] {
    return [
      [`${prefix}.conv1.weight`, [b.wOut, b.wIn, 3, 3]], ...bnStateShapes(`${prefix}.bn1`, b.wOut),
      [`${prefix}.conv2.weight`, [b.wOut, b.wOut, 3, 3]], ...bnStateShapes(`${prefix}.bn2`, b.wOut),
      ...downsampleStateShapes(prefix, b),
    ];
  }
}

/** torchvision `Bottleneck` (expansion 4, v1.5): 1x1 + BN + ReLU, 3x3 (stride) + BN + ReLU, 1x1 + BN, + shortcut, ReLU. */
export class Bottleneck extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly downsample: Sequential | undefined;

  constructor(b: ResNetBlock, down: Sequential | undefined) {
    super();
    const w = b.bottleneckWidth;
    this.conv1 = this.registerModule("conv1", conv1x1(b.wIn, w));
    this.bn1 = this.registerModule("bn1", new BatchNorm2d(w));
    this.conv2 = this.registerModule("conv2", conv3x3(w, w, b.stride));
    this.bn2 = this.registerModule("bn2", new BatchNorm2d(w));
    this.conv3 = this.registerModule("conv3", conv1x1(w, b.wOut));
    this.bn3 = this.registerModule("bn3", new BatchNorm2d(b.wOut));
    this.bn3.finalBn = true;
    this.downsample = down ? this.registerModule("downsample", down) : undefined;
  }

  forward(x: Tensor): Tensor {
    using c1 = this.conv1.forward(x); // (N, w, H, W)
    using h1 = this.bn1.forward(c1);
    h1.relu_();
    using c2 = this.conv2.forward(h1); // (N, w, H/s, W/s)
    using h2 = this.bn2.forward(c2);
    h2.relu_();
    using c3 = this.conv3.forward(h2); // (N, 4w, H/s, W/s)
    return addShortcut(this.bn3.forward(c3), x, this.downsample); // (N, 4w, H/s, W/s)
  }

  static stateShapes(prefix: string, b: ResNetBlock): [string, number[]][] {
    const w = b.bottleneckWidth;
    return [
      [`${prefix}.conv1.weight`, [w, b.wIn, 1, 1]], ...bnStateShapes(`${prefix}.bn1`, w),
      [`${prefix}.conv2.weight`, [w, w, 3, 3]], ...bnStateShapes(`${prefix}.bn2`, w),
      [`${prefix}.conv3.weight`, [b.wOut, w, 1, 1]], ...bnStateShapes(`${prefix}.bn3`, b.wOut),
      ...downsampleStateShapes(prefix, b),
    ];
  }
}

function downsampleStateShapes(prefix: string, b: ResNetBlock): [string, number[]][] {
  return b.projection ? [[`${prefix}.downsample.0.weight`, [b.wOut, b.wIn, 1, 1]], ...bnStateShapes(`${prefix}.downsample.1`, b.wOut)] : [];
}

export type ResNetBlockModule = BasicBlock | Bottleneck;

const conv3x3 = (cin: number, cout: number, stride = 1): Conv2d => new Conv2d(cin, cout, 3, { stride, padding: 1, bias: false });
const conv1x1 = (cin: number, cout: number, stride = 1): Conv2d => new Conv2d(cin, cout, 1, { stride, bias: false });

/** torchvision's `downsample`: Sequential(1x1/stride conv, BN), named "0" and "1". */
function downsample(b: ResNetBlock): Sequential | undefined {
  return b.projection ? new Sequential(conv1x1(b.wIn, b.wOut, b.stride), new BatchNorm2d(b.wOut)) : undefined;
}

/** out = ReLU(out + shortcut(x)), in place on out. */
function addShortcut(out: Tensor, x: Tensor, down: Sequential | undefined): Tensor {
  if (down) {
    using s = down.forward(x); // (N, w_out, H/s, W/s)
    out.add_(s);
  } else {
    out.add_(x);
  }
  return out.relu_();
}
