# PyTorch eager side of `seer bench ops`: per-op call overhead and a small CNN training step, on the same
# libtorch build (Debian's python3-torch) and thread count as seerkit. Prints one JSON line.
# usage: /usr/bin/python3 bench/pytorch_ops.py THREADS CALLS STEPS BATCH
import json, sys, time
import torch, torch.nn as nn, torch.nn.functional as F

threads, calls, steps, batch = (int(v) for v in sys.argv[1:5])
torch.set_num_threads(threads)
torch.manual_seed(0)


def per_call_us(fn, n):
    for _ in range(min(n, 1000)):
        fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


a, b = torch.zeros(1), torch.zeros(1)
x = torch.zeros(1)
ops = {
    "add": per_call_us(lambda: a + b, calls),
    "mul_scalar": per_call_us(lambda: a * 2.0, calls),
    "relu": per_call_us(lambda: torch.relu(a), calls),
    "view": per_call_us(lambda: a.view(1, 1), calls),
    "shape": per_call_us(lambda: a.shape, calls),
    "add_inplace": per_call_us(lambda: x.add_(b), calls),
}


def small_cnn():
    # Same layers and sizes as smallCnn() in src/models/small_cnn.ts.
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


model = small_cnn()
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
images = torch.randn(batch, 3, 32, 32)
labels = torch.randint(0, 10, (batch,))


def step():
    loss = F.cross_entropy(model(images), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


for _ in range(3):
    step()
t = time.perf_counter()
for _ in range(steps):
    step()
step_ms = (time.perf_counter() - t) / steps * 1e3
print(json.dumps({"engine": f"pytorch-eager {torch.__version__}", "threads": torch.get_num_threads(), "ops_us": ops,
                  "step_ms": step_ms, "images_per_s": batch / step_ms * 1e3}))
