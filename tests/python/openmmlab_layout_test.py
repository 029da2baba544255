"""lgd export --layout mmdet / mmseg, loaded by mmdetection's and mmsegmentation's own backbones.

For every pair the frameworks have a backbone for (mmdet: ResNet-18/34/50, MobileNetV2,
EfficientNet-B0; mmseg: ResNet-18/34/50, MobileNetV2, MobileNetV3 large / small):
  * the export (random init, seed 0) loads into the backbone with load_state_dict(strict=True);
  * the config snippet written beside it (<output>.py) is read by mmengine's Config, the backbone
    is built from it, and its init_weights() (mmengine's Pretrained init, the path a user's
    config takes) loads every tensor of the file;
  * that backbone, in eval mode, computes torchvision's features of lgd's torchvision export of
    the same weights: the last stage's map within 1e-5 relative. mmseg's MobileNetV3 is dilated
    by construction (output stride 8, for segmentation): the test sets its strides and dilations
    back to torchvision's before comparing, which changes no weight. It also pads its stride-2
    convolutions as TensorFlow's "same" (Conv2dAdaptivePadding, not configurable), which equals
    torchvision's symmetric padding where the size entering each is odd: it is compared at 97 px
    (97, 49, 25, 13, 7), the others at 96 px;
  * a pair without a backbone (mmdet's MobileNetV3, mmseg's EfficientNet) is refused with exit 2,
    naming the pairs that exist, and the README's table of OpenMMLab backbones lists exactly the
    pairs checked here;
  * the export read back by lgd (--weights, the layout recognised from the keys) gives back the
    torchvision export exactly;
  * the training mean / std recorded in the weights reach the data preprocessor, in 0-255 units,
    with bgr_to_rgb.

The frameworks come from PyPI (mmengine, mmcv-lite, mmdet, mmsegmentation; pip leg). mmcv-lite
has no compiled operators, and the packages' `models` / `backbones` / `layers` / `utils`
__init__ files import every detector and segmentor, some of which need them. So the test imports
the backbone modules themselves, with those parent packages entered as bare namespaces (their
files still found on disk), and exports from the submodules the names the backbone files import.
The backbone code that runs is the frameworks' own, unchanged. Skipped where they are not
installed (the Debian leg), required in the pip leg (LGD_REQUIRE_PYTHON_REFERENCES=1).

usage: openmmlab_layout_test.py LGD SOURCE_DIR
"""
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from references import optional  # noqa: E402

safetensors_torch = optional("safetensors.torch")
if optional("mmengine") is None or optional("mmcv") is None or importlib.util.find_spec("mmdet") is None \
        or importlib.util.find_spec("mmseg") is None or safetensors_torch is None:
    print("skipped: mmengine, mmcv-lite, mmdet, mmsegmentation or safetensors is not installed")
    sys.exit(77)

LGD, SOURCE = os.path.abspath(sys.argv[1]), Path(sys.argv[2]).resolve()
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
    if not ok:
        failures.append(name)


def lgd(*args, expect=0):
    done = subprocess.run([LGD, *map(str, args)], capture_output=True, text=True)
    if done.returncode != expect:
        raise SystemExit(f"FAIL lgd {' '.join(map(str, args))}: exit {done.returncode}, {done.stderr.strip()}")
    return done.stdout + done.stderr


def bare_package(name):
    """`name` as a namespace whose submodules import from its folder, its __init__.py not run."""
    spec = importlib.util.find_spec(name)
    module = types.ModuleType(name)
    module.__path__ = list(spec.submodule_search_locations)
    sys.modules[name] = module
    return module


def export_names(package, submodule, names):
    module = importlib.import_module(f"{package}.{submodule}")
    for n in names:
        setattr(sys.modules[package], n, getattr(module, n))


for package in ["mmdet.models", "mmdet.models.layers", "mmdet.models.utils", "mmdet.models.backbones",
                "mmseg.models", "mmseg.models.utils", "mmseg.models.backbones"]:
    bare_package(package)
