#!/usr/bin/env python3
"""The teacher-cache section of docs/RESULTS.md from the runs of scripts/compare_views.sh.

usage: views_report.py --runs DIR --docs DIR --seeds 0 1 2 --view-counts 1 2 4 --epochs 4 --limit 12000

Reads DIR/eval_<run>/results.json and DIR/<run>/train.log for the runs none_s<seed> (no cache),
k<K>_s<seed> (the first K views of a float16 cache) and k<epochs>f32_s<first seed> (a float32
cache), and writes the section between the "teacher cache" markers of RESULTS.md (appended
when the file has none); scripts/compare_report.py keeps that section when it rewrites the file.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_report import load_json, spread  # noqa: E402

BEGIN, END = "<!-- teacher cache: begin -->", "<!-- teacher cache: end -->"
PROTOCOLS = ["linear-fast", "knn", "zero-shot"]


def top1(runs, name):
    results = load_json(runs / f"eval_{name}" / "results.json")["results"]
    return {r["protocol"]: r["top1"] for r in results}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--docs", required=True)
    ap.add_argument("--seeds", nargs="+", type=int, required=True)
    ap.add_argument("--view-counts", nargs="+", type=int, required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--limit", type=int, required=True)
    a = ap.parse_args()
    runs = Path(a.runs)
    def seen(k):
        times = -(-a.epochs // k)
        return "once" if times == 1 else f"{'' if a.epochs % k == 0 else 'up to '}{times} times"
    rows = [("no cache (the teacher runs every step)", "none")] + [
        (f"cache, K = {k} (each view seen {seen(k)})", f"k{k}") for k in sorted(a.view_counts, reverse=True)]
    table = ["| training | " + " | ".join(PROTOCOLS) + " |",
             "| --- | " + " | ".join("---" for _ in PROTOCOLS) + " |"]
    per_seed = {}
    for label, prefix in rows:
        scores = {p: [] for p in PROTOCOLS}
        for s in a.seeds:
            t = top1(runs, f"{prefix}_s{s}")
            per_seed[(prefix, s)] = t
            for p in PROTOCOLS:
                scores[p].append(t[p])
        table.append(f"| {label} | " + " | ".join(spread(scores[p]) for p in PROTOCOLS) + " |")
    import statistics
    base = {p: statistics.fmean(per_seed[("none", s)][p] for s in a.seeds) for p in PROTOCOLS}
    gaps = {k: max(abs(statistics.fmean(per_seed[(f"k{k}", s)][p] for s in a.seeds) - base[p]) for p in PROTOCOLS)
            for k in a.view_counts}
    noise = min(statistics.stdev(per_seed[("none", s)][p] for s in a.seeds) for p in PROTOCOLS) \
        if len(a.seeds) > 1 else None
    first = a.seeds[0]
    f32 = f"k{a.epochs}f32_s{first}"
    same = None
    if (runs / f32 / "student.pth").exists():
        same = (runs / f32 / "student.pth").read_bytes() == (runs / f"none_s{first}" / "student.pth").read_bytes()
    k_full = f"k{a.epochs}"
    diffs = [abs(per_seed[(k_full, s)][p] - per_seed[("none", s)][p]) for s in a.seeds for p in PROTOCOLS] \
        if a.epochs in a.view_counts else []
    md = [
        BEGIN,
        "## Teacher cache: fewer views than epochs",
        "",
        f"`scripts/compare_views.sh`: MobileNetV2 distilled by LGD from the demo teacher for {a.epochs} epochs on "
        f"the first {a.limit:,} Fashion-MNIST training images (32 px, batch 128), seeds {', '.join(map(str, a.seeds))}. "
        "The cached runs take their teacher embeddings from one float16 cache of "
        f"{a.epochs} views per seed (`lgd reinforce --views {a.epochs}`), of which they use the first K "
        "(`teacher.cache_views`): epoch e trains on view e mod K, so with K < epochs the student sees "
        "each augmented view more than once. Scored as above (linear-fast and kNN on 10% of the 60,000 "
        "training labels, zero-shot; the 10,000 test images), top-1 %, mean ± sample std (min-max).",
        "",
        *table,
        "",
    ]
    md.append("- Mean top-1 against no cache, largest gap over the three protocols: " +
              ", ".join(f"K = {k} {gaps[k]:.2f} points" for k in sorted(a.view_counts, reverse=True)) +
              (f"; the no-cache runs' own seed-to-seed standard deviation is {noise:.2f} or more. At this scale "
               "reusing views costs nothing measurable." if noise is not None and max(gaps.values()) < noise else "."))
    if same is not None:
        md.append(f"- A float32 cache of {a.epochs} views (seed {first}): student.pth "
                  + ("bit-identical to the run without a cache." if same else "**differs** from the run without a cache."))
    if diffs:
        md.append(f"- The default float16 cache with K = epochs moves a seed's top-1 by at most {max(diffs):.2f} "
                  f"points (mean {sum(diffs) / len(diffs):.2f}) against the same seed without a cache, over the "
                  f"{len(diffs)} (seed, protocol) pairs: the float16 rounding of the teacher's embeddings "
                  "(about 1e-3 relative) is all that differs.")
    md += ["- Speed is in docs/PERFORMANCE.md (these runs shared the machine with other work, so their "
           "wall-clock times say nothing).", END]
    out = Path(a.docs) / "RESULTS.md"
    text = out.read_text() if out.exists() else ""
    section = "\n".join(md)
    if BEGIN in text and END in text:
        text = text.split(BEGIN)[0] + section + text.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"wrote the teacher-cache section of {out}")


if __name__ == "__main__":
    main()
