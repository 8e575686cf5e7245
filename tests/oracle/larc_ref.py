# NVIDIA apex's LARC.step (apex/parallel/LARC.py) written out around a torch.optim.SGD, shared by the oracles
# (optim_steps.py, ssl_swav_trajectory.py).
import torch


def apex_larc_step(opt, params, larc):
    """apex LARC.step, with exclusions: wd 0 for excluded-from-decay, plain (g + wd p) for excluded-from-adaptation."""
    index = {id(p): i for i, p in enumerate(params)}
    with torch.no_grad():
        weight_decays = []
        for group in opt.param_groups:
            weight_decay = group["weight_decay"]
            weight_decays.append(weight_decay)
            group["weight_decay"] = 0
            for p in group["params"]:
                if p.grad is None:
                    continue
                i = index[id(p)]
                wd = weight_decay if larc["decay"][i] else 0.0
                if not larc["adapt"][i]:
                    p.grad.data += wd * p.data
                    continue
                param_norm = torch.norm(p.data)
                grad_norm = torch.norm(p.grad.data)
                if param_norm != 0 and grad_norm != 0:
                    adaptive_lr = larc["tc"] * param_norm / (grad_norm + param_norm * wd + larc["eps"])
                    if larc["clip"]:
                        adaptive_lr = min(adaptive_lr / group["lr"], 1)
                    p.grad.data += wd * p.data
                    p.grad.data *= adaptive_lr
    opt.step()
    for i, group in enumerate(opt.param_groups):
        group["weight_decay"] = weight_decays[i]
