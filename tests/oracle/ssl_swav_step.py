# Oracle for tests/ssl_methods.test.ts: one SwAV (or SimCLR) forward/backward of a tiny conv backbone with
# torch.nn, from the weights seerkit saved (safetensors, read with our own spec parser).
# SwAV: the forward of facebookresearch/swav src/resnet50.py (one trunk pass per resolution group, features
# concatenated, head, F.normalize, prototypes) and the loss and queue code of main_swav.py train(), after the
# prototype normalization main_swav.py does before each forward. Several prototype sets (MultiPrototypes) are
# averaged over, as VISSL's swav_loss. SimCLR: trunk, head, then simclr objective.py's loss halved (ours averages
# the two directions).
# args: mode "swav" | "simclr", file, nmbCrops, batchSize, temperature, epsilon, iterations, cropsForAssign;
# inputs: crops0, crops1, ... (crop-major per resolution), queue (numQueues, L, D) optional; simclr: views.
import torch.nn as nn
from exchange import load, save
from safetensors_spec import read_safetensors
from ssl_losses import simclr_contrastive_loss
from ssl_models import SwAVModel, Tiny, build_head, normalize_prototypes, swav_loss


inputs, args = load()
state, _ = read_safetensors(args["file"])
if args["mode"] == "simclr":
    head = build_head(args["dims"], True)
    model = nn.Module()
    model.backbone = Tiny()
    model.head = head
    model = model.to(state["head.0.weight"].dtype)
    model.load_state_dict(state, strict=True)
    model.train()
    z = model.head(model.backbone(inputs["views"]))
    loss = simclr_contrastive_loss(z, args["temperature"]) / 2
    loss.backward()
    out = {"loss": loss}
    out.update({"grad." + n: p.grad for n, p in model.named_parameters()})
    save(out)
    raise SystemExit(0)

model = SwAVModel(args["dims"], args["bn"], args["prototypes"]).to(state["head.0.weight"].dtype)
model.load_state_dict(state, strict=True)
model.train()
bs = args["batchSize"]
crops_for_assign = args["cropsForAssign"]
nmb_total = sum(args["nmbCrops"])
queue = inputs["queue"].clone() if "queue" in inputs else None

# main_swav.py train(): normalize the prototypes, forward, loss (queue filled), backward.
normalize_prototypes(model)
crops = [inputs[f"crops{r}"] for r in range(len(args["nmbCrops"]))]
loss, embedding = swav_loss(model, crops, queue, bs, crops_for_assign, nmb_total, args["temperature"], args["epsilon"], args["iterations"])
loss.backward()

out = {"loss": loss, "embedding": embedding}
out.update({"grad." + n: p.grad for n, p in model.named_parameters()})
out.update({"param." + n: p for n, p in model.named_parameters()})
out.update({"buffer." + n: b for n, b in model.named_buffers()})
if queue is not None:
    out["queue"] = queue
save(out)
