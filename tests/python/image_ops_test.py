"""lgd's decoders, pixel ops and views against PIL and torchvision on the same input.

usage: image_ops_test.py IMAGE_OPS_TOOL

Decoding must equal PIL's Image.open(path).convert("RGB") (also at DCT-reduced scale, which
PIL reaches through draft()); every op must be within 2 intensity levels of torchvision's
functional op with the same parameters; a whole MoCo v2 view replayed from its draw with
torchvision ops must agree; RandomResizedCrop's random parameters must have the
distribution of torchvision's get_params.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image, ImageDraw
import torchvision.transforms as T
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

TOOL = sys.argv[1]
failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail else ""))
    if not ok:
        failures.append(name)


def test_image(w=500, h=375, seed=0):
    """Gradients, shapes and noise: varied colours, edges and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx * 255 / w, yy * 255 / h, 128 + 100 * np.sin((xx + yy) / 23.0)], -1)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(25):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, 200)), y0 + int(rng.integers(10, 150))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    arr = np.asarray(img).astype(np.int16) + rng.normal(0, 12, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def read_ppm(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def replay_colour(img, d):
    """A view's colour work from its draw `d`, by torchvision's ops (on a PIL image or a float
    tensor): the jitter ops in the drawn order, grayscale, Gaussian blur."""
    if d["jitter"]:
        for o in d["order"]:
            img = [lambda x: F.adjust_brightness(x, d["brightness"]),
                   lambda x: F.adjust_contrast(x, d["contrast"]),
                   lambda x: F.adjust_saturation(x, d["saturation"]),
                   lambda x: F.adjust_hue(x, d["hue"])][o](img)
    if d["grayscale"]:
        img = F.rgb_to_grayscale(img, 3)
    if d["blur"]:
        img = F.gaussian_blur(img, [d["kernel"]] * 2, [d["sigma"]] * 2)
    return img


def diff(a, b):
    a, b = np.asarray(a).astype(np.int16), np.asarray(b).astype(np.int16)
    if a.shape != b.shape:
        return None
    return int(np.abs(a - b).max())


with tempfile.TemporaryDirectory() as tmp:
    p = lambda name: os.path.join(tmp, name)
    src = test_image()
    src.save(p("src.png"))
    src.save(p("rgb.jpg"), quality=90)
    src.save(p("progressive.jpg"), quality=85, progressive=True)
    src.save(p("q444.jpg"), quality=95, subsampling=0)
    src.convert("L").save(p("grey.jpg"), quality=90)
    src.convert("CMYK").save(p("cmyk.jpg"), quality=90)
    src.save(p("src.bmp"))
    src.save(p("src.webp"), lossless=True)
    src.convert("L").save(p("grey.png"))
    big = test_image(1600, 1200, seed=1)
    big.save(p("big.jpg"), quality=90)

    cmds, expect = [], []  # expect: (name, out file, reference array, tolerance)

    def add(cmd, name, out, ref, tol):
        cmds.append(cmd)
        expect.append((name, out, ref, tol))

    # Decoding: equal to PIL. BMP and WebP when this build has OpenCV (-DLGD_WITH_OPENCV);
    # without it they must be refused with a line that says so.
    with open(p("formats.txt"), "w") as fh:
        fh.write(f"formats {p('formats.out')}\n")
    subprocess.run([TOOL, p("formats.txt")], check=True)
    other_formats = open(p("formats.out")).read().strip() == "1"
    if not other_formats:
        with open(p("bmp.txt"), "w") as fh:
            fh.write(f"decode {p('src.bmp')} {p('src.bmp.ppm')}\n")
        refused = subprocess.run([TOOL, p("bmp.txt")], capture_output=True, text=True)
        check("built without OpenCV: a BMP is refused with one line naming the file and the build option",
              refused.returncode != 0 and "src.bmp" in refused.stderr and "LGD_WITH_OPENCV" in refused.stderr,
              refused.stderr.strip())
    for f in ["src.png", "rgb.jpg", "progressive.jpg", "q444.jpg", "grey.jpg", "cmyk.jpg",
              "grey.png", "big.jpg"] + (["src.bmp", "src.webp"] if other_formats else []):
        add(f"decode {p(f)} {p(f + '.ppm')}", "decode " + f, p(f + ".ppm"),
            np.asarray(Image.open(p(f)).convert("RGB")), 0)
    for k in [1, 2, 3]:
        ref = Image.open(p("big.jpg"))
        ref.draft("RGB", (1600 // 2 ** k, 1200 // 2 ** k))
        add(f"decode {p('big.jpg')} {p(f'big{k}.ppm')} {k}", f"decode big.jpg at 1/{2 ** k}",
            p(f"big{k}.ppm"), np.asarray(ref.convert("RGB")), 0)

    img = src  # ops run on the lossless source
    i = 0

    def op(name, args, ref, tol=2):
        global i
        i += 1
        out = p(f"op{i}.ppm")
        add(f"{name} {p('src.png')} {out} {args}", f"{name} {args}", out, np.asarray(ref), tol)

    for top, left, h, w, ow, oh in [(10, 20, 300, 400, 224, 224), (50, 60, 100, 120, 224, 224),
                                    (0, 0, 375, 500, 160, 120), (100, 7, 33, 250, 64, 200)]:
        op("resized_crop", f"{top} {left} {h} {w} {ow} {oh}",
           F.resized_crop(img, top, left, h, w, [oh, ow], InterpolationMode.BILINEAR))
    for size, crop in [(256, 224), (146, 128), (600, 512)]:
        op("resize_short", f"{size} {crop}",
           F.center_crop(F.resize(img, size, InterpolationMode.BILINEAR), crop))
    for f in [0.0, 0.6, 1.0, 1.37]:
        op("brightness", f, F.adjust_brightness(img, f))
    for f in [0.6, 1.0, 1.4]:
        op("contrast", f, F.adjust_contrast(img, f))
    for f in [0.0, 0.6, 1.4]:
        op("saturation", f, F.adjust_saturation(img, f))
    for f in [-0.5, -0.1, -0.03, 0.0, 0.05, 0.1, 0.5]:
        op("hue", f, F.adjust_hue(img, f))
    op("grayscale", "", F.rgb_to_grayscale(img, 3))
    op("hflip", "", F.hflip(img))
    for k, s in [(3, 0.1), (7, 1.1), (13, 2.0)]:
        op("blur", f"{k} {s}", F.gaussian_blur(img, [k, k], [s, s]))

    # Whole views, replayed from their draws.
    views = []
    for n in range(12):
        out = p(f"view{n}.ppm")
        name = "mocov2" if n < 10 else ("linear" if n == 10 else "eval")
        cmds.append(f"view {p('rgb.jpg')} {out} {name} 224 7 {n // 5} {n}")
        views.append((name, out))

    # DCT-domain reduction: a large JPEG's eval view decoded at 1/4 stays close to the view
    # torchvision makes from the full-resolution decode.
    cmds.append(f"view {p('big.jpg')} {p('big_eval_reduced.ppm')} eval 224 0 0 0 1")

    # Random crop parameters.
    N = 20000
    for w, h, smin in [(500, 375, 0.2), (100, 1000, 0.08), (64, 64, 0.2)]:
        cmds.append(f"rrc_params {w} {h} {N} 3 {smin} 1.0 {p(f'rrc_{w}x{h}.txt')}")

    # The colour work on the device (data.photometric: device): one batch of mocov2 views at
    # 96 px, and the host's own views of the same samples.
    DEV = 32
    cmds.append(f"device_views {p('rgb.jpg')} {p('dev')} 96 11 0 {DEV}")
    for i in range(DEV):
        cmds.append(f"view {p('rgb.jpg')} {p(f'host{i}.ppm')} mocov2 96 11 0 {i}")

    with open(p("cmds.txt"), "w") as fh:
        fh.write("\n".join(cmds) + "\n")
    run = subprocess.run([TOOL, p("cmds.txt")], capture_output=True, text=True)
    if run.returncode != 0:
        print(run.stdout, run.stderr)
        sys.exit(1)
    draws = [json.loads(l) for l in run.stdout.splitlines() if l.startswith("{")]
    host_draws = draws[-DEV:]
    dev_draws = draws[-2 * DEV:-DEV]
    draws = draws[:-2 * DEV]

    for name, out, ref, tol in expect:
        got = read_ppm(out)
        d = diff(got, ref)
        check(name, d is not None and d <= tol,
              f"max |diff| {d}" if d is not None else f"shape {got.shape} vs {ref.shape}")

    reduced = draws[-1]
    draws = draws[:-1]
    got = read_ppm(p("big_eval_reduced.ppm"))
    ref = np.asarray(F.center_crop(F.resize(Image.open(p("big.jpg")).convert("RGB"), 256,
                                            InterpolationMode.BILINEAR), 224)).astype(np.int16)
    a = np.abs(got - ref)
    check(f"eval view of a 1600x1200 JPEG decoded at 1/{2 ** reduced['reduce_log2']}",
          reduced["reduce_log2"] == 2 and a.mean() < 2.0,
          f"mean |diff| {a.mean():.3f}, max {a.max()} against the full-resolution decode")

    rgb = Image.open(p("rgb.jpg")).convert("RGB")
    for (name, out), d in zip(views, draws):
        if name == "eval":
            ref = F.center_crop(F.resize(rgb, 256, InterpolationMode.BILINEAR), 224)
        else:
            top, left, h, w = d["crop"]
            ref = replay_colour(F.resized_crop(rgb, top, left, h, w, [224, 224], InterpolationMode.BILINEAR), d)
            if d["flip"]:
                ref = F.hflip(ref)
        got = read_ppm(out)
        a = np.abs(got - np.asarray(ref).astype(np.int16))
        frac = float((a > 2).mean())
        check(f"{name} view {out[-9:]} (jitter={d['jitter']} grey={d['grayscale']} "
              f"blur={d['blur']} flip={d['flip']})", a.max() <= 2,
              f"max |diff| {a.max()}, {100 * frac:.3f}% of values off by more than 2")

    # Device colour work: the same draws as the host view; the batch op equals torchvision's
    # tensor ops replayed per sample on the crop-and-flip view; and it lands within a few
    # intensity levels of the host's 8-bit view.
    check("device views draw what host views draw (crop, jitter order and factors, grey, blur, flip)",
          dev_draws == host_draws, f"{dev_draws[0]} vs {host_draws[0]}")
    check("the device batch mixes every case",
          any(d["jitter"] for d in dev_draws) and not all(d["jitter"] for d in dev_draws)
          and any(d["grayscale"] for d in dev_draws) and any(d["blur"] for d in dev_draws)
          and len({tuple(d["order"]) for d in dev_draws if d["jitter"]}) > 3)
    batch = torch.from_numpy(np.fromfile(p("dev.f32"), dtype=np.float32)).view(DEV, 3, 96, 96)
    worst_ref, worst_host, mean_host, excess = 0.0, 0, 0.0, -1e9
    for i, d in enumerate(dev_draws):
        geo = read_ppm(p(f"dev_{i}.ppm"))
        top, left, h, w = d["crop"]
        ref_geo = F.resized_crop(rgb, top, left, h, w, [96, 96], InterpolationMode.BILINEAR)
        if d["flip"]:
            ref_geo = F.hflip(ref_geo)
        if diff(geo, ref_geo) > 2:
            check(f"device view {i}: the loader's part is the crop and flip only", False,
                  f"max |diff| {diff(geo, ref_geo)}")
        ref = replay_colour(torch.from_numpy(geo.astype(np.float32) / 255).permute(2, 0, 1), d)
        worst_ref = max(worst_ref, float((batch[i] - ref).abs().max()))
        # Against the host's 8-bit view: as far apart as torchvision's own PIL and tensor
        # paths are on the same draw (8-bit HSV, integer contrast mean, rounding per op).
        host = read_ppm(p(f"host{i}.ppm")).astype(np.float64)
        dev = batch[i].permute(1, 2, 0).numpy().astype(np.float64) * 255
        a = np.abs(dev - host)
        tv_gap = np.abs(np.asarray(replay_colour(Image.fromarray(geo.astype(np.uint8)), d)).astype(np.float64)
                        - ref.permute(1, 2, 0).numpy() * 255)
        worst_host, mean_host = max(worst_host, float(a.max())), max(mean_host, float(a.mean()))
        excess = max(excess, float(a.max() - tv_gap.max()))
    check("device batch equals torchvision's tensor ops per sample", worst_ref < 2e-5,
          f"max |diff| {worst_ref:.2e} (values in [0, 1])")
    check("device batch as close to the host's 8-bit views as torchvision's tensor ops to its PIL ops",
          excess <= 3 and mean_host < 3.0,
          f"max |diff| {worst_host:.2f} levels (at most {excess:+.2f} beyond torchvision's own PIL/tensor "
          f"gap on that sample), worst sample mean {mean_host:.3f}")

    # RandomResizedCrop parameters: same distribution as torchvision's.
    torch.manual_seed(0)
    for w, h, smin in [(500, 375, 0.2), (100, 1000, 0.08), (64, 64, 0.2)]:
        ours = np.loadtxt(p(f"rrc_{w}x{h}.txt"))
        dummy = Image.new("RGB", (w, h))
        ref = np.array([T.RandomResizedCrop.get_params(dummy, [smin, 1.0], [3 / 4, 4 / 3])
                        for _ in range(N)], dtype=np.float64)
        for col, label in enumerate(["top", "left", "height", "width"]):
            a, b = ours[:, col], ref[:, col]
            se = math.sqrt(a.var() / N + b.var() / N) + 1e-9
            z = abs(a.mean() - b.mean()) / se
            check(f"rrc {w}x{h} {label}: mean {a.mean():.2f} vs torchvision {b.mean():.2f}",
                  z < 5, f"z = {z:.2f}")
        ours_full = float(((ours[:, 2] == h) & (ours[:, 3] == w)).mean())
        ref_full = float(((ref[:, 2] == h) & (ref[:, 3] == w)).mean())
        check(f"rrc {w}x{h}: whole-image fraction {ours_full:.4f} vs {ref_full:.4f}",
              abs(ours_full - ref_full) < 0.02)
        inside = ((ours[:, 0] >= 0) & (ours[:, 1] >= 0) & (ours[:, 0] + ours[:, 2] <= h)
                  & (ours[:, 1] + ours[:, 3] <= w)).all()
        check(f"rrc {w}x{h}: every crop inside the image", bool(inside))

print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
