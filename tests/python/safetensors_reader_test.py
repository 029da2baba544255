"""An lgd .safetensors export, read by an independent reader (the published format, parsed
here with json + numpy) and by the safetensors package where installed, equals the same
export as a torch.save .pth read by torch.load; a file the safetensors package writes from
torchvision's own state dict loads in lgd.

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
import torchvision

from references import optional

safetensors = optional("safetensors")
if safetensors is not None:
    import safetensors.torch

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
        if safetensors is not None:
            theirs = safetensors.torch.load_file(str(tmp / "w.safetensors"))
            with safetensors.safe_open(str(tmp / "w.safetensors"), framework="pt") as f:
                assert f.metadata() == meta, (f.metadata(), meta)
            assert sorted(theirs) == sorted(reference) and all(torch.equal(theirs[k], reference[k]) for k in reference)
            print(f"{arch}: the safetensors package reads the same {len(theirs)} tensors and metadata")
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

    if safetensors is not None:
        # The other direction: torchvision's own weights, written by the safetensors package.
        torch.manual_seed(5)
        model = torchvision.models.resnet18(num_classes=10)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        safetensors.torch.save_file(state, str(tmp / "tv.safetensors"), metadata={"source": "torchvision"})
        subprocess.run([LGD, "export", "--arch", "resnet18", "--weights", tmp / "tv.safetensors", "--num-classes",
                        "10", "--format", "torchvision", "-o", tmp / "tv.pth"], check=True, capture_output=True)
        back = torch.load(tmp / "tv.pth", weights_only=True)
        assert sorted(back) == sorted(state), set(back) ^ set(state)
        assert all(torch.equal(back[k], state[k]) for k in state)
        print(f"resnet18: {len(state)} tensors written by the safetensors package load in lgd unchanged")
