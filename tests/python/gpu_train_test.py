"""`lgd train` on a CUDA device (ctest label gpu; exit code 77, "skipped", where lgd sees no
CUDA device).

usage: gpu_train_test.py LGD SOURCE_DIR

Checks, on a tiny image folder and teacher bundle (tests/python/tiny_teacher.py):
  * float32 without autocast: a CUDA step ends within 2e-3 of the same CPU step (student,
    head, momentum and the VSB, which is updated on the device), channels_last on and off,
    with the view's colour jitter, grayscale and blur on the device on both (data.photometric:
    device) and the non-finite checks deferred on CUDA (its default) and per step on the CPU;
  * bfloat16 and float16 autocast (float16 with dynamic loss scaling, its scale kept in the
    checkpoint): finite losses, no skipped step, the loss falls, and a run stopped at step 4
    and resumed ends bit-identical to the uninterrupted one (same device, train.deterministic);
  * NCCL with one rank (`lgd train --nproc 1`, dist.backend nccl) matches the plain run;
  * the colour work in the loader instead (data.photometric: host) also trains;
  * a NaN loss on CUDA (deferred checks): each step skipped, then the run stops with one line;
  * teacher.overlap (the image encoder on a second CUDA stream): the same weights, bit for bit.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from safetensors_io import read_safetensors
from tiny_teacher import max_diff, tiny_training_setup

LGD, SOURCE = sys.argv[1], Path(sys.argv[2])
S, D, L = 32, 24, 48
PER_CLASS, BATCH = 16, 8  # 64 images, 8 steps per epoch
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)


info = subprocess.run([LGD, "info"], capture_output=True, text=True)
# `lgd info` prints "CUDA: built with CUDA X, N device(s) visible" only where it can use one.
if info.returncode != 0 or "device(s) visible" not in info.stdout:
    print("skipped: lgd sees no CUDA device\n" + info.stdout[:300])
    sys.exit(77)


def run(config, name, *sets, launcher=()):
    args = [LGD, "train", *launcher, "--config", str(config), "--set", f"run.name={name}"]
    for s in sets:
        args += ["--set", s]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)


def records(run_dir):
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    images, bundle, runs = tiny_training_setup(tmp, PER_CLASS, image_size=S, dim=D, context=L)
    config = tmp / "gpu.yaml"
    config.write_text(f"""
