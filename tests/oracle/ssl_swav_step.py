# Oracle for tests/ssl_methods.test.ts: one SwAV (or SimCLR) forward/backward of a tiny conv backbone with
# torch.nn, from the weights seerkit saved (safetensors, read with our own spec parser).
# SwAV: the forward of facebookresearch/swav src/resnet50.py (one trunk pass per resolution group, features
# concatenated, head, F.normalize, prototypes) and the loss and queue code of main_swav.py train(), after the
# prototype normalization main_swav.py does before each forward. Several prototype sets (MultiPrototypes) are
# averaged over, as VISSL's swav_loss. SimCLR: trunk, head, then simclr objective.py's loss halved (ours averages
# the two directions).
# args: mode "swav" | "simclr", file, nmbCrops, batchSize, temperature, epsilon, iterations, cropsForAssign;
# inputs: crops0, crops1, ... (crop-major per resolution), queue (numQueues, L, D) optional; simclr: views.
import torch
import torch.nn as nn
import torch.nn.functional as F
from exchange import load, save
from safetensors_spec import read_safetensors
from ssl_losses import distributed_sinkhorn, simclr_contrastive_loss


class Tiny(nn.Module):
    # Keep in step with Tiny in tests/ssl_methods.test.ts.
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(6)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x))).mean((2, 3))  # (N, 6)


class MultiPrototypes(nn.Module):
    # swav src/resnet50.py MultiPrototypes
    def __init__(self, output_dim, nmb_prototypes):
        super().__init__()
        self.nmb_heads = len(nmb_prototypes)
        for i, k in enumerate(nmb_prototypes):
            self.add_module("prototypes" + str(i), nn.Linear(output_dim, k, bias=False))

    def forward(self, x):
        return [getattr(self, "prototypes" + str(i))(x) for i in range(self.nmb_heads)]


def build_head(dims, bn):
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i + 2 == len(dims):
            break
        if bn:
            layers.append(nn.BatchNorm1d(dims[i + 1]))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SwAVModel(nn.Module):
    def __init__(self, dims, bn, protos):
        super().__init__()
        self.backbone = Tiny()
        self.head = build_head(dims, bn)
        self.prototypes = MultiPrototypes(dims[-1], protos)

    def forward(self, inputs):
        # swav src/resnet50.py ResNet.forward: group consecutive crops of one resolution; here one tensor per group.
        output = torch.cat([self.backbone(x) for x in inputs])
        x = self.head(output)
        x = nn.functional.normalize(x, dim=1, p=2)
        return x, self.prototypes(x)


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

# main_swav.py train(): normalize the prototypes, forward, loss, backward.
with torch.no_grad():
    for i in range(model.prototypes.nmb_heads):
        p = getattr(model.prototypes, "prototypes" + str(i))
        w = p.weight.data.clone()
        w = nn.functional.normalize(w, dim=1, p=2)
        p.weight.copy_(w)
embedding, outputs = model([inputs[f"crops{r}"] for r in range(len(args["nmbCrops"]))])
embedding = embedding.detach()

losses = []
use_the_queue = False
for h, output in enumerate(outputs):
    weight = getattr(model.prototypes, "prototypes" + str(h)).weight
    loss = 0
    for i, crop_id in enumerate(crops_for_assign):
        with torch.no_grad():
            out = output[bs * crop_id: bs * (crop_id + 1)].detach()
            # time to use the queue
            if queue is not None:
                if use_the_queue or not torch.all(queue[i, -1, :] == 0):
                    use_the_queue = True
                    out = torch.cat((torch.mm(queue[i], weight.t()), out))
            # get assignments
            q = distributed_sinkhorn(out, args["epsilon"], args["iterations"])[-bs:]
        subloss = 0
        for v in [v for v in range(nmb_total) if v != crop_id]:
            x = output[bs * v: bs * (v + 1)] / args["temperature"]
            subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
        loss += subloss / (nmb_total - 1)
    losses.append(loss / len(crops_for_assign))
loss = sum(losses) / len(losses)
if queue is not None:
    # fill the queue (main_swav.py does it inside the crop loop, after the crop's queue scores are taken)
    for i, crop_id in enumerate(crops_for_assign):
        queue[i, bs:] = queue[i, :-bs].clone()
        queue[i, :bs] = embedding[crop_id * bs: (crop_id + 1) * bs]
loss.backward()

out = {"loss": loss, "embedding": embedding}
out.update({"grad." + n: p.grad for n, p in model.named_parameters()})
out.update({"param." + n: p for n, p in model.named_parameters()})
out.update({"buffer." + n: b for n, b in model.named_buffers()})
if queue is not None:
    out["queue"] = queue
save(out)