export_names("mmdet.models.layers", "inverted_residual", ["InvertedResidual"])
export_names("mmdet.models.layers", "se_layer", ["SELayer"])
export_names("mmdet.models.layers", "res_layer", ["ResLayer"])
export_names("mmdet.models.utils", "make_divisible", ["make_divisible"])
export_names("mmseg.models.utils", "inverted_residual", ["InvertedResidual", "InvertedResidualV3"])
export_names("mmseg.models.utils", "make_divisible", ["make_divisible"])
export_names("mmseg.models.utils", "res_layer", ["ResLayer"])
from mmdet.models.backbones import efficientnet as mmdet_efficientnet  # noqa: E402
from mmdet.models.backbones import mobilenet_v2 as mmdet_mobilenet_v2  # noqa: E402
from mmdet.models.backbones import resnet as mmdet_resnet  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmseg.models.backbones import mobilenet_v2 as mmseg_mobilenet_v2  # noqa: E402
from mmseg.models.backbones import mobilenet_v3 as mmseg_mobilenet_v3  # noqa: E402
from mmseg.models.backbones import resnet as mmseg_resnet  # noqa: E402

BACKBONES = {"mmdet": {"ResNet": mmdet_resnet.ResNet, "MobileNetV2": mmdet_mobilenet_v2.MobileNetV2,
                       "EfficientNet": mmdet_efficientnet.EfficientNet},
             "mmseg": {"ResNet": mmseg_resnet.ResNet, "MobileNetV2": mmseg_mobilenet_v2.MobileNetV2,
                       "MobileNetV3": mmseg_mobilenet_v3.MobileNetV3}}
RESNETS = ["resnet18", "resnet34", "resnet50"]
PAIRS = {"mmdet": RESNETS + ["mobilenet_v2", "efficientnet_b0"],
         "mmseg": RESNETS + ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]}
ALL = RESNETS + ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0"]


def torchvision_features(arch, model, x):
    """torchvision's map that the backbone's last output is: layer4 / features (mmseg's
    MobileNetV2 has no 1280-wide last convolution: features[:18])."""
    if arch.startswith("resnet"):
        return torch.nn.Sequential(*list(model.children())[:-2])(x)
    return model.features(x)


