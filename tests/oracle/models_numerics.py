# Oracle for tests/models.test.ts: torchvision 0.14 RegNets/ResNets as the reference for our modules. args:
#   "seed":    torch.manual_seed before building each model;
#   "eval":    models to export: BN affine parameters and running statistics are randomized (so that eval mode
#              exercises them), the state dict is written to <dir>/<name>.safetensors with our own spec writer, and
#              the eval-mode outputs on input x are saved as "feat.<name>" (pooled features) and "y.<name>" (logits);
#   "grad":    models to run one train-mode step on: forward x, backward of sum(y * r); saves "ytrain.<name>",
#              "grad.<name>.<param>" for every parameter and "buf.<name>.<buffer>" (running stats after the step);
#              the weights are those written for "eval" (the model must be in both lists);
#   "init":    models whose freshly built state dict (after torch.manual_seed(seed)) is saved as "init.<name>.<key>",
#              to check that seerkit draws the same initial weights.
import json
import os
import struct

import torch
import torchvision
from exchange import load, save
from safetensors_spec import CODES

inputs, args = load()
x, r = inputs["x"], inputs["r"]
out = {}


def randomize_bn(model):
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)


def write_safetensors(path, tensors):
    """The layout of safetensors_spec.write_safetensors (sorted keys, space-padded JSON header), streamed one
    tensor at a time instead of joined in memory: these files hold up to 100 MB."""
    names = sorted(tensors)
    header, at = {}, 0
    for name in names:
        t = tensors[name]
        n = t.numel() * t.element_size()
        header[name] = {"dtype": CODES[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + n]}
        at += n
    hb = json.dumps(header).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        for name in names:
            f.write(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy().data)


def features(model, x):
    if hasattr(model, "trunk_output"):  # RegNet
        h = model.trunk_output(model.stem(x))
    else:  # ResNet
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        h = model.layer4(model.layer3(model.layer2(model.layer1(h))))
    return torch.flatten(model.avgpool(h), 1)


for name in args.get("init", []):
    torch.manual_seed(args["seed"])
    model = getattr(torchvision.models, name)()
    for k, v in model.state_dict().items():
        out[f"init.{name}.{k}"] = v

for name in args.get("eval", []):
    torch.manual_seed(args["seed"])
    model = getattr(torchvision.models, name)()
    randomize_bn(model)
    write_safetensors(os.path.join(args["dir"], f"{name}.safetensors"), dict(model.state_dict()))
    model.eval()
    with torch.no_grad():
        out[f"feat.{name}"] = features(model, x)
        out[f"y.{name}"] = model(x)
    if name in args.get("grad", []):
        model.train()
        y = model(x)
        (y * r).sum().backward()
        out[f"ytrain.{name}"] = y
        out.update({f"grad.{name}.{k}": p.grad for k, p in model.named_parameters()})
        out.update({f"buf.{name}.{k}": b for k, b in model.named_buffers()})

save(out)
