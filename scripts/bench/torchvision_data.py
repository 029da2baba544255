#!/usr/bin/env python3
"""torchvision's data pipeline on the same folder and views as `lgd bench data`.

usage: torchvision_data.py FOLDER [--workers N] [--batch-size 256] [--batches 8] [--warmup 1]
                           [--view mocov2|eval] [--blur pil|torchvision]

ImageFolder (PIL loader) + the reference's MoCo v2 transforms (RandomResizedCrop(224, scale
0.2-1), RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), p=0.8), RandomGrayscale(0.2), GaussianBlur
sigma 0.1-2 with p=0.5, RandomHorizontalFlip, ToTensor, Normalize) + DataLoader with N worker
processes, shuffle and drop_last. The blur is MoCo's PIL ImageFilter.GaussianBlur (the
reference's, and the faster choice for torchvision) unless --blur torchvision. Prints one
JSON object.
"""
import argparse
import json
import random
import time

import torch
import torchvision.transforms as T
from PIL import ImageFilter
from torchvision.datasets import ImageFolder

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class PilGaussianBlur:
    """MoCo v2's blur: PIL's GaussianBlur with radius = sigma drawn from [0.1, 2]."""

    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, x):
        return x.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--view", choices=["mocov2", "eval"], default="mocov2")
    ap.add_argument("--blur", choices=["pil", "torchvision"], default="pil")
    args = ap.parse_args()
    normalize = T.Normalize(CLIP_MEAN, CLIP_STD)
    if args.view == "mocov2":
        blur = PilGaussianBlur() if args.blur == "pil" else T.GaussianBlur(23, (0.1, 2.0))
        tf = T.Compose([
            T.RandomResizedCrop(args.size, scale=(0.2, 1.0)),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([blur], p=0.5),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            normalize,
        ])
    else:
        tf = T.Compose([T.Resize(round(args.size * 256 / 224)), T.CenterCrop(args.size),
                        T.ToTensor(), normalize])
    ds = ImageFolder(args.folder, tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True,
                                         num_workers=args.workers, drop_last=True,
                                         persistent_workers=args.workers > 0)
    it = iter(loader)

    def next_batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            it = iter(loader)
            return next(it)

    for _ in range(args.warmup):
        next_batch()
    t0 = time.perf_counter()
    images = 0
    for _ in range(args.batches):
        images += next_batch()[0].shape[0]
    seconds = time.perf_counter() - t0
    rate = images / seconds
    print(json.dumps({"pipeline": "torchvision", "view": args.view, "blur": args.blur,
                      "workers": args.workers, "batch_size": args.batch_size, "images": images,
                      "seconds": round(seconds, 3), "images_per_s": round(rate, 1),
                      "images_per_s_per_worker": round(rate / max(1, args.workers), 1)}))


if __name__ == "__main__":
    main()
