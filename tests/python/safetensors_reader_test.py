"""An lgd .safetensors export, read by an independent reader (the published format, parsed
here with json + numpy), equals the same export as a torch.save .pth read by torch.load.

usage: safetensors_reader_test.py LGD
"""
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

LGD = sys.argv[1]
DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
          "I32": np.int32, "U8": np.uint8}


def read_safetensors(path):
    blob = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    assert (8 + n) % 8 == 0, "data section is not 8-byte aligned"
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out, meta


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    for arch, extra in [("mobilenet_v3_small", ["--with-head", "--embed-dim", "64"]),
                        ("resnet18", ["--num-classes", "10"])]:
        common = ["export", "--arch", arch, "--init", "random", "--seed", "3", *extra]
        subprocess.run([LGD, *common, "-o", tmp / "w.safetensors"], check=True, capture_output=True)
        subprocess.run([LGD, *common, "--format", "torchvision", "-o", tmp / "w.pth"], check=True,
                       capture_output=True)
        tensors, meta = read_safetensors(tmp / "w.safetensors")
        reference = torch.load(tmp / "w.pth", weights_only=True)
        assert meta["arch"] == arch and meta["lgd_version"], meta
        assert set(tensors) == set(reference), set(tensors) ^ set(reference)
        for name, value in reference.items():
            assert np.array_equal(tensors[name], value.numpy()), name
        # Re-reading the safetensors file through lgd gives the same weights back.
        subprocess.run([LGD, "export", "--arch", arch, "--weights", tmp / "w.safetensors",
                        *(["--with-head"] if "--with-head" in extra else []),
                        "--format", "torchvision", "-o", tmp / "again.pth"], check=True, capture_output=True)
        again = torch.load(tmp / "again.pth", weights_only=True)
        assert list(again) == list(reference)
        assert all(torch.equal(again[k], reference[k]) for k in reference)
        print(f"{arch}: {len(tensors)} tensors, metadata {meta}: equal")
