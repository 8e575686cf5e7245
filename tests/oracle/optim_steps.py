# Oracle for tests/optim.test.ts: a few optimizer steps on a fixed float64 problem, in PyTorch.
#
# Inputs: p<i> (initial parameters), A<i>, b<i>, c<i> (loss coefficients for the parameters in the loss).
# Loss: sum over i in the loss of 0.5 * sum((A_i * p_i - b_i)^2) + sum(c_i * sin(p_i)).
# args: {"names": [...], "inLoss": [bool...], "runs": [{"kind", "lrs", "groups": [{"indices", "lrScale", "hyper"}],
#        "larc": {...}}]}. Outputs: r<k>_p<i>, the parameters after the run's steps.
#
# sgd / adamw: torch.optim.SGD / torch.optim.AdamW themselves (single-tensor path, foreach=False).
# larc: torch.optim.SGD wrapped by hand in NVIDIA apex's LARC.step (apex/parallel/LARC.py), with optional per-param
#       exclusion from adaptation and weight decay.
# simclr: google-research/simclr lars_optimizer.py (classic momentum) written out by hand.
import torch
from exchange import load, save
from larc_ref import apex_larc_step

inputs, args = load()
names = args["names"]
n = len(names)
torch.set_default_dtype(torch.float64)


def make_params():
    return [inputs[f"p{i}"].clone().requires_grad_(True) for i in range(n)]


def loss_of(params):
    total = 0
    for i in range(n):
        if not args["inLoss"][i]:
            continue
        p = params[i]
        total = total + 0.5 * ((inputs[f"A{i}"] * p - inputs[f"b{i}"]) ** 2).sum() + (inputs[f"c{i}"] * torch.sin(p)).sum()
    return total


def torch_groups(params, run):
    groups = []
    for g in run["groups"]:
        h = dict(g["hyper"])
        groups.append({"params": [params[j] for j in g["indices"]], **h})
    return groups


def set_lr(opt_groups, run, lr):
    for g, spec in zip(opt_groups, run["groups"]):
        g["lr"] = lr * spec["lrScale"]


def simclr_step(groups, params, larc, buffers):
    index = {id(p): i for i, p in enumerate(params)}
    with torch.no_grad():
        for group in groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                i = index[id(p)]
                grad = p.grad
                if larc["decay"][i]:
                    grad = grad + group["weight_decay"] * p
                trust = 1.0
                if larc["adapt"][i]:
                    w_norm = torch.norm(p)
                    g_norm = torch.norm(grad)
                    trust = torch.where(w_norm > 0, torch.where(g_norm > 0, larc["tc"] * w_norm / g_norm, torch.ones_like(w_norm)), torch.ones_like(w_norm))
                scaled_lr = group["lr"] * trust
                v = buffers.get(i, torch.zeros_like(p))
                next_v = group["momentum"] * v + scaled_lr * grad
                update = group["momentum"] * next_v + scaled_lr * grad if group["nesterov"] else next_v
                buffers[i] = next_v
                p -= update


out = {}
for k, run in enumerate(args["runs"]):
    params = make_params()
    kind = run["kind"]
    lrs = run["lrs"]
    if kind in ("sgd", "larc"):
        opt = torch.optim.SGD(torch_groups(params, run), lr=lrs[0], foreach=False)
        groups = opt.param_groups
    elif kind == "adamw":
        opt = torch.optim.AdamW(torch_groups(params, run), lr=lrs[0], foreach=False)
        groups = opt.param_groups
    elif kind == "simclr":
        opt = None
        groups = torch_groups(params, run)
        buffers = {}
    else:
        raise ValueError(kind)
    for lr in lrs:
        set_lr(groups, run, lr)
        loss_of(params).backward()
        if kind == "larc":
            apex_larc_step(opt, params, run["larc"])
        elif kind == "simclr":
            simclr_step(groups, params, run["larc"], buffers)
        else:
            opt.step()
        for p in params:
            p.grad = None
    for i, p in enumerate(params):
        out[f"r{k}_p{i}"] = p
save(out)
