# Oracle for tests/safetensors.test.ts. args.mode:
#   "read":  parse seerkit's file args.file with our own spec parser (checking its layout conventions and
#            args.metadata) and hand every tensor back;
#   "write": write a file of known tensors to args.file in a legal layout seerkit does not write itself
#            (reverse order, pretty-printed header) and hand the same tensors back.
# Half-precision tensors come back as their int16 bit patterns (in int32) and bools as uint8, so the test can
# compare bit for bit.
import math
import torch
from exchange import load, save
from safetensors_spec import read_safetensors, write_safetensors


def exact(t):
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.view(torch.int16).to(torch.int32)
    if t.dtype == torch.bool:
        return t.to(torch.uint8)
    return t


_, args = load()
if args["mode"] == "read":
    tensors, metadata = read_safetensors(args["file"], check_layout=True)
    assert metadata == args["metadata"], f"metadata {metadata} != {args['metadata']}"
    save({name: exact(t) for name, t in tensors.items()})
else:
    tensors = {
        "conv.weight": torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2) / 7,
        "half": torch.tensor([1.5, -0.0, math.inf, 65504.0, 6e-8], dtype=torch.float16),
        "brain": torch.tensor([[1.0, -2.5], [3.0e38, 1e-40]], dtype=torch.bfloat16),
        "counts": torch.tensor([2**40 + 3, -7, 0], dtype=torch.int64),
        "mask": torch.tensor([True, False, True, True]),
        "pi": torch.tensor(math.pi, dtype=torch.float64),
        "none": torch.empty(0, 5, dtype=torch.int32),
        "bytes": torch.tensor([0, 7, 255], dtype=torch.uint8),
    }
    write_safetensors(args["file"], tensors, metadata={"format": "pt", "epoch": "3"}, reverse=True)
    save({name: exact(t) for name, t in tensors.items()})
