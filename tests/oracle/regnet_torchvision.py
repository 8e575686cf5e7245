# Oracle for tests/regnet_design.test.ts: RegNet/ResNet structure and parameter counts from torchvision 0.14, and
# stage layouts from torchvision's and ClassyVision's generators.
#
# Reads JSON on stdin:  {"models": [torchvision model names], "params": [{depth, w0, wa, wm, groupWidth, bottleneckRatio}]}
# Writes JSON on stdout: {"models": {name: {...}}, "torchvisionNames": [...], "params": [{"torchvision": ..., "classy": ...}]}
#
# Models are built with every torch.empty redirected to the 'meta' device (torch 1.13 has no default-device
# context), so regnet_y_128gf costs no memory and initialisation is skipped; parameter shapes are unaffected.
import json
import sys

import numpy as np
import torch

_empty = torch.empty


def _meta_empty(*args, **kwargs):
    kwargs["device"] = "meta"
    return _empty(*args, **kwargs)


torch.empty = _meta_empty

import torchvision  # noqa: E402  (after the patch, so every module it builds lands on meta)
from torchvision.models.regnet import BlockParams  # noqa: E402


def regnet_structure(m):
    blocks = []
    for si, stage in enumerate(m.trunk_output.children()):
        for bi, blk in enumerate(stage.children()):
            f = blk.f
            blocks.append({
                "stage": si + 1, "index": bi + 1,
                "wIn": f.a[0].in_channels, "wOut": f.c[0].out_channels, "stride": f.b[0].stride[0],
                "bottleneckWidth": f.b[0].out_channels, "groups": f.b[0].groups,
                "seWidth": f.se.fc1.out_channels if hasattr(f, "se") else 0,
                "projection": blk.proj is not None,
            })
    return {"stemWidth": m.stem[0].out_channels, "blocks": blocks, "fcIn": m.fc.in_features}


def resnet_structure(m):
    blocks = []
    for si in range(4):
        for bi, blk in enumerate(getattr(m, f"layer{si + 1}").children()):
            bottleneck = hasattr(blk, "conv3")
            last = blk.conv3 if bottleneck else blk.conv2
            blocks.append({
                "stage": si + 1, "index": bi + 1,
                "wIn": blk.conv1.in_channels, "wOut": last.out_channels,
                "bottleneckWidth": blk.conv2.out_channels,
                "stride": (blk.conv2 if bottleneck else blk.conv1).stride[0],
                "projection": blk.downsample is not None,
            })
    return {"stemWidth": m.conv1.out_channels, "blocks": blocks, "fcIn": m.fc.in_features}


# ClassyVision `classy_vision/models/regnet.py` (RegNetParams.get_expanded_params + _adjust_widths_groups_compatibilty),
# the generator VISSL/SEER use: numpy float64 and Python/numpy round-half-to-even throughout.
def classy_generate(depth, w_0, w_a, w_m, group_width, bottleneck_multiplier=1.0):
    QUANT = 8
    widths_cont = np.arange(depth) * w_a + w_0
    block_capacity = np.round(np.log(widths_cont / w_0) / np.log(w_m))
    block_widths = np.round(np.divide(w_0 * np.power(w_m, block_capacity), QUANT)) * QUANT
    block_widths = block_widths.astype(int).tolist()
    split_helper = zip(block_widths + [0], [0] + block_widths, block_widths + [0], [0] + block_widths)
    splits = [w != wp or r != rp for w, wp, r, rp in split_helper]
    stage_widths = [w for w, t in zip(block_widths, splits[:-1]) if t]
    stage_depths = np.diff([d for d, t in enumerate(splits) if t]).tolist()
    widths = [int(w * bottleneck_multiplier) for w in stage_widths]
    group_widths = [min(group_width, w_bot) for w_bot in widths]
    ws_bot = [int(round(w_bot / g) * g) for w_bot, g in zip(widths, group_widths)]
    stage_widths = [int(w_bot / bottleneck_multiplier) for w_bot in ws_bot]
    return {"depths": stage_depths, "widths": stage_widths, "groupWidths": group_widths}


def main():
    req = json.load(sys.stdin)
    out = {"models": {}, "params": []}
    out["torchvisionNames"] = [
        n for n in torchvision.models.list_models(module=torchvision.models)
        if n.startswith("regnet_") or n in ("resnet18", "resnet50")
    ]
    for name in req.get("models", []):
        m = getattr(torchvision.models, name)()
        info = regnet_structure(m) if name.startswith("regnet") else resnet_structure(m)
        info["params"] = sum(p.numel() for p in m.parameters())
        out["models"][name] = info
    for p in req.get("params", []):
        b = p.get("bottleneckRatio", 1.0)
        tv = BlockParams.from_init_params(depth=p["depth"], w_0=p["w0"], w_a=p["wa"], w_m=p["wm"],
                                          group_width=p["groupWidth"], bottleneck_multiplier=b)
        out["params"].append({
            "torchvision": {"depths": tv.depths, "widths": tv.widths, "groupWidths": tv.group_widths},
            "classy": classy_generate(p["depth"], p["w0"], p["wa"], p["wm"], p["groupWidth"], b),
        })
    json.dump(out, sys.stdout)


main()
