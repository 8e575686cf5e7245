// Neural-network ops: convolution, normalization, pooling, activations with a dim, losses, resampling.
// Each maps onto the ATen function torch.nn.functional itself calls, so numerics equal PyTorch's.
#include "handles.h"

using seer::Args;

// conv2d(x, weight, bias | null, stride[2], padding[2], dilation[2], groups)
SEER_OP(conv2d, at::conv2d(a.t(0), a.t(1), a.optT(2), a.ints(3), a.ints(4), a.ints(5), a.i64(6)))

// batchNorm(x, weight|null, bias|null, runningMean|null, runningVar|null, training, momentum, eps)
// In training mode ATen updates the running statistics in place, as torch.nn.BatchNorm does.
SEER_OP(batchNorm, at::batch_norm(a.t(0), a.optT(1), a.optT(2), a.optT(3), a.optT(4), a.b(5), a.d(6), a.d(7),
                                  /*cudnn_enabled=*/true))

// maxPool2d(x, kernel[2], stride[2], padding[2], dilation[2], ceilMode)
SEER_OP(maxPool2d, at::max_pool2d(a.t(0), a.ints(1), a.ints(2), a.ints(3), a.ints(4), a.b(5)))
// avgPool2d(x, kernel[2], stride[2], padding[2], ceilMode, countIncludePad)
SEER_OP(avgPool2d, at::avg_pool2d(a.t(0), a.ints(1), a.ints(2), a.ints(3), a.b(4), a.b(5)))
SEER_OP(adaptiveAvgPool2d, at::adaptive_avg_pool2d(a.t(0), a.ints(1)))

SEER_OP(softmax, at::softmax(a.t(0), a.i64(1)))
SEER_OP(logSoftmax, at::log_softmax(a.t(0), a.i64(1)))
SEER_OP(dropout, at::dropout(a.t(0), a.d(1), a.b(2)))

// Reductions: 0 none, 1 mean, 2 sum (at::Reduction).
// crossEntropy(logits, target, weight|null, reduction, ignoreIndex, labelSmoothing); target holds class indices
// (int64) or class probabilities (same dtype as logits).
SEER_OP(crossEntropy, at::cross_entropy_loss(a.t(0), a.t(1), a.optT(2), a.i64(3), a.i64(4), a.d(5)))
SEER_OP(nllLoss, at::nll_loss(a.t(0), a.t(1), a.optT(2), a.i64(3), a.i64(4)))
SEER_OP(mseLoss, at::mse_loss(a.t(0), a.t(1), a.i64(2)))

// interpolate(x, size[2], mode, alignCorners, antialias): mode 0 nearest, 1 bilinear, 2 bicubic.
SEER_FN(interpolate) {
  const at::Tensor& x = a.t(0);
  auto size = a.ints(1);
  int64_t mode = a.i64(2);
  bool align = a.b(3);
  bool antialias = a.b(4);
  at::Tensor y;
  if (mode == 0) {
    y = at::upsample_nearest2d(x, size, c10::nullopt, c10::nullopt);
  } else if (mode == 1) {
    y = antialias ? at::_upsample_bilinear2d_aa(x, size, align, c10::nullopt, c10::nullopt)
                  : at::upsample_bilinear2d(x, size, align, c10::nullopt, c10::nullopt);
  } else if (mode == 2) {
    y = antialias ? at::_upsample_bicubic2d_aa(x, size, align, c10::nullopt, c10::nullopt)
                  : at::upsample_bicubic2d(x, size, align, c10::nullopt, c10::nullopt);
  } else {
    throw std::invalid_argument("interpolate: unknown mode " + std::to_string(mode));
  }
  return seer::wrap(a.env, y);
}

// affineGrid(theta (N,2,3), size [N,C,H,W], alignCorners) -> (N,H,W,2)
SEER_OP(affineGrid, at::affine_grid_generator(a.t(0), a.ints(1), a.b(2)))
// gridSample(x, grid, mode 0 bilinear|1 nearest|2 bicubic, padding 0 zeros|1 border|2 reflection, alignCorners)
SEER_OP(gridSample, at::grid_sampler(a.t(0), a.t(1), a.i64(2), a.i64(3), a.b(4)))
