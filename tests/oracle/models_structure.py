# Oracle for tests/models.test.ts: the state-dict keys and shapes of torchvision 0.14's RegNets and ResNets.
#
# Reads JSON on stdin:  {"models": [torchvision model names] or null for all RegNets + resnet18/50}
# Writes JSON on stdout: {"names": [...], "models": {name: [[key, shape], ...]}}   (state_dict order)
#
# Every torch.empty is redirected to the 'meta' device (as in regnet_torchvision.py): the large models
# (regnet_y_128gf: 645M parameters) cost no memory and no init time; shapes and key order are unaffected.
import json
import sys

import torch

_empty = torch.empty


def _meta_empty(*args, **kwargs):
    kwargs["device"] = "meta"
    return _empty(*args, **kwargs)


torch.empty = _meta_empty

import torchvision  # noqa: E402  (after the patch, so every module it builds lands on meta)


def main():
    req = json.load(sys.stdin)
    names = req.get("models") or [
        n for n in torchvision.models.list_models(module=torchvision.models)
        if n.startswith("regnet_") or n in ("resnet18", "resnet50")
    ]
    out = {"names": names, "models": {}}
    for name in names:
        m = getattr(torchvision.models, name)()
        out["models"][name] = [[k, list(v.shape)] for k, v in m.state_dict().items()]
    json.dump(out, sys.stdout)


main()
