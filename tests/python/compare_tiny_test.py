"""scripts/compare.sh end to end at a tiny budget (LGD_COMPARE=tiny, 2 seeds): each method's
run has the settings it claims, the validation curve, an evaluation and a fine-tuning;
RESULTS.md's table is the mean and spread of those evaluations recomputed here; the plot is a PNG; a second
call reuses what exists.

usage: compare_tiny_test.py LGD SOURCE_DIR
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

LGD, SOURCE = sys.argv[1], Path(sys.argv[2])
SEEDS = [0, 1]
failures = []
FMNIST = Path(os.environ.get("LGD_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
if not (FMNIST / "train-images-idx3-ubyte.gz").exists():
    print(f"skipped: no Fashion-MNIST at {FMNIST} (Debian: dataset-fashion-mnist; or set LGD_FASHION_MNIST)")
    sys.exit(77)


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)


def top1(path):
    if not path.exists():
        return {}
    return {r["protocol"]: r["top1"] for r in json.loads(path.read_text())["results"]}


with tempfile.TemporaryDirectory() as tmp:
    out, docs = Path(tmp) / "compare", Path(tmp) / "docs"
    env = dict(os.environ, LGD=LGD, LGD_PYTHON=sys.executable, LGD_COMPARE="tiny", LGD_COMPARE_OUT=str(out), LGD_COMPARE_DOCS=str(docs))
    cmd = ["bash", str(SOURCE / "scripts/compare.sh")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    text = done.stdout + done.stderr
    check("compare.sh (tiny) exits 0", done.returncode == 0, text[-3000:] if done.returncode else "")

    expect = {"seed": ("seed", None, 4096), "lgd_vis": ("lgd", 1.0, None), "lgd_tex": ("lgd", 0.0, None),
              "lgd": ("lgd", 0.5, None)}
    import yaml  # python3-yaml: a dependency of python3-torch
    for m, (name, alpha, queue) in expect.items():
        for s in SEEDS:
            run = out / f"{m}_s{s}"
            cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
            meth = cfg.get("method", {})
            ok = (meth.get("name") == name and cfg.get("run", {}).get("seed") == s and
                  (alpha is None or meth.get("alpha") == alpha) and (queue is None or meth.get("queue_size") == queue))
            check(f"{m} seed {s}: the run's config says what the method is", ok, str(meth))
            vals = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()] \
                if (run / "metrics.jsonl").exists() else []
            steps = [r["step"] for r in vals if r["kind"] == "val"]
            check(f"{m} seed {s}: validation every 2 steps", steps == [2, 4], str(steps))
            log = (run / "train.log").read_text() if (run / "train.log").exists() else ""
            progress = [l for l in log.splitlines() if "zero-shot validation batches" in l]
            check(f"{m} seed {s}: validation on train.val_limit = 1000 of the 10,000 test images (32 batches of 32)",
                  bool(progress) and all("/32 (" in l for l in progress), str(progress[-1:]))

    results = {m: [top1(out / f"eval_{m}_s{s}" / "results.json") for s in SEEDS]
               for m in ("random", "seed", "lgd_vis", "lgd_tex", "lgd")}
    check("every trained method evaluated with linear-fast, knn, zero-shot",
          all(sorted(r) == ["knn", "linear-fast", "zero-shot"] for m, rs in results.items() if m != "random" for r in rs),
          str(results))
    check("random init evaluated with linear-fast, knn",
          all(sorted(r) == ["knn", "linear-fast"] for r in results["random"]), str(results["random"]))
    finetuned = {m: [top1(out / f"finetune_{m}_s{s}" / "results.json") for s in SEEDS] for m in results}
    check("every method and the random init fine-tuned (finetune protocol)",
          all(list(r) == ["finetune"] for rs in finetuned.values() for r in rs), str(finetuned))

    md_path = docs / "RESULTS.md"
    md = md_path.read_text() if md_path.exists() else ""
    names = {"random": "random-init", "seed": "SEED", "lgd_vis": "LGD VIS-only", "lgd_tex": "LGD TEX-only", "lgd": "LGD"}
    for m, name in names.items():
        row = next((l for l in md.splitlines() if l.startswith(f"| {name} | ") and l.count("|") == 6), "")
        vals = [r.get("linear-fast") for r in results[m]]
        want = (f"{statistics.fmean(vals):.2f} ± {statistics.stdev(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})"
                if None not in vals else "?")
        check(f"RESULTS.md: {name}'s linear-fast is the mean ± std (min-max) of its evaluations",
              row.split(" | ")[1:2] == [want], f"{row!r} expected {want!r}")
        if row and m != "random":
            zs = [r.get("zero-shot") for r in results[m]]
            check(f"RESULTS.md: {name}'s zero-shot mean", f"{statistics.fmean(zs):.2f} ± " in row.split(" | ")[3], row)
        ft = [r.get("finetune") for r in finetuned[m]]
        check(f"RESULTS.md: {name}'s finetune mean", None not in ft and row.count(" | ") >= 4
              and row.split(" | ")[4].startswith(f"{statistics.fmean(ft):.2f} ± "), row)
    lgd_lf, seed_lf = (statistics.fmean(r["linear-fast"] for r in results[k]) for k in ("lgd", "seed"))
    line = next((l for l in md.splitlines() if l.startswith("- linear-fast: LGD") and "SEED" in l), "")
    check("RESULTS.md states whether LGD is ahead of SEED on linear-fast, consistently with the numbers",
          ("NOT ahead" in line) == (lgd_lf <= seed_lf) and f"{lgd_lf:.2f} against {seed_lf:.2f}" in line, line)
    check("the table printed is the one written", md and next(l for l in md.splitlines() if l.startswith("| LGD | "))
          in done.stdout)
    png = docs / "results" / "fmnist_val_zero_shot.png"
    check("the plot is a PNG", png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n")

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    check("a second call reuses every run and evaluation",
          again.returncode == 0 and again.stdout.count("trained already") == 4 * len(SEEDS) and
          "lgd eval (" not in again.stdout, again.stdout[-2000:])

print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
sys.exit(1 if failures else 0)
