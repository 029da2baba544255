"""Multi-process `lgd train` on loopback with Gloo: real processes, real sockets.

usage: dist_train_test.py LGD SOURCE_DIR

Checks:
  * `lgd train --nproc 2` with batch b gives, after 12 steps, the parameters, momentum buffers
    and VSB of one process with batch b and optim.accumulate 2 (within 1e-5); both ranks'
    fingerprints of parameters and VSB (recorded in the checkpoint) are identical; validation
    counts every image once (the teacher's zero-shot accuracy equals the one-process run's);
  * a 2-rank run stopped by SIGTERM to the launcher and started again ends bit-identical to
    the uninterrupted 2-rank run;
  * SIGKILL of one rank (started torchrun-style, by hand) makes the other exit non-zero with
    a line naming the failed collective, well within dist.timeout;
  * a malformed MASTER_PORT, a rendezvous nobody serves, a port already taken and a global
    batch that does not divide are one-line errors, fast.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from safetensors_io import read_safetensors
from tiny_teacher import max_diff, tiny_training_setup

LGD, SOURCE = sys.argv[1], Path(sys.argv[2])

_groups = [l for l in subprocess.run([LGD, "info"], capture_output=True, text=True, check=True).stdout.splitlines()
           if l.startswith("Process groups:")]
if not _groups or "gloo" not in _groups[0].split():
    print(f"skipped: this lgd was built without the gloo process group ({_groups[0] if _groups else 'lgd info'})")
    sys.exit(77)

S, D, L = 32, 24, 48
PER_CLASS, BATCH = 16, 8  # 64 images; 2 x 8 = 16 per step: 4 steps per epoch
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
           and not k.startswith(("SLURM_", "OMPI_"))}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(args, env=None, timeout=600):
    t0 = time.time()
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env or clean_env(),
                          timeout=timeout)
    return done, time.time() - t0


def train_records(run_dir):
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.endswith("}")]


def wait_for_step(procs, run_dir, step, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if any(p.poll() is not None for p in procs):
            return False
        if any(r["kind"] == "train" and r["step"] >= step for r in train_records(run_dir)):
            return True
        time.sleep(0.02)
    return False


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    images, bundle, runs = tiny_training_setup(tmp, PER_CLASS, image_size=S, dim=D, context=L)
    config = tmp / "dist.yaml"
    config.write_text(f"""
run: {{output_dir: {runs}, seed: 5, device: cpu}}
student: {{arch: resnet18}}
teacher: {{bundle: {bundle}}}
data: {{dataset: image_folder, root: {images}, image_size: {S}, batch_size: {BATCH}, workers: 1,
       val_root: {images}}}
