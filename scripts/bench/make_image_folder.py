#!/usr/bin/env python3
"""Writes an ImageNet-like image folder for data-pipeline benchmarks.

usage: make_image_folder.py OUT_DIR [--classes 10] [--per-class 100] [--seed 0]

JPEGs at quality 90 of ImageNet's typical sizes (mostly 500x375 and 375x500, some 500x333
and 400x300), with varied content: smooth colour fields, shapes with hard edges, texture at
several scales and sensor-like noise, so that decoding and augmentation cost what they cost
on photographs rather than on flat images.
"""
import argparse
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZES = [(500, 375)] * 5 + [(375, 500)] * 3 + [(500, 333), (400, 300)]


def make_image(rng, w, h):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    colours = rng.uniform(0, 255, (4, 3)).astype(np.float32)
    u, v = xx / w, yy / h
    field = (colours[0] * ((1 - u) * (1 - v))[..., None] + colours[1] * (u * (1 - v))[..., None]
             + colours[2] * ((1 - u) * v)[..., None] + colours[3] * (u * v)[..., None])
    # Texture at a few scales: upsampled noise.
    for scale, amp in [(8, 30), (32, 20), (96, 12)]:
        small = rng.normal(0, amp, (max(1, h // scale), max(1, w // scale), 3)).astype(np.float32)
        tex = np.asarray(Image.fromarray(np.clip(small + 128, 0, 255).astype(np.uint8))
                         .resize((w, h), Image.BICUBIC)).astype(np.float32) - 128
        field += tex
    img = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(5, 20))):
        x0, y0 = int(rng.integers(-50, w)), int(rng.integers(-50, h))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse([x0, y0, x1, y1], fill=fill)
        elif kind == 1:
            draw.rectangle([x0, y0, x1, y1], fill=fill)
        else:
            draw.line([x0, y0, x1, y1], fill=fill, width=int(rng.integers(1, 12)))
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))
    arr = np.asarray(img).astype(np.int16) + rng.normal(0, 6, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    total = 0
    for c in range(args.classes):
        d = os.path.join(args.out, f"class_{c:03d}")
        os.makedirs(d, exist_ok=True)
        for i in range(args.per_class):
            path = os.path.join(d, f"img_{i:05d}.jpg")
            if not os.path.exists(path):
                w, h = SIZES[int(rng.integers(0, len(SIZES)))]
                make_image(rng, w, h).save(path, quality=90)
            total += 1
    print(f"{total} images in {args.classes} classes under {args.out}")


if __name__ == "__main__":
    main()
