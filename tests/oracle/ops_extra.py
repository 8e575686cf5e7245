# Oracle for tests/ops.test.ts (everything past the forward-op table): batch norm with running statistics,
# indices of max/min/topk/sort, cumsum, var/std, every interpolate mode, affine_grid + grid_sample with every
# padding mode, cross-entropy reductions and ignore_index, and dtype conversions. Mirrors the JS side step by step.
import torch
import torch.nn.functional as F
from exchange import load, save

torch.set_num_threads(1)
inputs, args = load()
out = {}

for p, dtype in (("f64", torch.float64), ("f32", torch.float32)):
    x = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()}

    # ---- batch norm: two training steps update the running statistics, then eval uses them ----
    rm = torch.zeros(3, dtype=dtype)
    rv = torch.ones(3, dtype=dtype)
    out[f"{p}_bn_y1"] = F.batch_norm(x["bn_x1"], rm, rv, x["bn_w"], x["bn_b"], training=True, momentum=0.1, eps=1e-5)
    out[f"{p}_bn_rm1"] = rm.clone()
    out[f"{p}_bn_rv1"] = rv.clone()
    out[f"{p}_bn_y2"] = F.batch_norm(x["bn_x2"], rm, rv, x["bn_w"], x["bn_b"], training=True, momentum=0.3, eps=1e-3)
    out[f"{p}_bn_rm2"] = rm.clone()
    out[f"{p}_bn_rv2"] = rv.clone()
    out[f"{p}_bn_eval"] = F.batch_norm(x["bn_x3"], rm, rv, x["bn_w"], x["bn_b"], training=False, eps=1e-5)
    out[f"{p}_bn_eval_noaffine"] = F.batch_norm(x["bn_x3"], rm, rv, None, None, training=False, eps=1e-5)
    out[f"{p}_bn_train_x3"] = F.batch_norm(x["bn_x3"], None, None, x["bn_w"], x["bn_b"], training=True)

    # ---- selection: values and indices ----
    s = x["sel"]
    v, i = s.max(1); out[f"{p}_max1_v"] = v; out[f"{p}_max1_i"] = i
    v, i = s.min(0); out[f"{p}_min0_v"] = v; out[f"{p}_min0_i"] = i
    v, i = s.max(0, keepdim=True); out[f"{p}_max0k_v"] = v; out[f"{p}_max0k_i"] = i
    v, i = s.topk(3, 1); out[f"{p}_topk3_v"] = v; out[f"{p}_topk3_i"] = i
    v, i = s.topk(2, 0, largest=False); out[f"{p}_topk2s_v"] = v; out[f"{p}_topk2s_i"] = i
    v, i = s.sort(1); out[f"{p}_sort1_v"] = v; out[f"{p}_sort1_i"] = i
    v, i = s.sort(0, descending=True); out[f"{p}_sort0d_v"] = v; out[f"{p}_sort0d_i"] = i
    out[f"{p}_argmax1"] = s.argmax(1)
    out[f"{p}_argmin0"] = s.argmin(0)
    out[f"{p}_argmax0k"] = s.argmax(0, keepdim=True)
    out[f"{p}_max_all"] = s.max()
    out[f"{p}_min_all"] = s.min()
    out[f"{p}_amax1"] = s.amax(1)
    out[f"{p}_amin01"] = s.amin([0, 1])

    # ---- cumsum, var, std ----
    out[f"{p}_cumsum0"] = s.cumsum(0)
    out[f"{p}_cumsum1"] = s.cumsum(1)
    out[f"{p}_var1"] = s.var(1)
    out[f"{p}_std0"] = s.std(0)
    out[f"{p}_var_all"] = s.var()
    out[f"{p}_std_all"] = s.std()
    out[f"{p}_var1_biased"] = s.var(1, unbiased=False)
    out[f"{p}_std0_keep"] = s.std(0, keepdim=True)

    # ---- interpolate ----
    img = x["img"]
    out[f"{p}_near_up"] = F.interpolate(img, size=(8, 9), mode="nearest")
    out[f"{p}_near_down"] = F.interpolate(img, size=(3, 4), mode="nearest")
    for mode in ("bilinear", "bicubic"):
        for ac in (False, True):
            out[f"{p}_{mode}_up_ac{int(ac)}"] = F.interpolate(img, size=(8, 9), mode=mode, align_corners=ac)
            out[f"{p}_{mode}_down_ac{int(ac)}"] = F.interpolate(img, size=(3, 4), mode=mode, align_corners=ac)
            out[f"{p}_{mode}_aa_ac{int(ac)}"] = F.interpolate(img, size=(3, 4), mode=mode, align_corners=ac, antialias=True)

    # ---- affine_grid + grid_sample ----
    for ac in (False, True):
        grid = F.affine_grid(x["theta"], [2, 2, 4, 5], align_corners=ac)
        out[f"{p}_agrid_ac{int(ac)}"] = grid
        for pad in ("zeros", "border", "reflection"):
            for mode in ("bilinear", "nearest"):
                out[f"{p}_gs_{mode}_{pad}_ac{int(ac)}"] = F.grid_sample(img, grid, mode=mode, padding_mode=pad, align_corners=ac)

    # ---- cross entropy ----
    lg, t, t_ign, w, pr = x["logits"], x["target"], x["target_ign"], x["cw"], x["probs"]
    for red in ("none", "mean", "sum"):
        out[f"{p}_ce_{red}"] = F.cross_entropy(lg, t, reduction=red)
        out[f"{p}_ce_w_{red}"] = F.cross_entropy(lg, t, weight=w, reduction=red)
        out[f"{p}_ce_ign_{red}"] = F.cross_entropy(lg, t_ign, reduction=red)
        out[f"{p}_ce_probs_{red}"] = F.cross_entropy(lg, pr, reduction=red)
    out[f"{p}_ce_ignore1"] = F.cross_entropy(lg, t, ignore_index=1)
    out[f"{p}_ce_w_ign_smooth"] = F.cross_entropy(lg, t_ign, weight=w, label_smoothing=0.2)
    out[f"{p}_ce_smooth_sum"] = F.cross_entropy(lg, t, label_smoothing=0.3, reduction="sum")
    out[f"{p}_ce_probs_w_smooth"] = F.cross_entropy(lg, pr, weight=w, label_smoothing=0.1)
    out[f"{p}_nll_ign_w"] = F.nll_loss(F.log_softmax(lg, 1), t_ign, weight=w)

# ---- dtype conversions (exact) ----
cv = inputs["conv_values"]  # float64
out["bf16_from_f64"] = cv.to(torch.bfloat16)
out["f16_from_f64"] = cv.to(torch.float16)
out["bf16_from_f32"] = cv.float().to(torch.bfloat16)
out["f16_from_f32"] = cv.float().to(torch.float16)
out["i64_from_f64"] = cv.clamp(-1e9, 1e9).to(torch.int64)
out["bool_from_f64"] = cv.to(torch.bool)
save(out)