bank: {{template_list: ["a photo of a {{}}.", "the {{}}"]}}
method: {{name: lgd, vsb_momentum: 0.9}}
optim: {{lr: 0.2, epochs: 5, warmup_epochs: 1}}
train: {{log_every: 1, checkpoint_every: 2, keep_checkpoints: 2, val_every: 1}}
dist: {{timeout: 30}}
""")
    steps = 5 * 4

    # 1. Two ranks against one process accumulating two micro-batches.
    one, t_one = run([LGD, "train", "--config", config, "--set", "run.name=one", "--set", "optim.accumulate=2",
                      "--set", "run.threads=1"])
    two, t_two = run([LGD, "train", "--nproc", "2", "--config", config, "--set", "run.name=two"])
    check("1 process x accumulate 2 runs", one.returncode == 0, one.stderr[-2000:])
    check("--nproc 2 runs", two.returncode == 0, two.stderr[-3000:])
    if one.returncode or two.returncode:
        sys.exit(1)
    print(f"     (1 process {t_one:.1f} s, 2 processes {t_two:.1f} s)")
    a, _ = read_safetensors(runs / "one" / "checkpoints" / "last.ckpt")
    b, b_meta = read_safetensors(runs / "two" / "checkpoints" / "last.ckpt")
    check("same tensors in both checkpoints", sorted(a) == sorted(b))
    import torchvision  # noqa: E402  (parameter names, to leave BatchNorm statistics out)
    params = [f"student.{k}" for k, _ in torchvision.models.resnet18().named_parameters() if not k.startswith("fc.")]
    params += [k for k in a if k.startswith("head.")]
    momentum = [k for k in a if k.startswith("optim.")]
    bank = [k for k in a if k.startswith("method.")]
    check("checkpoints hold parameters, momentum and the VSB", len(params) > 60 and momentum and bank,
          f"{len(params)} parameters, {len(momentum)} momentum, {bank}")
    for name, keys in (("parameters", params), ("momentum buffers", momentum), ("VSB", bank)):
        d = max_diff(a, b, keys)
        check(f"2 ranks x batch {BATCH} = 1 rank x batch {BATCH} x accumulate 2 after {steps} steps: {name}",
              d <= 1e-5, f"max |diff| {d:.2e}")
    moved = max_diff(a, {k: np.zeros_like(v) for k, v in a.items()}, bank)
    check("the VSB was filled (the comparison is not of zeros)", moved > 0.01, f"max |VSB| {moved:.3f}")
    fp = b_meta.get("rank_fingerprints", "")
    parts = [p.split(":", 1)[1].split() for p in fp.split(";")] if fp else []
    check("both ranks recorded identical parameter and VSB fingerprints",
          len(parts) == 2 and parts[0] == parts[1] and len(parts[0]) == 6, fp)
    va = [r for r in train_records(runs / "one") if r["kind"] == "val"]
    vb = [r for r in train_records(runs / "two") if r["kind"] == "val"]
    check("validation on 2 ranks counts every image once (teacher top-1 equal to 1 process)",
          len(va) == len(vb) == 5 and all(x["teacher_top1"] == y["teacher_top1"] for x, y in zip(va, vb)),
          f"{[x['teacher_top1'] for x in va]} vs {[y['teacher_top1'] for y in vb]}")
    tb = [r for r in train_records(runs / "two") if r["kind"] == "train"]
    check("rank 0 logs every step with 2 x 8 images", [r["step"] for r in tb] == list(range(1, steps + 1)))

    # 2. SIGTERM to the launcher mid-run, then the same command again.
    cmd = [LGD, "train", "--nproc", "2", "--config", config, "--set", "run.name=resumed"]
    proc = subprocess.Popen([str(c) for c in cmd], env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    started = wait_for_step([proc], runs / "resumed", 3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    stopped_at = max((r["step"] for r in train_records(runs / "resumed") if r["kind"] == "train"), default=0)
    check("SIGTERM: both ranks stop at one step, checkpoint, exit 143",
          started and proc.returncode == 143 and 3 <= stopped_at < steps and "SIGTERM at step" in err,
          f"rc {proc.returncode}, stopped at step {stopped_at}: {err[-1500:]}")
    again, _ = run(cmd)
    check("the resumed 2-rank run finishes", again.returncode == 0, again.stderr[-2000:])
    c, _ = read_safetensors(runs / "resumed" / "checkpoints" / "last.ckpt")
    same = sorted(c) == sorted(b) and all(np.array_equal(c[k], b[k]) for k in b)
    check("2 ranks stopped and resumed = 2 ranks uninterrupted (bit-identical)", same,
          "" if same else f"max |diff| {max_diff(b, c, list(b)):.2e}")

    # 2b. SIGKILL of every process mid-run (no checkpoint at the stop), then the same command.
    proc = subprocess.Popen([str(c) for c in [LGD, "train", "--nproc", "2", "--config", config, "--set",
                                              "run.name=killed"]],
                            env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = wait_for_step([proc], runs / "killed", 5)
    workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.communicate(timeout=60)
    killed_at = max((r["step"] for r in train_records(runs / "killed") if r["kind"] == "train"), default=0)
    again, _ = run([LGD, "train", "--nproc", "2", "--config", config, "--set", "run.name=killed"])
    k, _ = read_safetensors(runs / "killed" / "checkpoints" / "last.ckpt")
    same = again.returncode == 0 and sorted(k) == sorted(b) and all(np.array_equal(k[x], b[x]) for x in b)
    check("2 ranks SIGKILLed and restarted = 2 ranks uninterrupted (bit-identical)",
          started and len(workers) == 2 and 5 <= killed_at < steps and same,
          f"killed at step {killed_at}, workers {workers}, rc {again.returncode} {again.stderr[-800:]}")

    # 3. One rank dies (SIGKILL) or hangs (SIGSTOP): the other stops with one clear line,
    #    at once for a dead peer, after dist.timeout for a silent one.
    def two_ranks_then(name, action, timeout):
        port = free_port()
        procs, logs = [], []
        for r in range(2):
            env = clean_env(RANK=r, WORLD_SIZE=2, LOCAL_RANK=r, LOCAL_WORLD_SIZE=2, MASTER_ADDR="127.0.0.1",
                            MASTER_PORT=port)
            logs.append(open(tmp / f"{name}{r}.err", "w+"))
            procs.append(subprocess.Popen([str(c) for c in [LGD, "train", "--config", config, "--set", f"run.name={name}",
                                                            "--set", "optim.epochs=50", "--set", f"dist.timeout={timeout}"]],
                                          env=env, stdout=subprocess.DEVNULL, stderr=logs[r]))
        alive = wait_for_step(procs, runs / name, 2)
        action(procs[1])
        t_event = time.time()
        try:
            rc0 = procs[0].wait(timeout=120)
        except subprocess.TimeoutExpired:
            procs[0].kill()
            rc0 = None
        waited = time.time() - t_event
        procs[1].kill()
        procs[1].wait()
        logs[0].seek(0)
        err0 = logs[0].read()
        last = [l for l in err0.splitlines() if l.startswith("lgd: error:")]
        return alive, rc0, waited, last, err0

    alive, rc0, waited, last, err0 = two_ranks_then("dead", lambda p: p.kill(), 30)
    check("killing rank 1 makes rank 0 exit non-zero with one line naming the collective",
          alive and rc0 not in (None, 0) and waited < 30 and len(last) == 1 and "dist: rank 0 of 2" in last[0]
          and "failed" in last[0], f"rc {rc0} after {waited:.1f} s: {last or err0[-1500:]}")
    alive, rc0, waited, last, err0 = two_ranks_then("hung", lambda p: p.send_signal(signal.SIGSTOP), 5)
    check("a hung rank 1 (SIGSTOP) makes rank 0 exit non-zero after dist.timeout = 5 s",
          alive and rc0 not in (None, 0) and 4 <= waited < 60 and len(last) == 1 and "dist: rank 0 of 2" in last[0],
          f"rc {rc0} after {waited:.1f} s: {last or err0[-1500:]}")

    # 4. Bad rendezvous settings fail fast with one line.
    base = dict(WORLD_SIZE=2, LOCAL_WORLD_SIZE=2, MASTER_ADDR="127.0.0.1")
    bad = [LGD, "train", "--config", config, "--set", "run.name=bad", "--set", "dist.timeout=3"]
    done, t = run(bad, env=clean_env(RANK=0, LOCAL_RANK=0, MASTER_PORT="http", **base), timeout=60)
    check("MASTER_PORT=http: exit 2 at once, naming the variable",
          done.returncode == 2 and t < 20 and "MASTER_PORT: 'http' is not a TCP port" in done.stderr,
          f"rc {done.returncode} in {t:.1f} s: {done.stderr[-500:]}")
    done, t = run(bad, env=clean_env(RANK=1, LOCAL_RANK=1, MASTER_PORT=free_port(), **base), timeout=60)
    check("nobody serves the rendezvous: rank 1 gives up after dist.timeout with the address",
          done.returncode != 0 and t < 30 and "cannot reach the rendezvous at 127.0.0.1:" in done.stderr,
          f"rc {done.returncode} in {t:.1f} s: {done.stderr[-500:]}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        done, t = run(bad, env=clean_env(RANK=0, LOCAL_RANK=0, MASTER_PORT=taken.getsockname()[1], **base),
                      timeout=60)
    check("a port already in use: rank 0 cannot serve the rendezvous, one line",
          done.returncode != 0 and t < 30 and "cannot serve the rendezvous on 127.0.0.1:" in done.stderr,
          f"rc {done.returncode} in {t:.1f} s: {done.stderr[-500:]}")
    done, t = run([LGD, "train", "--nproc", "2", "--config", config, "--set", "run.name=bad2",
                   "--set", "data.global_batch=15", "--set", "data.batch_size=8"], timeout=120)
    check("a global batch that does not divide over 2 ranks is a config error",
          done.returncode == 2 and "data.global_batch: 15 does not divide into 2 processes" in done.stderr,
          f"rc {done.returncode}: {done.stderr[-800:]}")

    # 5. train.max_steps stops mid-epoch with a checkpoint; a larger value continues from it.
    short = [LGD, "train", "--config", config, "--set", "run.name=short", "--set", "train.val_every=0"]
    first, _ = run(short + ["--set", "train.max_steps=3"])
    second, _ = run(short + ["--set", "train.max_steps=6"])
    recs = [r["step"] for r in train_records(runs / "short") if r["kind"] == "train"]
    _, meta = read_safetensors(runs / "short" / "checkpoints" / "last.ckpt")
    check("train.max_steps 3 then 6: steps 1-3, then 4-6, checkpoint at step 6, student.pth written",
          first.returncode == 0 and second.returncode == 0 and recs == [1, 2, 3, 4, 5, 6]
          and meta.get("global_step") == "6" and (runs / "short" / "student.pth").is_file(),
          f"rc {first.returncode}/{second.returncode}, steps {recs}, meta step {meta.get('global_step')}")

print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
sys.exit(1 if failures else 0)
