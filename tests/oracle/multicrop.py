# Oracle for tests/data_multicrop.test.ts: torchvision (v0.14) and Pillow on the same inputs and parameters.
# - photometric ops: torchvision.transforms.functional on float tensors in [0, 1], one image at a time;
# - the per-crop chain of SwAV (flip, ColorJitter ops in a given order, grayscale, blur, solarize, normalize);
# - crops: PIL img.crop(box).resize(size, BILINEAR) through F.resized_crop, on uint8 pixels;
# - RandomResizedCrop.get_params statistics (area fraction and aspect ratio of many draws).
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from exchange import load, save

inputs, args = load()
out = {}

x = inputs["x"]  # (n, 3, H, W) float32 in [0, 1]
n = x.shape[0]
per_image = lambda fn: torch.stack([fn(x[i], i) for i in range(n)])
out["brightness"] = per_image(lambda im, i: F.adjust_brightness(im, args["brightness"][i]))
out["contrast"] = per_image(lambda im, i: F.adjust_contrast(im, args["contrast"][i]))
out["saturation"] = per_image(lambda im, i: F.adjust_saturation(im, args["saturation"][i]))
out["hue"] = per_image(lambda im, i: F.adjust_hue(im, args["hue"][i]))
out["gray"] = per_image(lambda im, i: F.rgb_to_grayscale(im, num_output_channels=1))
k = args["kernel"]
out["blur"] = per_image(lambda im, i: F.gaussian_blur(im, [k, k], [args["sigma"][i], args["sigma"][i]]))
out["solarize"] = per_image(lambda im, i: F.solarize(im, args["threshold"]))
out["normalize"] = F.normalize(x.clone(), args["mean"], args["std"])

# The chain, with every crop's parameters given.
c = args["chain"]
ops = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
chained = []
for i in range(n):
    im = x[i]
    if c["flip"][i]:
        im = F.hflip(im)
    if c["jitter"][i]:
        for op in c["order"][i]:
            im = ops[op](im, c["factors"][i][op])
    if c["gray"][i]:
        im = F.rgb_to_grayscale(im, num_output_channels=3)
    if c["blur"][i]:
        im = F.gaussian_blur(im, [k, k], [c["sigma"][i], c["sigma"][i]])
    if c["solarize"][i]:
        im = F.solarize(im, args["threshold"])
    chained.append(F.normalize(im, args["mean"], args["std"]))
out["chain"] = torch.stack(chained)

# Crops of a uint8 image with Pillow's bilinear resize.
img = Image.fromarray(inputs["img"].numpy(), "RGB")
for j, (top, left, h, w, size) in enumerate(args["boxes"]):
    crop = F.resized_crop(img, top, left, h, w, [size, size], T.InterpolationMode.BILINEAR)
    out[f"crop{j}"] = torch.from_numpy(__import__("numpy").asarray(crop).copy())

# RandomResizedCrop.get_params on an image of the given size.
rr = args["rrc"]
torch.manual_seed(0)
dummy = torch.empty(3, rr["height"], rr["width"])
boxes = [T.RandomResizedCrop.get_params(dummy, rr["scale"], [3 / 4, 4 / 3]) for _ in range(rr["draws"])]
out["rrc"] = torch.tensor(boxes, dtype=torch.float64)  # (draws, 4): top, left, height, width

save(out)
