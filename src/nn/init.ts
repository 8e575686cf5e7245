// Weight initialization, in place and without recording gradients. The functions and their formulas follow
// torch.nn.init (same fan and gain arithmetic, same random calls in the same order), so with the same seed they
// draw the same values as PyTorch on the same libtorch. The model-level schemes at the end copy pycls
// (pycls/models/blocks.py init_weights, used by RegNet and SEER) and torchvision (resnet.py ResNet.__init__).
import { noGrad } from "../tensor/grad";
import { randnLike, where } from "../tensor/creation";
import type { Tensor } from "../tensor/tensor";
import type { Module } from "./module";
import { BatchNorm2d, Conv2d, Linear } from "./layers";

export type Nonlinearity = "linear" | "conv2d" | "sigmoid" | "tanh" | "relu" | "leaky_relu" | "selu";
export type FanMode = "fanIn" | "fanOut";

/** fan_in = in_features × receptive field, fan_out = out_features × receptive field (torch.nn.init). */
export function fans(t: Tensor): { fanIn: number; fanOut: number } {
  const s = t.shape;
  if (s.length < 2) throw new RangeError(`fan in and fan out need a tensor of 2 or more dims, got shape [${s.join(", ")}]`);
  const receptive = s.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: s[1]! * receptive, fanOut: s[0]! * receptive };
}

/** The recommended gain for a nonlinearity (torch.nn.init.calculate_gain). param is leaky_relu's slope. */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case "linear": case "conv2d": case "sigmoid": return 1;
    case "tanh": return 5.0 / 3;
    case "relu": return Math.sqrt(2.0);
    case "leaky_relu": {
      const slope = param ?? 0.01;
      return Math.sqrt(2.0 / (1 + slope ** 2));
    }
    case "selu": return 3.0 / 4;
  }
}

export const uniform_ = (t: Tensor, a = 0, b = 1): Tensor => noGrad(() => t.uniform_(a, b));
export const normal_ = (t: Tensor, mean = 0, std = 1): Tensor => noGrad(() => t.normal_(mean, std));
export const constant_ = (t: Tensor, value: number): Tensor => noGrad(() => t.fill_(value));
export const zeros_ = (t: Tensor): Tensor => constant_(t, 0);
export const ones_ = (t: Tensor): Tensor => constant_(t, 1);

export interface KaimingOptions {
  /** leaky_relu's negative slope (0 by default, as PyTorch). */
  a?: number;
  mode?: FanMode;
  nonlinearity?: Nonlinearity;
}

function kaimingStd(t: Tensor, o: KaimingOptions): number {
  const { fanIn, fanOut } = fans(t);
  const fan = (o.mode ?? "fanIn") === "fanIn" ? fanIn : fanOut;
  return calculateGain(o.nonlinearity ?? "leaky_relu", o.a ?? 0) / Math.sqrt(fan);
}

/** U(-b, b) with b = gain × sqrt(3 / fan) (He et al. 2015). */
export function kaimingUniform_(t: Tensor, o: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3.0) * kaimingStd(t, o);
  return uniform_(t, -bound, bound);
}

/** N(0, std²) with std = gain / sqrt(fan) (He et al. 2015). */
export function kaimingNormal_(t: Tensor, o: KaimingOptions = {}): Tensor {
  return normal_(t, 0, kaimingStd(t, o));
}

/** U(-a, a) with a = gain × sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010). */
export function xavierUniform_(t: Tensor, gain = 1): Tensor {
  const { fanIn, fanOut } = fans(t);
  const std = gain * Math.sqrt(2.0 / (fanIn + fanOut));
  const a = Math.sqrt(3.0) * std;
  return uniform_(t, -a, a);
}

/**
 * N(mean, std²) restricted to [a, b] (absolute bounds, as torch.nn.init.trunc_normal_). Drawn by redrawing the
 * out-of-range elements until none is left: the same distribution as PyTorch's, not the same draws.
 */
export function truncNormal_(t: Tensor, mean = 0, std = 1, a = -2, b = 2): Tensor {
  if (!(a < b) || !(a <= mean + 8 * std && b >= mean - 8 * std)) throw new RangeError(`truncNormal_: [${a}, ${b}] is empty or too far from the mean`);
  return noGrad(() => {
    t.normal_(mean, std);
    for (;;) {
      using below = t.lt(a);
      using above = t.gt(b);
      using out = below.logicalOr(above); // same shape as t, bool
      using anyOut = out.any();
      if (anyOut.item() === 0) return t;
      using fresh = randnLike(t);
      fresh.mul_(std).add_(mean);
      using mixed = where(out, fresh, t);
      t.copy_(mixed);
    }
  });
}

/**
 * torch.nn's default for Conv2d and Linear (their reset_parameters): weight kaiming_uniform with a = sqrt(5),
 * i.e. U(±1/sqrt(fan_in)); bias U(±1/sqrt(fan_in)).
 */
export function defaultLayerInit_(weight: Tensor, bias: Tensor | undefined): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (!bias) return;
  const { fanIn } = fans(weight);
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  uniform_(bias, -bound, bound);
}

/**
 * pycls's init_weights (RegNet, SEER), applied children first as module.apply does: Conv2d weight
 * N(0, 2 / (kH × kW × out_channels)) (fan-out; conv biases keep their default); BatchNorm2d weight 1 (0 for a
 * BN flagged finalBn when zeroInitFinalGamma) and bias 0; Linear weight N(0, 0.01²) and bias 0.
 */
export function pyclsInit(module: Module, o: { zeroInitFinalGamma?: boolean } = {}): void {
  module.apply((m) => {
    if (m instanceof Conv2d) {
      const fanOut = m.kernelSize[0] * m.kernelSize[1] * m.outChannels;
      normal_(m.weight, 0.0, Math.sqrt(2.0 / fanOut));
    } else if (m instanceof BatchNorm2d && m.weight && m.bias) {
      constant_(m.weight, m.finalBn && o.zeroInitFinalGamma ? 0.0 : 1.0);
      zeros_(m.bias);
    } else if (m instanceof Linear) {
      normal_(m.weight, 0.0, 0.01);
      if (m.bias) zeros_(m.bias);
    }
  });
}

/**
 * torchvision ResNet's init, in modules() order: Conv2d weight kaiming_normal (fan-out, relu); BatchNorm2d
 * weight 1 and bias 0; with zeroInitResidual, BNs flagged finalBn (the last BN of each residual branch) get
 * weight 0. Linear layers keep their default init.
 */
export function torchvisionResNetInit(module: Module, o: { zeroInitResidual?: boolean } = {}): void {
  for (const m of module.modules()) {
    if (m instanceof Conv2d) kaimingNormal_(m.weight, { mode: "fanOut", nonlinearity: "relu" });
    else if (m instanceof BatchNorm2d && m.weight && m.bias) {
      ones_(m.weight);
      zeros_(m.bias);
    }
  }
  if (!o.zeroInitResidual) return;
  for (const m of module.modules()) if (m instanceof BatchNorm2d && m.finalBn && m.weight) zeros_(m.weight);
}
