"""The PyPI libraries some tests check lgd's files with: TensorBoard's own event reader, the
safetensors package, open_clip. The pip leg (LGD_TORCH=pip scripts/test.sh) installs them
all and sets LGD_REQUIRE_PYTHON_REFERENCES=1, so a missing one fails the test there; the
Debian leg has no Debian packages of them, and a check that needs one says "not checked"
(the test's other checks, against lgd's independent readers, still run).
"""
import importlib
import math
import os

REQUIRED = os.environ.get("LGD_REQUIRE_PYTHON_REFERENCES", "0") not in ("", "0", "OFF", "off")


def optional(module):
    """The module, or None (printing why) where it is not installed and not required."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if REQUIRED:
            raise SystemExit(f"FAIL {module} is required here (LGD_REQUIRE_PYTHON_REFERENCES=1): {e}")
        print(f"not checked: {module} is not installed ({e})", flush=True)
        return None


def tensorboard_scalars(run_tb_dir):
    """Every scalar of a TensorBoard log folder as TensorBoard reads it: {tag: [(step, value)]},
    or None where the tensorboard package is absent."""
    if optional("tensorboard") is None:
        return None
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(run_tb_dir), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def scalars_match_jsonl(tb, records):
    """Whether TensorBoard's scalars are exactly the numbers of metrics.jsonl: every record's
    every value under the tag "<kind>/<name>" at its step (float32 in the events), and
    nothing else. Returns (ok, detail)."""
    want = {}
    for r in records:
        for name, value in r.items():
            if name in ("kind", "step", "epoch", "time"):
                continue
            want.setdefault(f"{r['kind']}/{name}", []).append((r["step"], value))
    if sorted(tb) != sorted(want):
        return False, f"tags differ: only in TensorBoard {sorted(set(tb) - set(want))[:5]}, " \
                      f"only in metrics.jsonl {sorted(set(want) - set(tb))[:5]}"
    n = 0
    for tag, expected in want.items():
        got = tb[tag]
        if [s for s, _ in got] != [s for s, _ in expected]:
            return False, f"{tag}: steps {[s for s, _ in got][:8]} against {[s for s, _ in expected][:8]}"
        for (step, g), (_, e) in zip(got, expected):
            n += 1
            if e is None:  # non-finite, written as null
                if math.isfinite(g):
                    return False, f"{tag} step {step}: {g} where metrics.jsonl has null"
            elif not abs(g - e) <= 1e-7 * max(abs(e), 1e-30):  # float32 round-off
                return False, f"{tag} step {step}: {g} against {e}"
    return True, f"{n} scalars under {len(want)} tags"
