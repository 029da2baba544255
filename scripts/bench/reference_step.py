#!/usr/bin/env python3
"""The reference LGD training step in PyTorch, written from ../shared/DESIGN.md, for a
like-for-like comparison with `lgd bench train`: the same teacher bundle (its TorchScript
image tower), a torchvision student, the MLP head Linear(F,F)-ReLU-Linear(F,D), the soft
cross-entropies over [positive, VSB] and the TSB, SGD (momentum 0.9, weight decay 1e-4) and
the VSB update after the step, on one synthetic uint8 batch normalised on the device.

As the reference does it by default: the VSB update loops over the classes in Python with a
host synchronisation per class (--vsb loop; `vectorised` is lgd's index_add_ form), and on a
GPU the step runs under float16 autocast with a GradScaler (--amp fp16; bf16 and off too).

    python3 scripts/bench/reference_step.py --teacher DIR [--arch resnet18] [--batch 32]
        [--classes 10] [--device cpu|cuda] [--amp fp16|bf16|off] [--threads N] [--steps 10]
        [--warmup 3] [--vsb loop|vectorised] [--no-channels-last] [--flops]

Prints one JSON object: images/s, milliseconds per step and per phase (teacher forward,
student forward + backward, optimiser, VSB update; phases from a second pass that
synchronises between them) and, with --flops, the FLOPs of one step counted by
torch.utils.flop_counter (PyTorch 2.1 or later).
"""
import argparse
import contextlib
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
    counts = torch.zeros(C, device=Q.device).index_add_(0, a, torch.ones(len(a), device=Q.device))
    sums = torch.zeros(C, Q.shape[0], device=Q.device).index_add_(0, a, keys)
    got = counts > 0
    z = sums / counts.clamp(min=1).unsqueeze(1)
    blend = torch.where(init.unsqueeze(1), M * Q.t() + (1 - M) * z, z)
    Q.copy_(torch.where(got.unsqueeze(1), blend, Q.t()).t())
    init |= got


