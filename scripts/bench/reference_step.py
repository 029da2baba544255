#!/usr/bin/env python3
"""The LGD training step in PyTorch, for comparison with `lgd bench train`: the same teacher
bundle (TorchScript image tower), the same student (torchvision's), the same head, loss, SGD
step and VSB update, on the same synthetic uint8 batch, with the same thread count.

    python3 scripts/bench/train_step.py --teacher DIR [--arch resnet18] [--batch 32]
        [--classes 10] [--threads N] [--steps 10] [--warmup 3] [--vsb loop|vectorised]

--vsb loop is the reference implementation's per-class update (one host sync per class on
a GPU); vectorised is index_add_ based, as lgd does it. Prints one JSON object.
"""
import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
import yaml

from vsb_reference import update as reference_update  # the reference's per-class loop

TAU_S, TAU_T, ALPHA, M = 0.2, 0.01, 0.5, 0.999


def soft_ce(zs, zt):
    return -(zt.softmax(1) * zs.log_softmax(1)).sum(1).mean()


def vsb_loop(Q, init, keys, tsb):
    reference_update(Q, init, keys, tsb, M)


def vsb_vectorised(Q, init, keys, tsb):
    a = (keys @ tsb).argmax(1)
    C = Q.shape[1]
    counts = torch.zeros(C).index_add_(0, a, torch.ones(len(a)))
    sums = torch.zeros(C, Q.shape[0]).index_add_(0, a, keys)
    got = counts > 0
    z = sums / counts.clamp(min=1).unsqueeze(1)
    blend = torch.where(init.unsqueeze(1), M * Q.t() + (1 - M) * z, z)
    Q.copy_(torch.where(got.unsqueeze(1), blend, Q.t()).t())
    init |= got


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--vsb", choices=["loop", "vectorised"], default="loop")
    p.add_argument("--no-channels-last", action="store_true",
                   help="keep the student in NCHW (lgd's train.channels_last: false)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    manifest = yaml.safe_load((Path(a.teacher) / "lgd_teacher.yaml").read_text())
    S, D = manifest["image"]["size"], manifest["embed_dim"]
    teacher = torch.jit.load(str(Path(a.teacher) / manifest["image"]["file"])).eval()
    for q in teacher.parameters():
        q.requires_grad_(False)
    mean = torch.tensor(manifest["image"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(manifest["image"]["std"]).view(1, 3, 1, 1)

    torch.manual_seed(0)
    student = getattr(torchvision.models, a.arch)()
    width = student.fc.in_features if hasattr(student, "fc") else student.classifier[-1].in_features
    if hasattr(student, "fc"):
        student.fc = torch.nn.Identity()
    else:
        student.classifier = torch.nn.Identity()
    head = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, D))
    if not a.no_channels_last:
        student = student.to(memory_format=torch.channels_last)
    params = list(student.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=a.lr * a.batch / 256, momentum=0.9, weight_decay=1e-4)
    student.train()
    head.train()
    tsb = F.normalize(torch.randn(D, a.classes), dim=0)
    Q = F.normalize(torch.randn(D, a.classes), dim=0)
    init = torch.zeros(a.classes, dtype=torch.bool)
    images = torch.randint(0, 256, (a.batch, S, S, 3), dtype=torch.uint8)
    update = vsb_loop if a.vsb == "loop" else vsb_vectorised

    phases = {"teacher": 0.0, "student": 0.0, "optimizer": 0.0, "update": 0.0}

    def step(timed=False):
        t0 = time.perf_counter()
        x = (images.permute(0, 3, 1, 2).float() / 255 - mean) / std  # channels_last, as lgd's
        if a.no_channels_last:
            x = x.contiguous()
        with torch.no_grad():
            t = F.normalize(teacher(x).float(), dim=1)
        t1 = time.perf_counter()
        s = F.normalize(head(student(x)), dim=1)
        zs = torch.cat([(s * t).sum(1, keepdim=True), s @ Q], 1) / TAU_S
        zt = torch.cat([(t * t).sum(1, keepdim=True), t @ Q], 1) / TAU_T
        loss = ALPHA * soft_ce(zs, zt) + (1 - ALPHA) * soft_ce(s @ tsb / TAU_S, t @ tsb / TAU_T)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        with torch.no_grad():
            update(Q, init, t, tsb)
        t4 = time.perf_counter()
        if timed:
            for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phases[k] += v

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step(timed=True)
    dt = (time.perf_counter() - t0) / a.steps
    print(json.dumps({"impl": f"pytorch {torch.__version__}", "vsb": a.vsb, "channels_last": not a.no_channels_last, "arch": a.arch, "batch": a.batch,
                      "image_size": S, "threads": torch.get_num_threads(), "steps": a.steps,
                      "step_ms": round(1000 * dt, 3), "images_per_s": round(a.batch / dt, 2),
                      **{f"{k}_ms": round(1000 * v / a.steps, 3) for k, v in phases.items()}}))


if __name__ == "__main__":
    main()
