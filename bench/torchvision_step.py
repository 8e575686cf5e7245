# PyTorch eager side of the backbone benchmark (src/bench/backbone_bench.ts): supervised training steps of a
# torchvision model (forward, cross-entropy on random labels, backward, SGD with momentum) on random images, on the
# same libtorch build (Debian's python3-torch) and thread count as seerkit. Each step is timed; prints one JSON line
# with the median step time (robust to other processes' interference) and the mean.
# usage: /usr/bin/python3 bench/torchvision_step.py ARCH BATCH SIZE STEPS WARMUP THREADS
import json
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

arch = sys.argv[1]
batch, size, steps, warmup, threads = (int(v) for v in sys.argv[2:7])
torch.set_num_threads(threads)
torch.manual_seed(0)

# Same model, optimizer and data shapes as benchSeerkit() in src/bench/backbone_bench.ts.
model = getattr(torchvision.models, arch)(num_classes=1000)
model.train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-5)
images = torch.randn(batch, 3, size, size)
labels = torch.randint(0, 1000, (batch,))


def step():
    loss = F.cross_entropy(model(images), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()  # a sync point, as seerkit's loss.item()


for _ in range(warmup):
    step()
times_ms = []
for _ in range(steps):
    t = time.perf_counter()
    step()
    times_ms.append((time.perf_counter() - t) * 1e3)
step_ms = sorted(times_ms)[len(times_ms) // 2]  # the median (upper median for an even count), as the TS side
print(json.dumps({
    "engine": f"pytorch-eager {torch.__version__}, torchvision {torchvision.__version__}",
    "threads": torch.get_num_threads(),
    "step_ms": step_ms,
    "mean_step_ms": sum(times_ms) / len(times_ms),
    "images_per_s": batch / step_ms * 1e3,
}))
