# The tiny SwAV model the SSL oracles share (ssl_swav_step.py, ssl_swav_trajectory.py): swav's src/resnet50.py
# structure (trunk per resolution group, head, F.normalize, MultiPrototypes) around a one-conv trunk.
import torch
import torch.nn as nn
import torch.nn.functional as F
from ssl_losses import distributed_sinkhorn


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


def normalize_prototypes(model):
    # main_swav.py, before each forward: the prototype rows back onto the unit sphere.
    with torch.no_grad():
        for i in range(model.prototypes.nmb_heads):
            p = getattr(model.prototypes, "prototypes" + str(i))
            w = p.weight.data.clone()
            w = nn.functional.normalize(w, dim=1, p=2)
            p.weight.copy_(w)


def swav_loss(model, crops, queue, bs, crops_for_assign, nmb_total, temperature, epsilon, iterations):
    """main_swav.py train()'s loss over the prototype heads (averaged as VISSL), with the queue joining Sinkhorn
    once full and then filled with this batch's embeddings (in place). Returns (loss, embedding)."""
    embedding, outputs = model(crops)
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
                q = distributed_sinkhorn(out, epsilon, iterations)[-bs:]
            subloss = 0
            for v in [v for v in range(nmb_total) if v != crop_id]:
                x = output[bs * v: bs * (v + 1)] / temperature
                subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
            loss += subloss / (nmb_total - 1)
        losses.append(loss / len(crops_for_assign))
    loss = sum(losses) / len(losses)
    if queue is not None:
        # fill the queue (main_swav.py does it inside the crop loop, after the crop's queue scores are taken)
        with torch.no_grad():
            for i, crop_id in enumerate(crops_for_assign):
                queue[i, bs:] = queue[i, :-bs].clone()
                queue[i, :bs] = embedding[crop_id * bs: (crop_id + 1) * bs]
    return loss, embedding
