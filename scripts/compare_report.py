#!/usr/bin/env python3
"""Report of scripts/compare.sh: reads its runs and evaluations, prints the tables and writes
<docs>/RESULTS.md and <docs>/results/fmnist_val_zero_shot.png.

    python3 scripts/compare_report.py --runs runs/compare --teacher teachers/demo_fmnist \
        --docs docs --seeds 0 1 2
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
from pathlib import Path

METHODS = [  # (key, name in the tables, what it is)
    ("random", "random-init", "no training: a randomly initialised MobileNetV2"),
    ("seed", "SEED", "method.name=seed (teacher image keys, queue of 4,096)"),
    ("lgd_vis", "LGD VIS-only", "method.alpha=1 (L_VIS over the Visual Semantics Bank)"),
    ("lgd_tex", "LGD TEX-only", "method.alpha=0 (L_TEX over the Textual Semantics Bank)"),
    ("lgd", "LGD", "method.alpha=0.5 (the method)"),
]
PROTOCOLS = [("linear-fast", "linear-fast"), ("knn", "kNN"), ("zero-shot", "zero-shot"), ("finetune", "finetune")]


def fail(msg):
    print(f"compare_report: {msg}", file=sys.stderr)
    sys.exit(1)


def load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")


def spread(values):
    """'mean ± std (min-max)' with the sample standard deviation."""
    if not values:
        return ""
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {statistics.stdev(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def train_seconds(run):
    log = run / "train.log"
    if not log.exists():
        return None
    # "done: N steps in M:SS" or "H:MM:SS" (core/progress.h's duration format)
    m = re.search(r"done: \d+ steps in ([\d:]+)", log.read_text())
    if not m:
        return None
    seconds = 0
    for part in m[1].split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def val_curve(run):
    curve = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("kind") == "val":
            curve.append((r["step"], r["student_top1"], r["teacher_top1"]))
    return curve


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--docs", required=True)
    ap.add_argument("--seeds", nargs="+", type=int, required=True)
    ap.add_argument("--command", default="scripts/compare.sh")
    ap.add_argument("--finetune", default="", help="the finetune options compare.sh gave lgd eval")
    a = ap.parse_args()
    runs, seeds = Path(a.runs), a.seeds

    teacher = load_json(Path(a.teacher) / "demo_teacher.json")
    # top1[method][protocol] = [value per seed]
    top1 = {k: {p: [] for p, _ in PROTOCOLS} for k, _, _ in METHODS}
    curves, seconds, subset = {}, {}, None
    for k, _, _ in METHODS:
        for s in seeds:
            res = load_json(runs / f"eval_{k}_s{s}" / "results.json")
            # "10%/seed 0/6000 samples": the percentage and the sample count are the same for every seed
            parts = res["dataset"]["subset"].split("/")
            subset = f"{parts[0]} ({parts[-1]})" if len(parts) == 3 else res["dataset"]["subset"]
            finetuned = load_json(runs / f"finetune_{k}_s{s}" / "results.json")
            if finetuned["dataset"]["subset"] != res["dataset"]["subset"]:
                fail(f"finetune_{k}_s{s} learnt from {finetuned['dataset']['subset']}, eval_{k}_s{s} from "
                     f"{res['dataset']['subset']}")
            for r in res["results"] + finetuned["results"]:
                if r["protocol"] in top1[k]:
                    top1[k][r["protocol"]].append(r["top1"])
            if k != "random":
                run = runs / f"{k}_s{s}"
                curves.setdefault(k, []).append(val_curve(run))
                t = train_seconds(run)
                if t is not None:
                    seconds.setdefault(k, []).append(t)
    steps = max((c[-1][0] for cs in curves.values() for c in cs if c), default=0)
    teacher_val = next((c[-1][2] for cs in curves.values() for c in cs if c), None)

    def mean(k, p):
        v = top1[k][p]
        return statistics.fmean(v) if v else None

    # The findings the issue asks about, stated from the numbers.
    def versus(a_key, b_key, p):
        va, vb = top1[a_key][p], top1[b_key][p]
        if not va or not vb:
            return None
        d = statistics.fmean(va) - statistics.fmean(vb)
        wins = sum(x > y for x, y in zip(va, vb))
        return d, wins, len(va)

    names = {k: n for k, n, _ in METHODS}
    findings = []
    for (x, y, p) in [("lgd", "seed", "linear-fast"), ("lgd", "random", "linear-fast"),
                      ("lgd", "seed", "zero-shot"), ("lgd", "seed", "knn"), ("lgd", "random", "knn"),
                      ("lgd", "seed", "finetune"), ("lgd", "random", "finetune")]:
        v = versus(x, y, p)
        if v is None:
            continue
        d, wins, n = v
        verdict = "ahead of" if d > 0 and wins == n else ("ahead on the mean of" if d > 0 else "NOT ahead of")
        findings.append(f"- {p}: {names[x]} is **{verdict}** {names[y]}: {mean(x, p):.2f} against "
                        f"{mean(y, p):.2f} ({d:+.2f} points on the mean; higher in {wins} of {n} seeds).")

    header = "| method | " + " | ".join(n for _, n in PROTOCOLS) + " |"
    rule = "| --- | " + " | ".join("---:" for _ in PROTOCOLS) + " |"
    table = [header, rule]
    for k, n, _ in METHODS:
        cells = [spread(top1[k][p]) if top1[k][p] else "(no head)" for p, _ in PROTOCOLS]
        table.append(f"| {n} | " + " | ".join(cells) + " |")
    table.append(f"| demo teacher (its script's measurement) | {teacher['linear_probe_top1']:.2f} (linear probe, "
                 f"all labels) | | {teacher['zero_shot_top1']:.2f} | |")

    per_seed = ["| method | seed | " + " | ".join(n for _, n in PROTOCOLS) + " | training |",
                "| --- | ---: | " + " | ".join("---:" for _ in PROTOCOLS) + " | ---: |"]
    for k, n, _ in METHODS:
        for i, s in enumerate(seeds):
            cells = [f"{top1[k][p][i]:.2f}" if i < len(top1[k][p]) else "" for p, _ in PROTOCOLS]
            t = seconds.get(k, [])
            tt = f"{t[i] // 60}:{t[i] % 60:02d}" if i < len(t) else ""
            per_seed.append(f"| {n} | {s} | " + " | ".join(cells) + f" | {tt} |")

    print(f"Fashion-MNIST test set (10,000 images), top-1 %, mean ± sample std (min-max) over seeds "
          f"{', '.join(map(str, seeds))}; linear-fast and kNN learn from {subset} of the labels\n")
    print("\n".join(table))
    print()
    print("\n".join(findings))

    # The plot: validation zero-shot accuracy over training, mean over seeds with the min-max band.
    docs = Path(a.docs)
    (docs / "results").mkdir(parents=True, exist_ok=True)
    png = docs / "results" / "fmnist_val_zero_shot.png"
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for k, n, _ in METHODS:
        cs = [c for c in curves.get(k, []) if c]
        if not cs:
            continue
        xs = [st for st, _, _ in cs[0]]
        rows = [[v for _, v, _ in c] for c in cs if [st for st, _, _ in c] == xs]
        cols = list(zip(*rows))
        m = [statistics.fmean(c) for c in cols]
        ax.plot(xs, m, marker="o", markersize=3, label=n)
        if len(rows) > 1:
            ax.fill_between(xs, [min(c) for c in cols], [max(c) for c in cols], alpha=0.2)
    if teacher_val is not None:
        ax.axhline(teacher_val, color="gray", linestyle="--", linewidth=1, label="teacher")
    ax.set_xlabel("optimiser step (128 images)")
    ax.set_ylabel("validation zero-shot top-1 (%)")
    ax.set_title(f"Student zero-shot on Fashion-MNIST test, mean of {len(seeds)} seeds (band: min-max)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png)
    print(f"\nwrote {png}")

    total_train = sum(sum(v) for v in seconds.values())
    md = [
        "# Results: LGD against its baselines on Fashion-MNIST",
        "",
        f"Written by `{a.command}` (scripts/compare_report.py) on {datetime.date.today().isoformat()}, "
        f"{os.cpu_count()} cores ({platform.machine()}, CPU); every number below is the script's output. "
        "Run it again to reproduce them: the training and the evaluation are deterministic for a given "
        "seed and thread count.",
        "",
        "## Set-up",
        "",
        f"- Teacher: the demo teacher of `scripts/make_demo_teacher.py` ({a.teacher}), a small CLIP-style "
        f"model trained on Fashion-MNIST: zero-shot {teacher['zero_shot_top1']:.2f}%, linear probe "
        f"{teacher['linear_probe_top1']:.2f}% by its own script"
        + (f"; {teacher_val:.2f}% zero-shot through lgd's validation (32 px student view)" if teacher_val else "")
        + ".",
        "- Student: MobileNetV2 at 32 px, randomly initialised, `configs/demo/fashion_mnist_lgd.yaml`: "
        f"{steps} optimiser steps of 128 images, SGD lr 0.3 x 128/256, cosine, MoCo-v2 augmentation; "
        "only the method changes between rows.",
        "- Methods: " + "; ".join(f"**{n}**: {d}" for _, n, d in METHODS) + ".",
        f"- Seeds {', '.join(map(str, seeds))}: seed s trains with `run.seed=s` and evaluates with `--seed s` "
        "(which 10% of the labels, the hold-out split, the random init).",
        f"- Evaluation: `lgd eval --protocol linear-fast,knn,zero-shot --subset 10` on the 10,000 test "
        f"images; linear-fast and kNN learn from {subset} of the 60,000 training labels; zero-shot "
        "needs the projection head, which the random init has not got.",
        f"- Fine-tuning: `lgd eval --protocol finetune --subset 10 {a.finetune}`: the whole student and a "
        "new linear classifier trained end to end on the same labels (SGD with Nesterov momentum 0.9, "
        "the two learning rates x batch/256, cosine to 0 per step, BatchNorm in training mode, "
        "RandomResizedCrop + flip), scored on the 10,000 test images.",
        "",
        "## Top-1 accuracy (%)",
        "",
        "Mean ± sample standard deviation (min-max) over the seeds.",
        "",
        *table,
        "",
        "## What the numbers say",
        "",
        *findings,
        "",
        "## Validation zero-shot accuracy over training",
        "",
        f"![validation zero-shot top-1 over training](results/{png.name})",
        "",
        "The student's zero-shot top-1 on the 10,000 test images, measured by `lgd train` "
        "(`train.val_every_steps`), mean over the seeds, the band spanning their minimum and maximum.",
        "",
        "## Every seed",
        "",
        *per_seed,
        "",
        f"Training time in all: {total_train // 3600}:{total_train % 3600 // 60:02d}:{total_train % 60:02d} "
        "(the train.log of each run). Training times are wall-clock and move with whatever else the "
        "machine was running; the accuracies do not (same seed and threads, same numbers).",
        "",
    ]
    out = docs / "RESULTS.md"
    # The teacher-cache section (scripts/views_report.py) is kept as it is.
    old = out.read_text() if out.exists() else ""
    begin, end = "<!-- teacher cache: begin -->", "<!-- teacher cache: end -->"
    if begin in old and end in old:
        md += [begin + old.split(begin, 1)[1].split(end, 1)[0] + end, ""]
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(md))
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
