# A minimal, independent reader and writer of the safetensors format, written from the spec in
# huggingface/safetensors' README (struct + json + torch.frombuffer; no safetensors package). The test oracles
# use it to check seerkit's files byte by byte and to write files that seerkit must read.
import json, struct
import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "BF16": torch.bfloat16, "F16": torch.float16,
          "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}
CODES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path, check_layout=False):
    """-> (tensors dict in header order, metadata dict). check_layout asserts seerkit's writing conventions:
    header padded with spaces to a multiple of 8, data laid out in sorted-key order."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header_bytes = raw[8:8 + n]
    header = json.loads(header_bytes.decode("utf-8"))
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {})
    spans = sorted((info["data_offsets"][0], info["data_offsets"][1], name) for name, info in header.items())
    at = 0
    for begin, end, name in spans:
        assert begin == at, f"{name}: data starts at {begin}, expected {at}"
        at = end
    assert at == len(data), f"tensors cover {at} bytes, data section has {len(data)}"
    if check_layout:
        assert (8 + n) % 8 == 0, f"header length {n} not padded to a multiple of 8"
        assert len(header_bytes) - len(header_bytes.rstrip(b" ")) < 8, "more than 7 bytes of space padding"
        names = [name for _, _, name in spans]
        assert names == sorted(names), f"data not in sorted-key order: {names}"
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        chunk = bytearray(data[begin:end])
        t = torch.frombuffer(chunk, dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(info["shape"]).clone()
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None, reverse=False):
    """Writes tensors laid out in reverse-sorted order when reverse (legal, and not what seerkit writes),
    with the header as pretty-printed JSON, to exercise a reader beyond seerkit's own conventions."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs, at = [], 0
    for name in sorted(tensors, reverse=reverse):
        t = tensors[name].contiguous()
        b = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": CODES[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    hb = json.dumps(header, indent=1).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))
