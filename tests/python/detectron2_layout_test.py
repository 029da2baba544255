"""lgd export --layout detectron2 (the ResNets) against the key list of detectron2's own ResNet,
derived here from its source (detectron2/modeling/backbone/resnet.py), since detectron2 has no
wheel on PyPI to load the file with:
  * BasicStem: conv1 (7x7, 64) with its norm: stem.conv1.weight, stem.conv1.norm.*;
  * stages res2..res5 of BasicBlocks (ResNet-18/34: conv1, conv2, 3x3) or BottleneckBlocks
    (ResNet-50: conv1 1x1, conv2 3x3, conv3 1x1, out = 4 x bottleneck), blocks named
    res<N>.<i>; a block whose input and output widths differ has a 1x1 shortcut with its norm;
  * every norm a FrozenBatchNorm2d: weight, bias, running_mean, running_var (no
    num_batches_tracked); no classifier in the backbone.
Keys and shapes must equal that list, values the torchvision export's under detectron2's
converter's renaming (layerN -> res(N+1), bnK -> convK.norm, downsample -> shortcut), and the
config written beside must say what detectron2 needs for torchvision weights (depth, stride in
the 3x3, RGB, the training mean / std in 0-255 units). lgd reads the export back (--weights).

usage: detectron2_layout_test.py LGD
"""
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

LGD = sys.argv[1]
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
    if not ok:
        failures.append(name)


def lgd(*args):
    return subprocess.run([LGD, *map(str, args)], capture_output=True, text=True)


def detectron2_keys(depth):
    """{key: shape} of detectron2's ResNet backbone of this depth, from resnet.py's structure."""
    blocks = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}[depth]
    bottleneck = depth >= 50
    keys = {}

    def conv(name, cout, cin, k):
        keys[f"{name}.weight"] = (cout, cin, k, k)
        for p in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{name}.norm.{p}"] = (cout,)

    conv("stem.conv1", 64, 3, 7)
    cin = 64
    for s, n in enumerate(blocks):
        width = 64 * 2 ** s
        cout = width * 4 if bottleneck else width
        for i in range(n):
            name = f"res{s + 2}.{i}"
            if cin != cout:
                conv(f"{name}.shortcut", cout, cin, 1)
            if bottleneck:
                conv(f"{name}.conv1", width, cin, 1)
                conv(f"{name}.conv2", width, width, 3)
                conv(f"{name}.conv3", cout, width, 1)
            else:
                conv(f"{name}.conv1", width, cin, 3)
                conv(f"{name}.conv2", width, width, 3)
            cin = cout
    return keys


def converter(key):
    """detectron2's tools/convert-torchvision-to-d2.py renaming."""
    if "layer" not in key:
        key = "stem." + key
    for t in (1, 2, 3, 4):
        key = key.replace(f"layer{t}", f"res{t + 1}")
    for t in (1, 2, 3):
        key = key.replace(f"bn{t}", f"conv{t}.norm")
    return key.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")


def with_metadata(path, extra):
    """Rewrites a safetensors file's __metadata__ with extra entries."""
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.setdefault("__metadata__", {}).update(extra)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + blob[8 + n:])


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    for depth in (18, 34, 50):
        arch = f"resnet{depth}"
        tv, d2 = tmp / f"{arch}.pth", tmp / f"{arch}_d2.pth"
        lgd("export", "--arch", arch, "--init", "random", "--seed", 0, "--num-classes", 10, "-o", tv)
        done = lgd("export", "--arch", arch, "--init", "random", "--seed", 0, "--num-classes", 10,
                   "--layout", "detectron2", "-o", d2)
        check(f"{arch}: exported in detectron2's layout", done.returncode == 0, done.stderr.strip())
        if done.returncode != 0:
            continue
        got = torch.load(d2, weights_only=True)
        expected = detectron2_keys(depth)
        check(f"{arch}: keys equal detectron2's ResNet-{depth} backbone", set(got) == set(expected),
              f"only lgd: {sorted(set(got) - set(expected))[:5]}, only detectron2: {sorted(set(expected) - set(got))[:5]}")
        check(f"{arch}: shapes equal detectron2's", all(tuple(got[k].shape) == v for k, v in expected.items() if k in got))
        reference = {converter(k): v for k, v in torch.load(tv, weights_only=True).items()}
        check(f"{arch}: values are the torchvision export's under detectron2's converter",
              all(torch.equal(got[k], reference[k]) for k in got))
        # Read back by lgd (the layout recognised from the keys): the torchvision export without
        # its classifier, num_batches_tracked restarting at 0 (detectron2 keeps none).
        back = tmp / f"{arch}_back.pth"
        done = lgd("export", "--arch", arch, "--weights", d2, "-o", back)
        tv_sd = torch.load(tv, weights_only=True)
        back_sd = torch.load(back, weights_only=True) if done.returncode == 0 else {}
        check(f"{arch}: lgd reads the detectron2 export back as torchvision's weights",
              set(back_sd) == {k for k in tv_sd if not k.startswith("fc.")}
              and all(torch.equal(v, tv_sd[k]) for k, v in back_sd.items() if "num_batches_tracked" not in k),
              done.stderr.strip())
        config = (tmp / f"{arch}_d2.yaml").read_text() if (tmp / f"{arch}_d2.yaml").exists() else ""
        lines = {l.strip() for l in config.splitlines()}
        check(f"{arch}: config beside it: depth, stride in the 3x3, RGB, widths, weights file",
              {f"DEPTH: {depth}", "STRIDE_IN_1X1: False", 'FORMAT: "RGB"', f'WEIGHTS: "{arch}_d2.pth"',
               f"RES2_OUT_CHANNELS: {256 if depth == 50 else 64}"} <= lines, config)

    # The training mean / std travel into PIXEL_MEAN / PIXEL_STD (0-255 units).
    st = tmp / "r18.safetensors"
    lgd("export", "--arch", "resnet18", "--init", "random", "-o", st)
    with_metadata(st, {"image_mean": "0.5,0.45,0.4", "image_std": "0.25,0.2,0.3", "image_size": "224",
                       "teacher": "t"})
    done = lgd("export", "--arch", "resnet18", "--weights", st, "--layout", "detectron2", "-o", tmp / "r18_d2.pth")
    config = (tmp / "r18_d2.yaml").read_text() if (tmp / "r18_d2.yaml").exists() else ""
    check("the training mean / std in 0-255 units", done.returncode == 0 and "PIXEL_MEAN: [127.5, 114.75, 102]" in config
          and "PIXEL_STD: [63.75, 51, 76.5]" in config, done.stderr.strip() + "\n" + config)

    done = lgd("export", "--arch", "mobilenet_v2", "--init", "random", "--layout", "detectron2", "-o", tmp / "m.pth")
    line = done.stderr.strip()
    check("a student detectron2 has no backbone of: exit 2, one line naming the ones it has",
          done.returncode == 2 and len(line.splitlines()) == 1 and "resnet18, resnet34, resnet50" in line
          and not (tmp / "m.pth").exists(), line)
    for args, expect in ((["-o", tmp / "r.safetensors"], "writes a torch.save .pth"),
                         (["--with-head", "--embed-dim", "8", "-o", tmp / "h.pth"], "no place for LGD's projection head")):
        done = lgd("export", "--arch", "resnet18", "--init", "random", "--layout", "detectron2", *args)
        check(f"refused with one line: {expect}", done.returncode == 2 and expect in done.stderr
              and len(done.stderr.strip().splitlines()) == 1, done.stderr.strip())
    print(f"{len(failures)} failure(s)" if failures else "all checks passed")
sys.exit(1 if failures else 0)
