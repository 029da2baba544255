"""`lgd bench train --json --trace`: the JSON line and the Chrome trace, checked against torchvision.

usage: bench_trace_test.py LGD SOURCE_DIR

With a tiny teacher bundle and a ResNet-18 student on the CPU:
  * the JSON line parses and reports the layout the step ran in (`channels_last`: true by
    default where `lgd info` finds the CPU's channels_last convolutions right, false with
    train.channels_last=false) and the steps asked for;
  * the trace parses as a Chrome trace (Kineto's {"traceEvents": [...]} on LibTorch 2.x, the
    legacy profiler's event list on 1.13) and holds, for each traced step, one convolution
    backward per convolution of torchvision's resnet18 (only the student has a backward), and
    as many convolutions forward and backward as torch.profiler's trace of the same steps in
    scripts/bench/reference_step.py;
  * a trace path in a missing folder is one line naming the file, exit non-zero, nothing left.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_teacher import tiny_training_setup  # noqa: E402

LGD, SOURCE = sys.argv[1], Path(sys.argv[2])
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(name)


def bench(config, *args):
    return subprocess.run([LGD, "--log-level", "warn", "bench", "train", "--config", str(config), *map(str, args)],
                          capture_output=True, text=True)


def trace_events(path):
    data = json.loads(Path(path).read_text())
    return data["traceEvents"] if isinstance(data, dict) else data


with tempfile.TemporaryDirectory() as tmp_name:
    tmp = Path(tmp_name)
    images, bundle, runs = tiny_training_setup(tmp, 2, image_size=32, dim=24, context=48)
    config = tmp / "bench.yaml"
    config.write_text(f"""
run: {{output_dir: {runs}, seed: 1, device: cpu, threads: 2}}
student: {{arch: resnet18}}
teacher: {{bundle: {bundle}}}
data: {{dataset: image_folder, root: {images}, image_size: 32, batch_size: 4}}
bank: {{template_list: ["a photo of a {{}}."]}}
method: {{name: lgd}}
""")
    trace_steps = 2
    trace = tmp / "step.trace.json"
    done = bench(config, "--steps", 1, "--warmup", 1, "--json", "--trace", trace, "--trace-steps", trace_steps)
    check("bench train --trace exits 0", done.returncode == 0, done.stderr.strip()[-300:])
    line = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    # true by default, unless this LibTorch's CPU convolutions are wrong in channels_last
    # (then lgd falls back to contiguous and `lgd info` says so).
    info = subprocess.run([LGD, "info"], capture_output=True, text=True).stdout
    healthy = "CPU convolutions in channels_last: agree" in info
    check(f"JSON: channels_last {str(healthy).lower()} by default (CPU check: {'agrees' if healthy else 'wrong'})",
          line.get("channels_last") is healthy, str(line))
    check("JSON: steps", line.get("steps") == 1 and line.get("arch") == "resnet18", str(line))

    events = trace_events(trace) if trace.exists() else []
    names = [e.get("name", "") for e in events if isinstance(e, dict)]
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in torchvision.models.resnet18().modules())
    backward = names.count("aten::convolution_backward")
    check("trace: one convolution backward per torchvision resnet18 convolution and step",
          backward == trace_steps * convs, f"{backward} events, {convs} convolutions x {trace_steps} steps")
    check("trace: the student's forward convolutions are there",
          names.count("aten::convolution") >= backward, f"{names.count('aten::convolution')} aten::convolution")
    # The reference step in Python (scripts/bench/reference_step.py, torch.profiler) over the
    # same teacher, student and batch: the same convolutions, forward and backward.
    ref_trace = tmp / "reference.trace.json"
    ref = subprocess.run([sys.executable, str(SOURCE / "scripts/bench/reference_step.py"), "--teacher", str(bundle),
                          "--arch", "resnet18", "--batch", "4", "--steps", "1", "--warmup", "1",
                          "--trace", str(ref_trace), "--trace-steps", str(trace_steps)], capture_output=True, text=True)
    check("reference_step.py --trace exits 0", ref.returncode == 0, ref.stderr.strip()[-300:])
    ref_names = [e.get("name", "") for e in trace_events(ref_trace) if isinstance(e, dict)] if ref_trace.exists() else []
    for op in ("aten::convolution", "aten::convolution_backward"):
        check(f"trace: {op} as often as in the Python reference step's trace",
              names.count(op) == ref_names.count(op), f"lgd {names.count(op)}, Python {ref_names.count(op)}")
    check("no temporary file left", sorted(p.name for p in tmp.glob("step.trace.json*")) == ["step.trace.json"])

    done = bench(config, "--steps", 1, "--warmup", 0, "--json", "--set", "train.channels_last=false")
    line = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    check("JSON: channels_last false with train.channels_last=false", line.get("channels_last") is False,
          done.stderr.strip()[-300:] or str(line))

    missing = tmp / "no_such_folder" / "t.json"
    done = bench(config, "--steps", 1, "--warmup", 0, "--trace", missing)
    lines = done.stderr.strip().splitlines()
    check("trace in a missing folder: one line naming the file, non-zero exit",
          done.returncode != 0 and len(lines) == 1 and str(missing) in lines[0], done.stderr.strip())
    check("trace in a missing folder: nothing written", not missing.parent.exists())

if failures:
    print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
    sys.exit(1)
print("all checks passed")
