# Oracle for tests/ops.test.ts ("forward ops"): the ops models and losses compose, on the inputs seerkit sent,
# in float64 and in float32 (the float64 inputs rounded with .float(), as seerkit's .float() does).
# Each entry mirrors one entry of FORWARD in tests/ops.test.ts, under the same name; outputs are "<f64|f32>_<name>".
import torch
import torch.nn.functional as F
from exchange import load, save

torch.set_num_threads(1)

FORWARD = {
    # elementwise, with broadcasting
    "add": lambda x: x["a"] + x["b"],
    "add_alpha": lambda x: torch.add(x["a"], x["b"], alpha=0.5),
    "add_scalar": lambda x: x["a"] + 2.5,
    "sub": lambda x: x["c"] - x["e"],
    "rsub": lambda x: 1.5 - x["a"],
    "mul": lambda x: x["a"] * x["c"],
    "mul_scalar": lambda x: x["a"] * -3,
    "div": lambda x: x["a"] / x["nzb"],
    "div_scalar": lambda x: x["a"] / 0.7,
    "pow_int": lambda x: x["a"] ** 3,
    "pow_frac": lambda x: x["pos"] ** 2.5,
    "pow_tensor": lambda x: x["pos"] ** x["b"],
    "exp": lambda x: x["a"].exp(),
    "log": lambda x: x["pos"].log(),
    "sqrt": lambda x: x["pos"].sqrt(),
    "sigmoid": lambda x: x["a"].sigmoid(),
    "tanh": lambda x: x["a"].tanh(),
    "relu": lambda x: x["a"].relu(),
    # softmax family and reductions
    "softmax1": lambda x: F.softmax(x["a"], 1),
    "softmax0": lambda x: F.softmax(x["a"], 0),
    "log_softmax": lambda x: F.log_softmax(x["a"], -1),
    "logsumexp": lambda x: x["a"].logsumexp(1),
    "logsumexp_keep": lambda x: x["a"].logsumexp([0, 2], keepdim=True),
    "sum_all": lambda x: x["a"].sum(),
    "sum_dims_keep": lambda x: x["a"].sum([0, 2], keepdim=True),
    "mean_all": lambda x: x["a"].mean(),
    "mean_dim": lambda x: x["a"].mean(-1),
    "norm_all": lambda x: x["a"].norm(),
    "norm_dim_keep": lambda x: x["a"].norm(2, 1, keepdim=True),
    "norm_p1": lambda x: x["a"].norm(1, 0),
    "norm_p3": lambda x: x["a"].norm(3, [0, 1]),
    "normalize": lambda x: F.normalize(x["m1"]),
    "normalize_p1_dim0": lambda x: F.normalize(x["m1"], p=1, dim=0),
    # linear algebra
    "matmul": lambda x: x["m1"] @ x["m2"],
    "matmul_batched": lambda x: x["m3"] @ x["m2"],
    "matmul_vec": lambda x: x["v"] @ x["m2"],
    "mm": lambda x: x["m1"].mm(x["m2"]),
    "linear": lambda x: F.linear(x["m1"], x["wl"], x["bl"]),
    "linear_nobias_3d": lambda x: F.linear(x["m3"], x["wl"]),
    # convolution
    "conv_groups": lambda x: F.conv2d(x["xc"], x["wc"], x["bc"], stride=2, padding=1, dilation=2, groups=2),
    "conv_depthwise": lambda x: F.conv2d(x["xc"], x["wdw"], None, stride=(2, 1), padding=(1, 0), groups=4),
    "conv_plain": lambda x: F.conv2d(x["xc"], x["wp"], x["bp"], padding=1),
    # normalization
    "bn_train": lambda x: F.batch_norm(x["xb"], None, None, x["gb"], x["bb"], training=True),
    # pooling
    "avgpool": lambda x: F.avg_pool2d(x["img"], 2),
    "avgpool_pad": lambda x: F.avg_pool2d(x["img"], 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    "maxpool": lambda x: F.max_pool2d(x["img"], 2),
    "maxpool_pad": lambda x: F.max_pool2d(x["img"], 3, stride=2, padding=1),
    "maxpool_dil_ceil": lambda x: F.max_pool2d(x["img"], 2, stride=2, dilation=2, ceil_mode=True),
    "adaptive_1": lambda x: F.adaptive_avg_pool2d(x["img"], 1),
    "adaptive_4x5": lambda x: F.adaptive_avg_pool2d(x["img"], (4, 5)),
    # losses
    "ce": lambda x: F.cross_entropy(x["logits"], x["target"]),
    "ce_smooth": lambda x: F.cross_entropy(x["logits"], x["target"], label_smoothing=0.1),
    "ce_probs": lambda x: F.cross_entropy(x["logits"], x["probs"]),
    # resampling
    "interp_bilinear": lambda x: F.interpolate(x["img"], size=(9, 7), mode="bilinear", align_corners=False),
    "interp_bilinear_ac": lambda x: F.interpolate(x["img"], size=(4, 5), mode="bilinear", align_corners=True),
    "grid_bilinear": lambda x: F.grid_sample(x["img"], x["grid"], mode="bilinear", padding_mode="zeros", align_corners=False),
    # joining, views and indexing
    "cat": lambda x: torch.cat([x["a"], x["a"] * 2], 1),
    "stack": lambda x: torch.stack([x["a"], -x["a"]], 2),
    "slice": lambda x: x["a"][:, :, 1:4:2],
    "select": lambda x: x["a"].select(1, -1),
    "index_select": lambda x: x["a"].index_select(1, x["idx"]),
    "transpose": lambda x: x["a"].transpose(0, 2),
    "reshape": lambda x: x["a"].reshape(4, 6),
    "expand": lambda x: x["c"].expand(2, 3, 4),
    # beyond the core list: more ops the models use
    "gelu": lambda x: F.gelu(x["a"]),
    "silu": lambda x: F.silu(x["a"]),
    "clamp": lambda x: x["a"].clamp(-0.5, 0.7),
    "maximum": lambda x: torch.maximum(x["a"], x["c"]),
    "where": lambda x: torch.where(x["a"] > 0, x["a"], x["c"] * 2),
    "gather": lambda x: x["a"].gather(2, x["gidx"]),
    "masked_fill": lambda x: x["a"].masked_fill(x["a"] < 0, -1.0),
    "permute": lambda x: x["a"].permute(2, 0, 1),
    "flip": lambda x: x["a"].flip([0, 2]),
    "roll": lambda x: x["a"].roll([1, -2], [1, 2]),
    "pad": lambda x: F.pad(x["a"], [1, 2, 0, 1], value=0.5),
    "addmm": lambda x: torch.addmm(x["b"].narrow(0, 0, 3), x["m1"], x["m2"], beta=0.5, alpha=2),
    "bmm": lambda x: x["m3"].bmm(x["m3"].transpose(1, 2)),
    "einsum": lambda x: torch.einsum("bij,jk->bik", x["m3"], x["m2"]),
    "mse_loss": lambda x: F.mse_loss(x["a"], x["pos"]),
    "nll_loss": lambda x: F.nll_loss(F.log_softmax(x["logits"], 1), x["target"]),
}

inputs, args = load()
out = {}
for prefix, dtype in (("f64", torch.float64), ("f32", torch.float32)):
    x = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()}
    for name, fn in FORWARD.items():
        out[f"{prefix}_{name}"] = fn(x)
save(out)
