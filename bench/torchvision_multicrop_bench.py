# The torchvision side of `seer bench data`: a PyTorch DataLoader with torchvision + PIL transforms producing
# SwAV/SEER multi-crop batches from a list of image files, on the same files, crops and cores as seerkit's loader.
# Based on /work/shared/anchors/torchvision_multicrop.py, which follows facebookresearch/swav src/multicropdataset.py:
# per crop RandomResizedCrop(size, scale) → RandomHorizontalFlip → RandomApply(ColorJitter(0.8s, 0.8s, 0.8s, 0.2s),
# p=0.8) → RandomGrayscale(0.2) → PIL GaussianBlur(radius U(0.1, 2)) with p=0.5 → ToTensor → Normalize.
# Differences from the anchor: the file list is given (the same files seerkit reads); each resolution's scale range
# is given; std is VISSL's [0.229, 0.224, 0.225]; drop_last; and each batch is finished as SwAV's training loop uses
# it, one crop-major tensor per resolution (torch.cat of that resolution's crops), as seerkit's loader returns.
# Prints one JSON line. usage:
#   /usr/bin/python3 bench/torchvision_multicrop_bench.py LIST --crops 2x224@0.14-1+4x96@0.05-0.14 \
#       [--workers 2] [--batch 32] [--batches 10] [--warmup 2] [--threads 1] [--seed 0]
import argparse, json, os, time
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image, ImageFilter

ap = argparse.ArgumentParser()
ap.add_argument("list", help="text file, one image path per line")
ap.add_argument("--crops", default="2x224@0.14-1+4x96@0.05-0.14")
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--batches", type=int, default=10, help="timed batches")
ap.add_argument("--warmup", type=int, default=2, help="batches before the clock starts (worker start-up)")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)

groups = []  # (count, size, (min_scale, max_scale))
for term in a.crops.split("+"):
    shape, _, scale = term.partition("@")
    count, size = (int(v) for v in shape.split("x"))
    lo, hi = (float(v) for v in scale.split("-")) if scale else ((0.14, 1.0) if not groups else (0.05, 0.14))
    groups.append((count, size, (lo, hi)))


class PILRandomGaussianBlur:
    """SwAV's blur: PIL GaussianBlur with radius uniform in [0.1, 2.0], applied with probability p."""

    def __init__(self, p=0.5, radius_min=0.1, radius_max=2.0):
        self.p, self.lo, self.hi = p, radius_min, radius_max

    def __call__(self, img):
        if torch.rand(1).item() >= self.p:
            return img
        return img.filter(ImageFilter.GaussianBlur(radius=torch.empty(1).uniform_(self.lo, self.hi).item()))


color = T.Compose([T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8), T.RandomGrayscale(p=0.2)])
finish = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
transforms = []
for count, size, scale in groups:
    tf = T.Compose([T.RandomResizedCrop(size, scale=scale), T.RandomHorizontalFlip(p=0.5), color, PILRandomGaussianBlur(), finish])
    transforms += [tf] * count

with open(a.list) as f:
    files = [line.strip() for line in f if line.strip()]


class MultiCropDataset(torch.utils.data.Dataset):
    def __len__(self):
        return len(files)

    def __getitem__(self, i):
        with open(files[i], "rb") as fh:
            img = Image.open(fh).convert("RGB")
        return [t(img) for t in transforms]


loader = torch.utils.data.DataLoader(MultiCropDataset(), batch_size=a.batch, num_workers=a.workers, shuffle=True, drop_last=True)
need = a.warmup + a.batches
if len(loader) < need:
    raise SystemExit(f"{len(files)} files give {len(loader)} batches of {a.batch}, fewer than warmup + batches = {need}")



def cpu_seconds(pids):
    """User + system CPU time of this process and of the given worker processes (Linux /proc)."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except OSError:
            pass
    return total


t_start = time.perf_counter()
t_steady = None
cpu_steady = None
done = 0
it = iter(loader)
pids = [w.pid for w in getattr(it, "_workers", [])]
for i, crops in enumerate(it):
    # SwAV's crop-major layout: one tensor per resolution, all images' crop 0, then crop 1, ...
    k = 0
    per_resolution = []
    for count, _, _ in groups:
        per_resolution.append(torch.cat(crops[k:k + count]))
        k += count
    del per_resolution
    if i + 1 == a.warmup:
        t_steady = time.perf_counter()
        cpu_steady = cpu_seconds(pids)
    if i + 1 > a.warmup:
        done += a.batch
    if i + 1 == need:
        break
t_end = time.perf_counter()
cpu_end = cpu_seconds(pids)
if t_steady is None:
    t_steady, cpu_steady = t_start, 0.0
print(json.dumps({
    "engine": f"torchvision {torchvision.__version__} + PIL DataLoader (torch {torch.__version__})",
    "workers": a.workers,
    "threads": a.threads,
    "batch": a.batch,
    "images": done,
    "seconds": t_end - t_steady,
    "images_per_s": done / (t_end - t_steady),
    "startup_s": t_steady - t_start,
    "cpu_ms_per_image": (cpu_end - cpu_steady) * 1e3 / done,
}))