def strip_classifier(net):
    """torchvision model -> (trunk with the classifier removed, pooled feature width)."""
    if hasattr(net, "fc"):
        width = net.fc.in_features
        net.fc = torch.nn.Identity()
    else:
        width = net.classifier[-1].in_features
        net.classifier = torch.nn.Identity()
    return net, width


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["fp16", "bf16", "off"], default=None,
                   help="autocast dtype (default: fp16 with a GradScaler on CUDA, off on a CPU)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--vsb", choices=["loop", "vectorised"], default="loop")
    p.add_argument("--no-channels-last", action="store_true",
                   help="keep the student in NCHW (lgd's train.channels_last: false)")
    p.add_argument("--flops", action="store_true", help="count one step's FLOPs (torch.utils.flop_counter)")
    p.add_argument("--trace", help="also write a Chrome trace (torch.profiler: operators, and CUDA kernels on a "
                                    "GPU) of --trace-steps more steps after the timed ones, as lgd bench train --trace")
    p.add_argument("--trace-steps", type=int, default=3)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    amp = a.amp or ("fp16" if cuda else "off")
    if amp != "off" and not cuda:
        raise SystemExit("reference_step.py: --amp needs --device cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    manifest = yaml.safe_load((Path(a.teacher) / "lgd_teacher.yaml").read_text())
    S, D = manifest["image"]["size"], manifest["embed_dim"]
    teacher = torch.jit.load(str(Path(a.teacher) / manifest["image"]["file"]), map_location=dev).eval()
    for q in teacher.parameters():
        q.requires_grad_(False)
    mean = torch.tensor(manifest["image"]["mean"], device=dev).view(1, 3, 1, 1)
    std = torch.tensor(manifest["image"]["std"], device=dev).view(1, 3, 1, 1)

    torch.manual_seed(0)
    student, width = strip_classifier(getattr(torchvision.models, a.arch)())
    head = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, D))
    student, head = student.to(dev), head.to(dev)
    if not a.no_channels_last:
        student = student.to(memory_format=torch.channels_last)
    params = list(student.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=a.lr * a.batch / 256, momentum=0.9, weight_decay=1e-4)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
    scaler = torch.cuda.amp.GradScaler() if amp == "fp16" else None
    student.train()
    head.train()
    tsb = F.normalize(torch.randn(D, a.classes), dim=0).to(dev)
    Q = F.normalize(torch.randn(D, a.classes), dim=0).to(dev)
    init = torch.zeros(a.classes, dtype=torch.bool, device=dev)
    images = torch.randint(0, 256, (a.batch, S, S, 3), dtype=torch.uint8)
    if cuda:
        images = images.pin_memory()
    update = vsb_loop if a.vsb == "loop" else vsb_vectorised

    phases = {"teacher": 0.0, "student": 0.0, "optimizer": 0.0, "update": 0.0}

    def autocast():
        return torch.autocast(dev.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    def step(timed=False):
        if timed:
            sync()
        t0 = time.perf_counter()
        x = images.to(dev, non_blocking=True).permute(0, 3, 1, 2).float().div_(255).sub_(mean).div_(std)
        if a.no_channels_last:
            x = x.contiguous()
        with torch.no_grad(), autocast():
            t = F.normalize(teacher(x).float(), dim=1)
        if timed:
            sync()
        t1 = time.perf_counter()
        with autocast():
            s = head(student(x))
        s = F.normalize(s.float(), dim=1)
        zs = torch.cat([(s * t).sum(1, keepdim=True), s @ Q], 1) / TAU_S
        zt = torch.cat([(t * t).sum(1, keepdim=True), t @ Q], 1) / TAU_T
        loss = ALPHA * soft_ce(zs, zt) + (1 - ALPHA) * soft_ce(s @ tsb / TAU_S, t @ tsb / TAU_T)
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        if timed:
            sync()
        t2 = time.perf_counter()
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if timed:
            sync()
        t3 = time.perf_counter()
        with torch.no_grad():
            update(Q, init, t, tsb)
        if timed:
            sync()
        t4 = time.perf_counter()
        if timed:
            for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phases[k] += v

    for _ in range(a.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    dt = (time.perf_counter() - t0) / a.steps
    for _ in range(a.steps):
        step(timed=True)
    out = {"impl": f"pytorch {torch.__version__}", "device": str(dev), "amp": amp, "vsb": a.vsb,
           "channels_last": not a.no_channels_last, "arch": a.arch, "teacher": manifest.get("name", ""),
           "batch": a.batch, "image_size": S, "threads": torch.get_num_threads(), "steps": a.steps,
           "step_ms": round(1000 * dt, 3), "images_per_s": round(a.batch / dt, 2),
           **{f"{k}_ms": round(1000 * v / a.steps, 3) for k, v in phases.items()}}
    if cuda:
        out["gpu"] = torch.cuda.get_device_name(dev)
    if a.trace:
        from torch.profiler import ProfilerActivity, profile
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            for _ in range(a.trace_steps):
                step()
            sync()
        prof.export_chrome_trace(a.trace)
    if a.flops:
        try:
            from torch.utils.flop_counter import FlopCounterMode
        except ImportError:
            raise SystemExit(f"reference_step.py: --flops needs torch.utils.flop_counter (PyTorch 2.1 or later; "
                             f"this is {torch.__version__})")
        with FlopCounterMode(display=False) as counter:
            step()
        out["step_flops"] = counter.get_total_flops()
        out["achieved_tflops"] = round(out["step_flops"] / dt / 1e12, 2)
        if cuda:  # the GPU's measured matrix throughput in the step's dtype
            n = 8192
            m = torch.randn(n, n, device=dev, dtype=dtype or torch.float32)
            for _ in range(3):
                m @ m
            sync()
            t0 = time.perf_counter()
            for _ in range(20):
                m @ m
            sync()
            out["matmul_tflops"] = round(20 * 2 * n ** 3 / (time.perf_counter() - t0) / 1e12, 1)
            out["fraction_of_matmul"] = round(out["achieved_tflops"] / out["matmul_tflops"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
