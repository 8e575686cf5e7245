# Oracle for tests/ssl_trajectory.test.ts: several SwAV training iterations of the tiny model, as main_swav.py's
# train() loop runs them: per iteration, the learning rate from a precomputed array; prototypes normalized; forward,
# loss with the queue (it joins Sinkhorn once full, then takes the batch's embeddings); backward; prototype
# gradients dropped while iteration < freeze_prototypes_niters; apex LARC (clip False) around SGD with momentum and
# weight decay. After the last step the prototypes are normalized once more (what the next forward would see).
# args: file, dims, bn, prototypes, nmbCrops, batchSize, temperature, epsilon, iterations, cropsForAssign, steps,
#       lrs, momentum, weightDecay, trust, eps, freeze, queueLength (0: none);
# inputs: s{k}_crops{r} for step k and resolution group r (crop-major).
import torch
from exchange import load, save
from larc_ref import apex_larc_step
from safetensors_spec import read_safetensors
from ssl_models import SwAVModel, normalize_prototypes, swav_loss

inputs, args = load()
state, _ = read_safetensors(args["file"])
model = SwAVModel(args["dims"], args["bn"], args["prototypes"]).to(state["head.0.weight"].dtype)
model.load_state_dict(state, strict=True)
model.train()
params = list(model.parameters())
opt = torch.optim.SGD(params, lr=args["lrs"][0], momentum=args["momentum"], weight_decay=args["weightDecay"])
larc = {"tc": args["trust"], "eps": args["eps"], "clip": False, "decay": [True] * len(params), "adapt": [True] * len(params)}
bs = args["batchSize"]
D = args["dims"][-1]
L = args["queueLength"]
queue = torch.zeros(len(args["cropsForAssign"]), L, D, dtype=state["head.0.weight"].dtype) if L > 0 else None

out = {}
for k in range(args["steps"]):
    for g in opt.param_groups:
        g["lr"] = args["lrs"][k]
    normalize_prototypes(model)
    crops = [inputs[f"s{k}_crops{r}"] for r in range(len(args["nmbCrops"]))]
    loss, _ = swav_loss(model, crops, queue, bs, args["cropsForAssign"], sum(args["nmbCrops"]),
                        args["temperature"], args["epsilon"], args["iterations"])
    opt.zero_grad()
    loss.backward()
    if k < args["freeze"]:
        for name, p in model.named_parameters():
            if "prototypes" in name:
                p.grad = None
    apex_larc_step(opt, params, larc)
    out[f"loss{k}"] = loss.detach()
normalize_prototypes(model)
out.update({"param." + n: p for n, p in model.named_parameters()})
out.update({"buffer." + n: b for n, b in model.named_buffers()})
if queue is not None:
    out["queue"] = queue
save(out)
