"""lgd export --layout timm, loaded by timm itself: for each of the seven students, the export
loads into timm.create_model(<timm name>) with load_state_dict(strict=True) (with a classifier,
--num-classes 10; without one, MobileNetV3's conv_head is the one missing pair, as documented),
timm's own checkpoint loader reads the .safetensors export, and the timm model computes what
torchvision's model computes from lgd's torchvision export of the same weights (random
init, seed 0, eval mode): logits within 1e-4 relative. MobileNetV3 is created with
bn_eps=1e-3, torchvision's BatchNorm epsilon (timm's default is 1e-5). The export also carries
the metadata it promises (layout, timm model name). And the other way: timm's own weights of
each model, saved as safetensors, read by lgd (--weights, the layout recognised from the keys)
give torchvision the logits timm computes. Skipped where timm is not installed (the
Debian leg), required in the pip leg (LGD_REQUIRE_PYTHON_REFERENCES=1).

The README's compatibility table must list exactly these calls.

usage: timm_layout_test.py LGD SOURCE_DIR
"""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from references import optional  # noqa: E402
from safetensors_io import read_safetensors  # noqa: E402

timm = optional("timm")
st_torch = optional("safetensors.torch")
if timm is None or st_torch is None:
    print("skipped: timm or safetensors is not installed")
    sys.exit(77)

LGD, SOURCE = sys.argv[1], Path(sys.argv[2])
failures = []
STUDENTS = [  # lgd / torchvision name, timm name, timm keyword arguments
    ("resnet18", "resnet18", {}), ("resnet34", "resnet34", {}), ("resnet50", "resnet50", {}),
    ("mobilenet_v2", "mobilenetv2_100", {}),
    ("mobilenet_v3_large", "mobilenetv3_large_100", {"bn_eps": 1e-3}),
    ("mobilenet_v3_small", "mobilenetv3_small_100", {"bn_eps": 1e-3}),
    ("efficientnet_b0", "efficientnet_b0", {}),
]


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
    if not ok:
        failures.append(name)


def lgd(*args):
    done = subprocess.run([LGD, *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"FAIL lgd {' '.join(map(str, args))}: {done.stderr.strip()}")
    return done.stdout + done.stderr


def relative_error(a, b):
    return float((a - b).abs().max() / (b.abs().max() + 1e-12))


# The README's table: | `arch` | `torchvision.models.arch()` | `timm.create_model("name"[, kw=v])` |
rows = {}
for line in (SOURCE / "README.md").read_text().splitlines():
    m = re.match(r'^\| `(\w+)` \| `torchvision\.models\.(\w+)\(\)` \| `timm\.create_model\("(\w+)"(.*)\)` \|$', line)
    if m:
        kwargs = dict(kv.split("=") for kv in re.findall(r"(\w+=[\w.+-]+)", m.group(4)))
        rows[m.group(1)] = (m.group(2), m.group(3), {k: float(v) for k, v in kwargs.items()})
expected_rows = {arch: (arch, name, kwargs) for arch, name, kwargs in STUDENTS}
check("the README's compatibility table lists the calls this test checks", rows == expected_rows,
      f"README: {rows}\ntest: {expected_rows}")

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for arch, name, kwargs in STUDENTS:
        tv_path, timm_path, st_path = tmp / f"{arch}_tv.pth", tmp / f"{arch}_timm.pth", tmp / f"{arch}_timm.safetensors"
        lgd("export", "--arch", arch, "--init", "random", "--seed", 0, "--num-classes", 10, "-o", tv_path)
        log = lgd("export", "--arch", arch, "--init", "random", "--seed", 0, "--num-classes", 10, "--layout", "timm",
                  "-o", timm_path)
        check(f"{arch}: the export names timm's model", f"keys of timm's {name})" in log, log.strip())
        model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()
        try:
            result = model.load_state_dict(torch.load(timm_path, weights_only=True), strict=True)
            check(f"{arch}: loads into timm.create_model('{name}', num_classes=10) with strict=True", True)
        except RuntimeError as e:
            check(f"{arch}: loads into timm.create_model('{name}', num_classes=10) with strict=True", False, str(e)[:1500])
            continue
        reference = getattr(torchvision.models, arch)(num_classes=10).eval()
        reference.load_state_dict(torch.load(tv_path, weights_only=True), strict=True)
        with torch.no_grad():
            err = relative_error(model(x), reference(x))
        check(f"{arch}: timm's logits equal torchvision's ({err:.1e} relative)", err < 1e-4, f"{err:.3e}")

        # timm's own weights (its initialisation, saved as its hub files are: safetensors) read by
        # lgd, the layout recognised from the keys: torchvision then computes timm's logits.
        own, back = tmp / f"{arch}_timm_own.safetensors", tmp / f"{arch}_from_timm.pth"
        timm_own = timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()
        st_torch.save_file(timm_own.state_dict(), str(own))
        log = lgd("export", "--arch", arch, "--weights", own, "-o", back)
        tv_back = getattr(torchvision.models, arch)(num_classes=10).eval()
        tv_back.load_state_dict(torch.load(back, weights_only=True), strict=True)
        with torch.no_grad():
            err = relative_error(tv_back(x), timm_own(x))
        check(f"{arch}: timm's own weights read by lgd give timm's logits in torchvision ({err:.1e} relative)",
              err < 1e-4, f"{err:.3e}")

        # safetensors through timm's own loader, with the metadata lgd writes.
        lgd("export", "--arch", arch, "--init", "random", "--seed", 0, "--num-classes", 10, "--layout", "timm",
            "-o", st_path)
        fresh = timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()
        try:
            timm.models.load_checkpoint(fresh, str(st_path), strict=True)
            with torch.no_grad():
                same = torch.equal(fresh(x), model(x))
            check(f"{arch}: timm.models.load_checkpoint reads the .safetensors export", same)
        except Exception as e:  # noqa: BLE001 (any failure of timm's loader is the finding)
            check(f"{arch}: timm.models.load_checkpoint reads the .safetensors export", False, str(e)[:800])
        meta = read_safetensors(st_path)[1]
        check(f"{arch}: metadata names the layout and timm model",
              meta.get("layout") == "timm" and meta.get("model") == name and meta.get("arch") == arch, str(meta))

        # Without a classifier: timm's model with num_classes=0.
        backbone_path = tmp / f"{arch}_backbone.pth"
        lgd("export", "--arch", arch, "--init", "random", "--seed", 0, "--layout", "timm", "-o", backbone_path)
        headless = timm.create_model(name, pretrained=False, num_classes=0, **kwargs).eval()
        result = headless.load_state_dict(torch.load(backbone_path, weights_only=True), strict=False)
        expected_missing = ["conv_head.weight", "conv_head.bias"] if arch.startswith("mobilenet_v3") else []
        check(f"{arch}: without --num-classes, loads into num_classes=0 (missing: {expected_missing or 'nothing'})",
              sorted(result.missing_keys) == sorted(expected_missing) and not result.unexpected_keys,
              f"missing {result.missing_keys}, unexpected {result.unexpected_keys}")

    print(f"{len(failures)} failure(s)" if failures else "all timm layout checks passed")
sys.exit(1 if failures else 0)
