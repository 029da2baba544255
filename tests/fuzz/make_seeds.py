"""Writes the seed corpus of lgd's fuzz targets (tests/fuzz/corpus/<target>/seed-*): small
valid inputs of each reader, made with torch, PIL and the safetensors layout written out by
hand (the format: 8-byte little-endian header length, JSON header, data). Run with
/usr/bin/python3 (Debian's python3-torch, python3-pil). Inputs that a fuzz run found are kept
beside the seeds under other names (crash-*, regress-*) and are not touched here."""
import gzip
import io
import json
import os
import struct
import sys
import zipfile

import numpy as np
import torch
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    codes = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
             torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL", torch.float64: "F64"}
    for name, t in tensors.items():
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def main():
    g = torch.Generator().manual_seed(0)
    put("safetensors", "mixed", safetensors({
        "conv.weight": torch.randn(2, 1, 3, 3, generator=g), "bn.num_batches_tracked": torch.tensor(3),
        "half": torch.randn(4, generator=g).half(), "bf": torch.randn(2, 2, generator=g).bfloat16(),
        "empty": torch.zeros(0, 3), "mask": torch.tensor([True, False])}, {"format": "pt", "arch": "resnet18"}))
    put("safetensors", "empty", safetensors({}))

    ckpt_meta = {"lgd_checkpoint": "1", "lgd_version": "0.1.0", "step": "12", "epoch": "1", "seed": "0",
                 "arch": "resnet18", "config": "model:\n  arch: resnet18\n"}
    put("checkpoint", "small", safetensors({"student.fc.weight": torch.randn(3, 4, generator=g),
                                            "optim.momentum.student.fc.weight": torch.zeros(3, 4),
                                            "rng.cpu": torch.arange(8, dtype=torch.uint8)}, ckpt_meta))
    put("checkpoint", "bad-step", safetensors({"x": torch.zeros(1)}, dict(ckpt_meta, step="12x")))

    put("text_bank", "small", safetensors({"tsb": torch.randn(4, 3, generator=g)},
                                          {"class_names": "cat\ndog\nsnake", "templates": "a photo of a {}.",
                                           "teacher": "demo"}))

    # torch.save archives: the zip whole (first byte odd), or only its data.pkl (first byte
    # even; the target adds four 256-byte storages named 0..3).
    def saved(obj):
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    def pickle_of(obj):
        with zipfile.ZipFile(io.BytesIO(saved(obj))) as z:
            return z.read([n for n in z.namelist() if n.endswith("data.pkl")][0])

    a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    state = {"fc.weight": a, "fc.bias": torch.zeros(3), "bn.num_batches_tracked": torch.tensor(5),
             "view": a[:, 1:3], "half": torch.ones(2, dtype=torch.float16)}
    put("torch_pickle", "state-dict-zip", b"\x01" + saved(state))
    legacy = io.BytesIO()
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    put("torch_pickle", "state-dict-legacy", b"\x01" + legacy.getvalue())
    put("torch_pickle", "state-dict-pkl", b"\x00" + pickle_of(state))
    put("torch_pickle", "wrapped-pkl", b"\x00" + pickle_of({"epoch": 3, "state_dict": {"module.fc.weight": a}}))

    here = os.path.dirname(os.path.abspath(__file__))
    configs = os.path.join(here, "..", "..", "configs")
    for sub, name in (("small", "fmnist_resnet18.yaml"), ("examples", "resnet18_minimal.yaml")):
        path = os.path.join(configs, sub, name)
        if os.path.exists(path):
            put("run_config", name, open(path, "rb").read())
    put("run_config", "overrides", "model:\n  arch: mobilenet_v2\noptim:\n  lr: 0.1\n  schedule: reference\n"
        "data:\n  batch_size: 8\n  image_size: 32\n")

    put("teacher_manifest", "clip-bpe", "name: demo\nembed_dim: 8\nimage:\n  file: image.pt\n  size: 32\n"
        "  mean: [0.48, 0.45, 0.40]\n  std: [0.26, 0.26, 0.27]\ntext:\n  file: text.pt\n  context_length: 77\n"
        "  tokenizer:\n    type: clip-bpe\n    file: bpe_simple_vocab_16e6.txt.gz\n    merges: 48894\n"
        "classnames: classnames.txt\ntemplates: templates.txt\n")

    put("text_files", "names", "# comment\ncat\ndog\n\nn01440764\ttench\nsea snake\n")
    put("text_files", "templates", "a photo of a {}.\nitap of the {}.\n{} in the wild\n")

    rgb = np.arange(9 * 7 * 3, dtype=np.uint8).reshape(7, 9, 3) * 3
    def encoded(image, fmt, **kw):
        buf = io.BytesIO()
        image.save(buf, fmt, **kw)
        return buf.getvalue()
    img = Image.fromarray(rgb)
    put("image", "rgb.jpg", encoded(img, "JPEG", quality=80))
    put("image", "progressive.jpg", encoded(img, "JPEG", progressive=True))
    put("image", "grey.jpg", encoded(img.convert("L"), "JPEG"))
    put("image", "cmyk.jpg", encoded(img.convert("CMYK"), "JPEG"))
    put("image", "rgb.png", encoded(img, "PNG"))
    put("image", "rgba.png", encoded(img.convert("RGBA"), "PNG"))
    put("image", "palette.png", encoded(img.convert("P"), "PNG"))
    put("image", "grey16.png", encoded(Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), "PNG"))
    put("image", "grey-alpha.png", encoded(img.convert("LA"), "PNG"))
    put("image", "rgb.bmp", encoded(img, "BMP"))

    put("file_list", "csv", "path,label\na/1.jpg,0\nb/2.png,1\nc/3.jpg,0\n")
    put("file_list", "tsv-names", "x.jpg\tcat\ny.jpg\tdog\n")

    images = struct.pack(">IIII", 0x803, 2, 4, 4) + bytes(range(32))
    labels = struct.pack(">II", 0x801, 2) + bytes([3, 7])
    put("idx", "two-images", struct.pack(">H", len(images)) + images + labels)
    gz_images = gzip.compress(images, mtime=0)
    put("idx", "two-images-gz", struct.pack(">H", len(gz_images)) + gz_images + labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
