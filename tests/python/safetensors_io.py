"""A minimal, independent safetensors reader and writer for the tests (numpy arrays).

Where the safetensors package is installed (the pip leg: tests/python/references.py), every
file read here is also opened by the package and must give the same tensors and metadata,
and files are written by the package, so that lgd reads what the reference writes.
"""
import json
import struct
from pathlib import Path

import numpy as np

from references import optional

_package = optional("safetensors")
if _package is not None:
    import safetensors.numpy

DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
          "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def read_safetensors(path):
    """(tensors by name as numpy arrays, metadata dict)."""
    blob = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for key, info in header.items():
        b, e = info["data_offsets"]
        out[key] = np.frombuffer(blob[8 + n + b:8 + n + e], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    if _package is not None:
        with safetensors.safe_open(str(path), framework="numpy") as f:
            theirs_meta = f.metadata() or {}
            assert theirs_meta == meta, f"{path}: the safetensors package reads other metadata"
            assert sorted(f.keys()) == sorted(out), f"{path}: the safetensors package reads other names"
            for key in out:
                theirs = f.get_tensor(key)
                assert theirs.dtype == out[key].dtype and np.array_equal(theirs, out[key]), \
                    f"{path}: {key} differs as the safetensors package reads it"
    return out, meta


def write_safetensors(path, tensors, meta=None):
    if _package is not None:
        safetensors.numpy.save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path),
                                    metadata=meta)
        return
    header, chunks, offset = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        data = arr.tobytes()
        header[name] = {"dtype": NAMES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(chunks))