def undilate_mobilenet_v3(backbone, arch):
    """mmseg's MobileNetV3 turns two strides into dilations; put torchvision's back."""
    for m in backbone.modules():
        if isinstance(m, torch.nn.Conv2d) and m.dilation != (1, 1):
            m.dilation = (1, 1)
            if type(m).__name__ != "Conv2dAdaptivePadding":  # that one pads in forward()
                m.padding = ((m.kernel_size[0] - 1) // 2,) * 2
    for name in (["layer4", "layer9"] if arch.endswith("small") else ["layer7", "layer13"]):
        getattr(backbone, name).depthwise_conv.conv.stride = (2, 2)


def relative_error(a, b):
    return float((a - b).abs().max() / (b.abs().max() + 1e-12))


# The README's table: | `arch` | mmdet | mmseg | with `Type` or "no".
rows = {}
for line in (SOURCE / "README.md").read_text().splitlines():
    m = re.match(r"^\| `(\w+)` \| (`\w+`|no) \| (`\w+`|no) \|$", line)
    if m:
        rows[m.group(1)] = (m.group(2).strip("`"), m.group(3).strip("`"))

x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
x97 = torch.randn(2, 3, 97, 97, generator=torch.Generator().manual_seed(0))
MMLogger.get_instance("openmmlab_layout_test", log_level="WARNING")  # not a line per loaded tensor
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    os.chdir(tmp)  # the config snippets name the weights file relative to it
    types_seen = {}
    for layout, archs in PAIRS.items():
        for arch in ALL:
            out = tmp / f"{arch}_{layout}.pth"
            if arch not in archs:
                done = subprocess.run([LGD, "export", "--arch", arch, "--init", "random", "--layout", layout,
                                       "-o", out], capture_output=True, text=True)
                lines = done.stderr.strip().splitlines()
                check(f"{layout} {arch}: refused with exit 2, naming the backbones that exist",
                      done.returncode == 2 and len(lines) == 1 and all(a in lines[0] for a in archs),
                      f"exit {done.returncode}: {done.stderr.strip()}")
                types_seen.setdefault(arch, {})[layout] = "no"
                continue
            tv = tmp / f"{arch}_tv.pth"
            lgd("export", "--arch", arch, "--init", "random", "--seed", 0, "-o", tv)
            log = lgd("export", "--arch", arch, "--init", "random", "--seed", 0, "--layout", layout, "-o", out)
            config = Config.fromfile(str(out.with_suffix(".py")))
            spec = dict(config.model.backbone)
            kind = spec.pop("type")
            types_seen.setdefault(arch, {})[layout] = kind
            check(f"{layout} {arch}: the export names the backbone {kind}", f"keys of {layout}'s {kind})" in log,
                  log.strip())
            weights = torch.load(out, weights_only=True)

            strict = BACKBONES[layout][kind](**spec)
            try:
                strict.load_state_dict(weights, strict=True)
                check(f"{layout} {arch}: loads into {kind} with strict=True", True)
            except RuntimeError as e:
                check(f"{layout} {arch}: loads into {kind} with strict=True", False, str(e)[:1500])
                continue

            backbone = BACKBONES[layout][kind](**spec)
            backbone.init_weights()  # mmengine's Pretrained init, from the snippet's init_cfg
            state = backbone.state_dict()
            same = all(torch.equal(state[k], v) for k, v in weights.items())
            check(f"{layout} {arch}: the config snippet builds {kind} and init_weights() loads the file",
                  same and spec["init_cfg"]["checkpoint"] == out.name)

            backbone.eval()
            size = x
            if kind == "MobileNetV3":
                undilate_mobilenet_v3(backbone, arch)
                backbone.out_indices = (16,) if arch.endswith("large") else (12,)  # the last layer
                size = x97
            reference = getattr(torchvision.models, arch)().eval()
            reference.load_state_dict(torch.load(tv, weights_only=True), strict=False)
            with torch.no_grad():
                got = backbone(size)
                got = got[-1] if isinstance(got, (tuple, list)) else got
                want = torchvision_features(arch, reference, size)
                if layout == "mmseg" and arch == "mobilenet_v2":
                    want = reference.features[:18](size)
            err = relative_error(got, want) if got.shape == want.shape else float("inf")
            check(f"{layout} {arch}: {kind} computes torchvision's features ({err:.1e} relative)", err < 1e-5,
                  f"{tuple(got.shape)} vs {tuple(want.shape)}, {err:.3e}")

            # Read back by lgd: the layout recognised from the keys, torchvision's keys out.
            back = tmp / f"{arch}_{layout}_back.pth"
            done = subprocess.run([LGD, "export", "--arch", arch, "--weights", out, "-o", back],
                                  capture_output=True, text=True)
            if layout == "mmseg" and arch == "mobilenet_v2":  # no features.18, which lgd's student has
                lines = done.stderr.strip().splitlines()
                check(f"{layout} {arch}: read back, refused in one line naming the missing features.18",
                      done.returncode != 0 and len(lines) == 1 and "features.18" in lines[0], done.stderr.strip())
                continue
            if done.returncode != 0:
                check(f"{layout} {arch}: lgd reads the export back", False, done.stderr.strip())
                continue
            back_sd, tv_sd = torch.load(back, weights_only=True), torch.load(tv, weights_only=True)
            dropped = [k for k in tv_sd if k not in back_sd]
            expect_dropped = [k for k in tv_sd if k.startswith(("fc.", "classifier."))]
            check(f"{layout} {arch}: lgd reads the export back as torchvision's weights",
                  all(torch.equal(back_sd[k], v) for k, v in tv_sd.items() if k in back_sd)
                  and sorted(dropped) == sorted(expect_dropped), f"dropped {dropped}")

    # The training mean / std, recorded in the weights, go into the data preprocessor (0-255, RGB).
    st = tmp / "with_metadata.safetensors"
    reference = torchvision.models.resnet18()
    safetensors_torch.save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(st),
                                metadata={"image_mean": "0.5,0.45,0.4", "image_std": "0.25,0.2,0.3",
                                          "image_size": "224", "teacher": "t"})
    lgd("export", "--arch", "resnet18", "--weights", st, "--layout", "mmdet", "-o", tmp / "r18_norm.pth")
    pre = Config.fromfile(str(tmp / "r18_norm.py")).model.data_preprocessor
    check("the training mean / std in 0-255 units, RGB", list(pre.mean) == [127.5, 114.75, 102.0]
          and list(pre.std) == [63.75, 51.0, 76.5] and pre.bgr_to_rgb is True, str(pre))

    check("the README's OpenMMLab table lists the backbones this test checks",
          rows == {arch: (t.get("mmdet"), t.get("mmseg")) for arch, t in types_seen.items()},
          f"README: {rows}\ntest: {types_seen}")
    print(f"{len(failures)} failure(s)" if failures else "all mmdet / mmseg layout checks passed")
sys.exit(1 if failures else 0)