run: {{output_dir: {runs}, seed: 7, device: cuda}}
student: {{arch: resnet18}}
teacher: {{bundle: {bundle}}}
data: {{dataset: image_folder, root: {images}, image_size: {S}, batch_size: {BATCH}, workers: 2}}
bank: {{template_list: ["a photo of a {{}}.", "the {{}}"]}}
method: {{name: lgd, vsb_momentum: 0.9}}
optim: {{lr: 0.2, epochs: 2, warmup_epochs: 0}}
train: {{log_every: 1, checkpoint_every: 2, keep_checkpoints: 2, max_steps: 6, deterministic: true}}
""")

    # 1. float32: CUDA against CPU.
    # One step: the LGKA argmax makes longer runs chaotic (a key that flips class moves the
    # bank), so CPU and CUDA are compared where rounding cannot yet have been amplified.
    fp32 = ["train.amp=off", "data.photometric=device", "train.max_steps=1"]
    cpu = run(config, "cpu", "run.device=cpu", "run.threads=4", *fp32)
    check("CPU float32 run", cpu.returncode == 0, cpu.stderr[-2000:])
    for cl in ("true", "false"):
        gpu = run(config, f"cuda_cl_{cl}", f"train.channels_last={cl}", *fp32)
        check(f"CUDA float32 run (channels_last {cl})", gpu.returncode == 0, gpu.stderr[-2000:])
        if cpu.returncode == 0 and gpu.returncode == 0:
            a, _ = read_safetensors(runs / "cpu" / "checkpoints" / "last.ckpt")
            b, _ = read_safetensors(runs / f"cuda_cl_{cl}" / "checkpoints" / "last.ckpt")
            keys = [k for k in a if k.startswith(("student.", "head.", "optim.", "method.")) and a[k].dtype.kind == "f"]
            d = max_diff(a, b, keys)
            check(f"CUDA (channels_last {cl}) ends within 2e-3 of CPU after 1 step", d < 2e-3,
                  f"max |diff| {d:.2e} over {len(keys)} tensors")

    # 2. Mixed precision, loss falls, resume is exact.
    for amp in ("bf16", "fp16"):
        whole = run(config, f"{amp}_whole", f"train.amp={amp}", "train.max_steps=8")
        check(f"{amp}: 8 CUDA steps", whole.returncode == 0, whole.stderr[-2000:])
        if whole.returncode:
            continue
        train = [r for r in records(runs / f"{amp}_whole") if r["kind"] == "train"]
        check(f"{amp}: finite losses, no step skipped",
              all(np.isfinite(r["loss"]) for r in train) and train[-1]["nonfinite_steps"] == 0,
              str([round(r["loss"], 4) for r in train]))
        check(f"{amp}: the loss falls", np.mean([r["loss"] for r in train[-3:]]) < np.mean([r["loss"] for r in train[:3]]),
              str([round(r["loss"], 4) for r in train]))
        ck, _ = read_safetensors(runs / f"{amp}_whole" / "checkpoints" / "last.ckpt")
        if amp == "fp16":
            check("fp16: the loss scale is in the checkpoint", "amp.scale" in ck and float(ck["amp.scale"].ravel()[0]) > 1,
                  str({k: ck[k].ravel()[:1] for k in ck if k.startswith("amp.")}))
        first = run(config, f"{amp}_resumed", f"train.amp={amp}", "train.max_steps=4")
        second = run(config, f"{amp}_resumed", f"train.amp={amp}", "train.max_steps=8")
        check(f"{amp}: stopped at 4 and resumed to 8", first.returncode == 0 and second.returncode == 0,
              (first.stderr + second.stderr)[-2000:])
        if first.returncode == 0 and second.returncode == 0:
            r, _ = read_safetensors(runs / f"{amp}_resumed" / "checkpoints" / "last.ckpt")
            keys = [k for k in ck if k.startswith(("student.", "head.", "method.")) and ck[k].dtype.kind == "f"]
            d = max_diff(ck, r, keys)
            check(f"{amp}: resumed run equals the uninterrupted one", d == 0.0, f"max |diff| {d:.2e}")

    # 3. NCCL with one rank.
    nccl = run(config, "nccl", "dist.backend=nccl", *fp32, launcher=("--nproc", "1"))
    check("NCCL, one rank", nccl.returncode == 0, nccl.stderr[-2000:])
    if nccl.returncode == 0:
        log = (runs / "nccl" / "train.log").read_text()
        check("the log names the NCCL process group", "nccl" in log.lower(), log[:1500])
        a, _ = read_safetensors(runs / "cuda_cl_true" / "checkpoints" / "last.ckpt")
        b, _ = read_safetensors(runs / "nccl" / "checkpoints" / "last.ckpt")
        keys = [k for k in a if k.startswith(("student.", "head.", "method.")) and a[k].dtype.kind == "f"]
        d = max_diff(a, b, keys)
        check("NCCL one-rank run within 1e-4 of the plain CUDA run", d < 1e-4, f"max |diff| {d:.2e}")

    # 4. The colour work in the loader threads.
    host = run(config, "photometric_host", "data.photometric=host")
    check("data.photometric=host on CUDA", host.returncode == 0 and "blur in the loader" in host.stderr,
          host.stderr[-2000:])
    check("data.photometric=auto on CUDA puts the colour work on the device",
          "blur on the device" in (runs / "bf16_whole" / "train.log").read_text())

    # 5. NaN guard with deferred checks: a teacher temperature whose inverse overflows.
    nan = run(config, "nan", "method.teacher_temp=1e-40", "train.max_nonfinite=3", "train.checkpoint_every=100")
    lines = nan.stderr.strip().splitlines()
    check("CUDA NaN guard: skipped on the device, then one clear line and exit 1",
          nan.returncode == 1 and lines and "NaN or Inf for 3 steps in a row" in lines[-1]
          and not list((runs / "nan" / "checkpoints").glob("*.ckpt")), "\n".join(lines[-4:]))

    # 6. teacher.overlap: the image encoder on its own stream gives the same run.
    if (runs / "fp16_whole" / "checkpoints" / "last.ckpt").exists():
        ov = run(config, "fp16_overlap", "train.amp=fp16", "train.max_steps=8", "teacher.overlap=true")
        check("teacher.overlap: 8 fp16 CUDA steps", ov.returncode == 0 and "own CUDA stream" in ov.stderr,
              ov.stderr[-2000:])
        if ov.returncode == 0:
            a, _ = read_safetensors(runs / "fp16_whole" / "checkpoints" / "last.ckpt")
            b, _ = read_safetensors(runs / "fp16_overlap" / "checkpoints" / "last.ckpt")
            keys = [k for k in a if k.startswith(("student.", "head.", "method.", "amp.")) and a[k].dtype.kind == "f"]
            d = max_diff(a, b, keys)
            check("teacher.overlap: equals the run without it (train.deterministic)", d == 0.0, f"max |diff| {d:.2e}")

print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
sys.exit(1 if failures else 0)
