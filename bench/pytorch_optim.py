# PyTorch eager side of `seer bench optim`: the optimizer step alone on the parameter shapes seerkit sends as JSON
# on stdin ({"shapes": [[...], ...], "device": "cpu", "threads": 2, "steps": 5}). Prints one JSON line of ms/step:
#   sgd_loop     torch.optim.SGD(momentum 0.9, weight_decay 1e-6, foreach=False)
#   sgd_foreach  the same with foreach=True (multi-tensor ops; PyTorch's default on CUDA)
#   larc         apex LARC's formulas (trust 0.001, no clip, eps 1e-8) per tensor without host syncs, then the
#                foreach SGD with weight decay 0, as apex's LARC.step() runs its wrapped optimizer
# usage: echo '{...}' | /usr/bin/python3 bench/pytorch_optim.py
import json, sys, time
import torch

cfg = json.load(sys.stdin)
torch.set_num_threads(cfg["threads"])
torch.manual_seed(0)
dev = torch.device(cfg["device"])
params = [torch.randn(s, device=dev, requires_grad=True) for s in cfg["shapes"]]
grads = [torch.randn(s, device=dev) * 1e-3 for s in cfg["shapes"]]


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(step):
    step()  # creates the momentum buffers
    step()
    sync()
    t = time.perf_counter()
    for _ in range(cfg["steps"]):
        step()
    sync()
    return (time.perf_counter() - t) / cfg["steps"] * 1e3


def sgd(foreach, wd=1e-6):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=wd, foreach=foreach)


def sgd_step(foreach):
    opt = sgd(foreach)
    for p, g in zip(params, grads):
        p.grad = g

    return timed(opt.step)


def larc_step(tc=1e-3, wd=1e-6, eps=1e-8):
    opt = sgd(True, wd=0.0)

    @torch.no_grad()
    def step():
        for p, g in zip(params, grads):
            p_norm, g_norm = p.norm(), g.norm()
            adaptive = tc * p_norm / (g_norm + wd * p_norm + eps)
            use = (p_norm != 0) & (g_norm != 0)
            p.grad = (g + torch.where(use, wd, 0.0) * p) * torch.where(use, adaptive, torch.ones_like(adaptive))
        opt.step()

    return timed(step)


rows = {"sgd_loop": sgd_step(False), "sgd_foreach": sgd_step(True), "larc": larc_step()}
print(json.dumps({"engine": f"pytorch-eager {torch.__version__}", "rows": rows}))
