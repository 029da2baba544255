#!/usr/bin/env python3
"""The reference's LGKA update (a Python loop over classes, one host sync per class) timed
on the same sizes as `lgd bench vsb`; prints one JSON object.

usage: vsb_reference.py [--classes 1000] [--dim 1024] [--batch 256] [--iters 10] [--device cpu]
"""
import argparse
import json
import time

import torch


def update(Q, init, keys, tsb, m, assign=None):
    if assign is None:
        assign = (keys @ tsb).argmax(1)
    for c in range(Q.shape[1]):
        idx = assign == c
        if idx.sum() > 0:  # host synchronisation, as in the reference
            z = keys[idx].mean(0)
            if init[c]:
                Q[:, c] = m * Q[:, c] + (1 - m) * z
            else:
                Q[:, c] = z
                init[c] = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device(a.device)
    tsb = torch.nn.functional.normalize(torch.randn(a.dim, a.classes), dim=0).to(dev)
    Q = torch.nn.functional.normalize(torch.randn(a.dim, a.classes), dim=0).to(dev)
    init = torch.zeros(a.classes, dtype=torch.bool, device=dev)
    keys = [torch.nn.functional.normalize(torch.randn(a.batch, a.dim), dim=1).to(dev) for _ in range(8)]
    with torch.no_grad():
        for i in range(2):
            update(Q, init, keys[i], tsb, 0.999)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(a.iters):
            update(Q, init, keys[i % 8], tsb, 0.999)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1000 / a.iters
        assigned = [(k @ tsb).argmax(1) for k in keys]
        t0 = time.perf_counter()
        for i in range(a.iters):
            update(Q, init, keys[i % 8], tsb, 0.999, assigned[i % 8])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        ms_loop = (time.perf_counter() - t0) * 1000 / a.iters
    print(json.dumps({"impl": "reference loop", "device": a.device, "classes": a.classes,
                      "dim": a.dim, "batch": a.batch, "threads": torch.get_num_threads(),
                      "ms_per_update": round(ms, 4),
                      "ms_per_update_after_assignment": round(ms_loop, 4)}))


if __name__ == "__main__":
    main()
