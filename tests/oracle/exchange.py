# The Python side of tests/helpers/oracle.ts: read input tensors and JSON args, write output tensors.
# Usage inside an oracle script:  inputs, args = load();  ...;  save({"y": y})
import json, os, sys
import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "int64": torch.int64, "int32": torch.int32, "uint8": torch.uint8, "bool": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}
DIR = sys.argv[1] if len(sys.argv) > 1 else "."


def load():
    with open(os.path.join(DIR, "inputs.json")) as f:
        manifest = json.load(f)
    inputs = {}
    for name, m in manifest.items():
        with open(os.path.join(DIR, m["file"]), "rb") as f:
            raw = bytearray(f.read())
        t = torch.frombuffer(raw, dtype=DTYPES[m["dtype"]]) if raw else torch.empty(0, dtype=DTYPES[m["dtype"]])
        inputs[name] = t.reshape(m["shape"]).clone()
    with open(os.path.join(DIR, "args.json")) as f:
        args = json.load(f)
    return inputs, args


def save(outputs):
    manifest = {}
    for name, t in outputs.items():
        t = t.detach().contiguous().cpu()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        with open(os.path.join(DIR, name + ".bin"), "wb") as f:
            f.write(t.numpy().tobytes())
        manifest[name] = {"shape": list(t.shape), "dtype": NAMES[t.dtype], "file": name + ".bin"}
    with open(os.path.join(DIR, "outputs.json"), "w") as f:
        json.dump(manifest, f)
