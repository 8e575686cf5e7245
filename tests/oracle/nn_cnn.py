# Oracle for tests/nn.test.ts: the test CNN built with torch.nn. args.mode:
#   "init":  build it after torch.manual_seed(args.seed), apply args.scheme ("default", "pycls" or
#            "torchvision") and hand back the state dict, to check that seerkit draws the same weights;
#   "train": load seerkit's state dict from the safetensors file args.file (read with our own spec parser),
#            run one train-mode forward/backward of sum(model(x) * r), then an eval-mode forward of x2; hand back
#            the outputs, every parameter's gradient and every buffer after the step.
import math
import torch
import torch.nn as nn
from exchange import load, save
from safetensors_spec import read_safetensors


def build():
    # Keep in step with buildCnn() in tests/nn.test.ts.
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 6, 3, stride=2, padding=2, dilation=2, groups=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 7), nn.BatchNorm1d(7), nn.Linear(7, 5))


def pycls_init_weights(m):
    # pycls/models/blocks.py init_weights (ZERO_INIT_FINAL_GAMMA off), applied with model.apply.
    if isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        m.weight.data.normal_(mean=0.0, std=math.sqrt(2.0 / fan_out))
    elif isinstance(m, nn.BatchNorm2d):
        m.weight.data.fill_(1.0)
        m.bias.data.zero_()
    elif isinstance(m, nn.Linear):
        m.weight.data.normal_(mean=0.0, std=0.01)
        m.bias.data.zero_()


def torchvision_resnet_init(model):
    # torchvision/models/resnet.py ResNet.__init__
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


inputs, args = load()
if args["mode"] == "init":
    torch.manual_seed(args["seed"])
    model = build()
    if args["scheme"] == "pycls":
        model.apply(pycls_init_weights)
    elif args["scheme"] == "torchvision":
        torchvision_resnet_init(model)
    save(dict(model.state_dict()))
else:
    state, _ = read_safetensors(args["file"])
    dtype = state["0.weight"].dtype
    model = build().to(dtype)
    model.load_state_dict(state, strict=True)
    model.train()
    y = model(inputs["x"])
    (y * inputs["r"]).sum().backward()
    out = {"y_train": y}
    out.update({"grad." + n: p.grad for n, p in model.named_parameters()})
    out.update({"buffer." + n: b for n, b in model.named_buffers()})
    model.eval()
    with torch.no_grad():
        out["y_eval"] = model(inputs["x2"])
    save(out)
