"""`lgd train` end to end on CPU, with real images, a TorchScript teacher and real processes.

usage: train_e2e_test.py LGD TRAIN_RUN SOURCE_DIR

The test writes an image folder (4 classes of PNG/JPEG images) and a small CLIP-style
teacher bundle (SentencePiece tokenizer, BatchNorm in the image tower, the image tower
scripted in training mode so that a trainer that forgot eval() would move its statistics),
then checks:
  * an uninterrupted run (TRAIN_RUN, in-process): the teacher's parameters and BatchNorm
    buffers are unchanged; the loss falls; metrics.jsonl and the TensorBoard events parse
    (every record's CRC checked by tests/python/tb_events.py) and agree; validation records;
    student.pth loads into torchvision's resnet18; `lgd export --checkpoint` gives the same
    tensors;
  * a run killed with SIGKILL at a random step and restarted ends bit-identical to it
    (student, head, optimiser state, VSB);
  * SIGTERM saves a checkpoint and exits 143, and the resumed run is bit-identical too;
  * a config forcing a non-finite loss stops with one clear line and no checkpoint;
  * a resumed run that changes the student, and a teacher whose image size differs from
    data.image_size, are one-line errors; students start from a .pth or a checkpoint; SEED runs.
"""
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from safetensors_io import read_safetensors
from tiny_teacher import make_tiny_bundle, write_images
from tb_events import read_records, restarts as tb_restarts, scalars as tb_scalars
from references import scalars_match_jsonl, tensorboard_scalars

LGD, TRAIN_RUN, SOURCE = sys.argv[1], sys.argv[2], Path(sys.argv[3])

S, D, L = 32, 24, 48
PER_CLASS, BATCH, EPOCHS = 16, 16, 5  # 4 steps per epoch, 20 steps
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(name)


class ImageTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.conv, self.bn, self.proj = model.conv, model.bn, model.proj

    def forward(self, x):
        return self.proj(F.relu(self.bn(self.conv(x))).mean((2, 3)))


def run(*args, check_rc=True, **kw):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    if check_rc and done.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, args))}\n{done.stdout}{done.stderr}")
    return done


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def same_tensors(name, a, b):
    keys_ok = list(a) == list(b)
    diff = [k for k in a if k in b and not np.array_equal(a[k], b[k])]
    check(name, keys_ok and not diff,
          f"{len(a)} tensors bit-identical" if keys_ok and not diff else f"keys equal {keys_ok}, differ: {diff[:5]}")


def wait_for_step(proc, run_dir, step, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        path = run_dir / "metrics.jsonl"
        if path.exists():
            recs = [json.loads(l) for l in path.read_text().splitlines() if l.endswith("}")]
            if any(r["kind"] == "train" and r["step"] >= step for r in recs):
                return True
        time.sleep(0.02)
    return False


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    write_images(tmp / "images", PER_CLASS)

    # The teacher bundle, with BatchNorm statistics that a forgotten eval() would move.
    def perturb_statistics(model):
        with torch.no_grad():
            model.bn.running_mean.uniform_(-0.3, 0.3)
            model.bn.running_var.uniform_(0.5, 1.5)

    bundle = tmp / "teacher"
    model = make_tiny_bundle(tmp, bundle, image_size=S, dim=D, context=L, prepare=perturb_statistics)
    tower = torch.jit.script(ImageTower(model).train())  # train mode on purpose
    torch.jit.save(tower, str(bundle / "image_encoder.pt"))

    config = tmp / "e2e.yaml"
    config.write_text(f"""
run: {{output_dir: {tmp / 'runs'}, seed: 3, device: cpu, threads: 2}}
student: {{arch: resnet18}}
teacher: {{bundle: {bundle}}}
data: {{dataset: image_folder, root: {tmp / 'images'}, image_size: {S}, batch_size: {BATCH}, workers: 2,
       val_root: {tmp / 'images'}}}
bank: {{template_list: ["a photo of a {{}}.", "the {{}}"]}}
method: {{name: lgd, vsb_momentum: 0.9}}
optim: {{lr: 0.1, epochs: {EPOCHS}, warmup_epochs: 1}}
train: {{log_every: 1, checkpoint_every: 3, keep_checkpoints: 2, val_every: 2, val_every_steps: 6}}
""")
    runs = tmp / "runs"
    steps = EPOCHS * (4 * PER_CLASS // BATCH)

    # 1. Uninterrupted, in-process, with the teacher compared before / after.
    done = run(TRAIN_RUN, config, "run.name=whole")
    line = [l for l in done.stdout.splitlines() if l.startswith("teacher tensors")][0]
    n_tensors, diff = int(line.split()[2]), float(line.split()[4])
    check("teacher parameters and BatchNorm buffers unchanged", n_tensors >= 10 and diff == 0.0, line)
    whole = runs / "whole"
    recs = metrics(whole)
    train = [r for r in recs if r["kind"] == "train"]
    val = [r for r in recs if r["kind"] == "val"]
    check("one train record per step", [r["step"] for r in train] == list(range(1, steps + 1)),
          f"{len(train)} records")
    check("train records count epochs from 1, as the log does",
          [r["epoch"] for r in train] == [(s - 1) // 4 + 1 for s in range(1, steps + 1)],
          str([r["epoch"] for r in train]))
    first, last = np.mean([r["loss"] for r in train[:4]]), np.mean([r["loss"] for r in train[-4:]])
    check("the loss falls", last < first - 0.05, f"first epoch {first:.4f}, last epoch {last:.4f}")
    need = {"loss", "loss_vis", "loss_tex", "lr", "images_per_s", "data_wait", "bad_samples",
            "vsb_initialised", "nonfinite_steps", "grad_norm"}
    check("train records hold every scalar", all(need <= set(r) for r in train), str(sorted(need - set(train[-1]))))
    check("VSB classes get initialised", train[-1]["vsb_initialised"] > 0, str(train[-1]["vsb_initialised"]))
    # Every 2 epochs (steps 8, 16) and every 6 steps (6 and 18 mid-epoch, 12 at the end of epoch 3);
    # "epoch" counts from 1 as the log lines do: the epoch the last step belongs to.
    check("validation every 2 epochs and every 6 steps",
          [(r["step"], r["epoch"]) for r in val] == [(6, 2), (8, 2), (12, 3), (16, 4), (18, 5)] and
          all(0 <= r["student_top1"] <= 100 and 0 <= r["teacher_top1"] <= 100 for r in val), str(val))
    # lr: 1 warm-up epoch of 4 steps from 0 to 0.1 * 16 / 256, then cosine.
    peak = 0.1 * BATCH / 256
    check("lr follows warm-up + cosine", abs(train[0]["lr"] - peak / 4) < 1e-9 and abs(train[3]["lr"] - peak) < 1e-9
          and train[-1]["lr"] < train[4]["lr"], f"{train[0]['lr']:.6g} {train[3]['lr']:.6g} {train[-1]['lr']:.6g}")

    events = sorted((whole / "tb").glob("events.out.tfevents.*"))
    tb = [s for e in events for s in tb_scalars(read_records(e))]  # CRCs checked while reading
    tb_loss = {step: v for tag, step, v, _ in tb if tag == "train/loss"}
    check("TensorBoard events parse (CRCs valid) and match metrics.jsonl",
          len(events) == 1 and sorted(tb_loss) == [r["step"] for r in train] and
          all(abs(tb_loss[r["step"]] - r["loss"]) < 1e-5 * max(1, abs(r["loss"])) for r in train) and
          any(tag == "val/student_top1" for tag, *_ in tb), f"{len(tb)} scalars in {len(events)} file(s)")
    tb_read = tensorboard_scalars(whole / "tb")
    if tb_read is not None:
        check("TensorBoard's own reader finds every scalar of metrics.jsonl, and nothing else",
              *scalars_match_jsonl(tb_read, recs))

    ckpts = sorted(p.name for p in (whole / "checkpoints").iterdir())
    saved = sorted(set(range(3, steps + 1, 3)) | set(range(4, steps + 1, 4)))  # every 3 steps, epoch ends
    check("checkpoints: last.ckpt and the newest 2 periodic ones",
          ckpts == ["last.ckpt"] + [f"step_{s:010d}.ckpt" for s in saved[-2:]], str(ckpts))
    cfg_text = (whole / "config.yaml").read_text()
    check("resolved config in the run directory", "arch: resnet18" in cfg_text and "vsb_momentum: 0.9" in cfg_text)
    check("train.log written", "done:" in (whole / "train.log").read_text())

    sd = torch.load(whole / "student.pth", weights_only=True)
    tv = torchvision.models.resnet18()
    missing, unexpected = tv.load_state_dict(sd, strict=False)
    check("student.pth loads into torchvision's resnet18 (missing only fc)",
          sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected, f"{missing} {unexpected}")
    run(LGD, "export", "--checkpoint", whole / "checkpoints" / "last.ckpt", "-o", tmp / "exported.pth")
    exported = torch.load(tmp / "exported.pth", weights_only=True)
    check("lgd export --checkpoint equals the run's student.pth",
          list(exported) == list(sd) and all(torch.equal(exported[k], sd[k]) for k in sd))
    # A pre-trained backbone handed over with a fresh classifier for fine-tuning: torchvision
    # loads it strictly, with the run's backbone and a classifier of the width asked for.
    run(LGD, "export", "--checkpoint", whole / "checkpoints" / "last.ckpt", "--num-classes", "7", "--seed", "1",
        "-o", tmp / "with_fc.pth")
    with_fc = torch.load(tmp / "with_fc.pth", weights_only=True)
    tv7 = torchvision.models.resnet18(num_classes=7)
    tv7.load_state_dict(with_fc, strict=True)
    check("lgd export --checkpoint --num-classes 7: a fresh classifier, strict load, the run's backbone",
          with_fc["fc.weight"].shape == (7, 512) and with_fc["fc.bias"].abs().max() <= 1 / 512 ** 0.5 and
          all(torch.equal(with_fc[k], sd[k]) for k in sd), str(with_fc["fc.weight"].shape))
    run(LGD, "export", "--checkpoint", whole / "checkpoints" / "last.ckpt", "--with-head", "-o",
        tmp / "with_head.safetensors")
    wh, _ = read_safetensors(tmp / "with_head.safetensors")
    final, final_meta = read_safetensors(whole / "checkpoints" / "last.ckpt")
    check("--with-head exports the checkpoint's head",
          all(np.array_equal(wh[k], final[k]) for k in final if k.startswith("head.")) and "head.2.weight" in wh)
    # What the student was trained on travels with it: the teacher's mean / std (the tiny
    # bundle's 0.5,0.45,0.4 / 0.25), image size and channel order, in __metadata__ of a
    # .safetensors and in a JSON file beside a .pth.
    wh_meta = read_safetensors(tmp / "with_head.safetensors")[1]
    check("a .safetensors export records the training input (mean, std, size, RGB)",
          wh_meta.get("image_mean") == "0.5,0.45,0.4" and wh_meta.get("image_std") == "0.25,0.25,0.25"
          and wh_meta.get("image_size") == str(S) and wh_meta.get("channel_order") == "RGB", str(wh_meta))
    sidecar = json.loads((tmp / "exported.json").read_text()) if (tmp / "exported.json").exists() else {}
    check("a .pth export has a JSON beside it with the training input",
          sidecar.get("mean") == [0.5, 0.45, 0.4] and sidecar.get("std") == [0.25, 0.25, 0.25]
          and sidecar.get("image_size") == S and sidecar.get("channel_order") == "RGB"
          and sidecar.get("arch") == "resnet18" and sidecar.get("layout") == "torchvision", str(sidecar))
    check("checkpoint metadata", final_meta.get("global_step") == str(steps) and final_meta.get("epoch") == str(EPOCHS)
          and final_meta.get("arch") == "resnet18" and "lgd_version" in final_meta, str({k: final_meta[k] for k in
                                                                                        ("epoch", "global_step")}))

    # 2. SIGKILL at a random step, then the same command again.
    kill_at = random.Random().randint(4, steps - 3)  # after the first checkpoint (step 3)
    cmd = [LGD, "train", "--config", str(config), "--set", "run.name=killed"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reached = wait_for_step(proc, runs / "killed", kill_at)
    # One run per run directory: a second one started while this one runs is refused.
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    second_lines = second.stderr.strip().splitlines()
    check("a second run on a directory in use is refused, naming it and the process",
          second.returncode == 2 and len(second_lines) >= 1 and
          f"{runs / 'killed'}: the run directory is in use by another process (pid {proc.pid} on" in second_lines[-1],
          second_lines[-1] if second_lines else f"exit {second.returncode}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(r["step"] for r in metrics(runs / "killed") if r["kind"] == "train")
    check(f"SIGKILL during the run (aimed at step {kill_at})", reached and proc.returncode == -signal.SIGKILL,
          f"last logged step {killed_at}")
    # A write the kill interrupted leaves its temporary file (write_file_atomic's naming).
    leftover = runs / "killed" / "checkpoints" / f"last.ckpt.tmp.{proc.pid}"
    leftover.write_bytes(b"half a checkpoint")
    done = run(*cmd)  # the lock of the killed process is gone with it
    check("the interrupted write's temporary file is removed on resume", not leftover.exists())
    killed_train = [r["step"] for r in metrics(runs / "killed") if r["kind"] == "train"]
    check("after the resume metrics.jsonl holds each step once", killed_train == list(range(1, steps + 1)),
          str(killed_train))
    killed_recs = metrics(runs / "killed")
    check("after the resume metrics.jsonl has the uninterrupted run's records, in its order",
          [(r["kind"], r["step"]) for r in killed_recs] == [(r["kind"], r["step"]) for r in recs],
          f"{[(r['kind'], r['step']) for r in killed_recs]}")
    # The event files as TensorBoard reads them, by lgd's independent reader: in file order, a
    # restart event drops what came before at its step and later.
    kept = []
    killed_events = sorted((runs / "killed" / "tb").glob("events.out.tfevents.*"))
    for e in killed_events:
        records = read_records(e)
        for step in tb_restarts(records):
            kept = [x for x in kept if x[1] < step]
        kept += tb_scalars(records)
    kept_loss = [(step, v) for tag, step, v, _ in kept if tag == "train/loss"]
    check("after the resume the event files, restarts applied, hold each step's loss once, as metrics.jsonl",
          len(killed_events) == 2 and [s for s, _ in kept_loss] == killed_train and
          all(abs(v - r["loss"]) < 1e-5 * max(1, abs(r["loss"]))
              for (_, v), r in zip(kept_loss, [r for r in killed_recs if r["kind"] == "train"])),
          f"{len(killed_events)} files, steps {[s for s, _ in kept_loss]}")
    tb_killed = tensorboard_scalars(runs / "killed" / "tb")
    if tb_killed is not None:
        check("after the resume TensorBoard's own reader (purging the restarted steps) matches metrics.jsonl",
              *scalars_match_jsonl(tb_killed, killed_recs))
    check("re-running resumes from last.ckpt", "resuming from" in done.stderr,
          [l for l in done.stderr.splitlines() if "resuming" in l][0] if "resuming" in done.stderr else done.stderr[-300:])
    killed, _ = read_safetensors(runs / "killed" / "checkpoints" / "last.ckpt")
    same_tensors("killed + resumed run ends bit-identical (student, head, optimiser, VSB)", final, killed)
    sd_k = torch.load(runs / "killed" / "student.pth", weights_only=True)
    check("killed + resumed student.pth bit-identical", all(torch.equal(sd[k], sd_k[k]) for k in sd))

    # 3. SIGTERM: checkpoint, exit 143; resume.
    cmd = [LGD, "train", "--config", str(config), "--set", "run.name=term"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_step(proc, runs / "term", 5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    term_ckpt = runs / "term" / "checkpoints" / "last.ckpt"
    _, meta = read_safetensors(term_ckpt) if term_ckpt.exists() else ({}, {})
    check("SIGTERM saves a checkpoint and exits 143", proc.returncode == 143 and "SIGTERM" in err and
          int(meta.get("global_step", -1)) >= 5, f"exit {proc.returncode}, checkpoint step {meta.get('global_step')}")
    run(*cmd)
    term, _ = read_safetensors(term_ckpt)
    same_tensors("SIGTERM + resumed run ends bit-identical", final, term)

    # 3b. Deferred non-finite checks (the step never waits for the host, as on CUDA): the same
    #     run, stopped at step 9 and resumed, ends with the same weights and losses bit for bit.
    deferred_args = ["--set", "run.name=deferred", "--set", "train.nonfinite_check=deferred"]
    first = run(LGD, "train", "--config", config, *deferred_args, "--set", "train.max_steps=9")
    check("deferred checks: the start-up line says so",
          "non-finite losses checked on the device" in first.stderr + first.stdout,
          str([l for l in (first.stderr + first.stdout).splitlines() if "non-finite" in l]))
    run(LGD, "train", "--config", config, *deferred_args)
    deferred, _ = read_safetensors(runs / "deferred" / "checkpoints" / "last.ckpt")
    same_tensors("deferred checks (stopped at step 9, resumed): bit-identical to per-step checks", final, deferred)
    losses = [r["loss"] for r in metrics(runs / "deferred") if r["kind"] == "train"]
    check("deferred checks: the same logged losses", losses == [r["loss"] for r in train], f"{losses[:3]} ...")

    # 4. Non-finite loss: a teacher temperature whose inverse overflows float32.
    done = run(LGD, "train", "--config", config, "--set", "run.name=nan", "--set", "method.teacher_temp=1e-40",
               "--set", "train.max_nonfinite=3", check_rc=False)
    lines = done.stderr.strip().splitlines()
    nan_ckpts = list((runs / "nan" / "checkpoints").glob("*.ckpt"))
    check("NaN guard: skips, then stops with one clear line and no checkpoint",
          done.returncode == 1 and "NaN or Inf for 3 steps in a row" in lines[-1] and lines[-1].startswith("lgd: error:")
          and sum("step skipped" in l for l in lines) == 3 and not nan_ckpts, lines[-1] if lines else "")
    done = run(LGD, "train", "--config", config, "--set", "run.name=nan_deferred", "--set", "method.teacher_temp=1e-40",
               "--set", "train.max_nonfinite=3", "--set", "train.nonfinite_check=deferred", check_rc=False)
    lines = done.stderr.strip().splitlines()
    nan_ckpts = list((runs / "nan_deferred" / "checkpoints").glob("*.ckpt"))
    check("deferred NaN guard: skipped on the device, read at each log step, then the same stop",
          done.returncode == 1 and "NaN or Inf for 3 steps in a row" in lines[-1] and lines[-1].startswith("lgd: error:")
          and sum("with a NaN or Inf loss skipped" in l for l in lines) == 3 and not nan_ckpts,
          "\n".join(lines[-4:]))
    logged = [l for l in lines if "[train] epoch" in l and " loss " in l]
    check("deferred: a log line whose steps were all skipped shows loss nan, as per-step checks do",
          logged and all(" loss nan " in l for l in logged), "\n".join(logged))

    # 4b. A skipped step leaves no trace in the student: its first convolution scaled by 1e36 makes
    #     every forward overflow (BatchNorm's batch variance is Inf), so each step is skipped with
    #     a finite lr. The BatchNorm running statistics that the forward updated are put back, so
    #     the end-of-run checkpoint is written and holds the loaded statistics exactly.
    sd = torch.load(whole / "student.pth", weights_only=True)
    sd["conv1.weight"] = sd["conv1.weight"] * 1e36
    torch.save(sd, tmp / "overflowing.pth")
    for mode in ("step", "deferred"):
        name = f"skip_trace_{mode}"
        done = run(LGD, "train", "--config", config, "--set", f"run.name={name}", "--set", "student.init=weights",
                   "--set", f"student.weights={tmp / 'overflowing.pth'}", "--set", "train.max_steps=2",
                   "--set", "train.max_nonfinite=10", "--set", f"train.nonfinite_check={mode}",
                   "--set", "train.val_every=0", "--set", "train.val_every_steps=0", check_rc=False)
        last = runs / name / "checkpoints" / "last.ckpt"
        got = read_safetensors(last)[0] if last.exists() else {}
        stats = [k for k in sd if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
        same = bool(got) and all(np.array_equal(got["student." + k], sd[k].numpy()) for k in stats)
        skipped = sum(("step skipped" in l or "with a NaN or Inf loss skipped" in l)
                      for l in done.stderr.splitlines())
        check(f"skipped steps ({mode} checks) leave BatchNorm statistics as loaded; the checkpoint is written",
              done.returncode == 0 and skipped >= 1 and same and len(stats) > 0,
              f"exit {done.returncode}, {skipped} skip line(s), {len(stats)} statistics compared: "
              + "\n".join(done.stderr.strip().splitlines()[-3:]))

    # 5. Bad input.
    done = run(LGD, "train", "--config", config, "--set", "run.name=whole", "--set", "student.arch=resnet34",
               check_rc=False)
    check("resuming with another student is one line naming arch",
          done.returncode == 2 and "arch = resnet18" in done.stderr.strip().splitlines()[-1] and "resnet34" in done.stderr,
          done.stderr.strip().splitlines()[-1])
    done = run(LGD, "train", "--config", config, "--set", "run.name=size", "--set", "data.image_size=64", check_rc=False)
    last_line = done.stderr.strip().splitlines()[-1]
    check("data.image_size differing from the teacher's is one line naming both",
          done.returncode == 2 and "data.image_size: 64" in last_line and "32 px" in last_line, last_line)
    done = run(LGD, "train", "--config", config, "--set", "run.name=resume_missing", "--resume", tmp / "nope.ckpt",
               check_rc=False)
    check("--resume of a missing file is one line", done.returncode == 1 and done.stderr.strip() ==
          f"lgd: error: {tmp / 'nope.ckpt'}: no such checkpoint (--resume)", done.stderr.strip())

    # 6. Student initialised from weights: torchvision keys (.pth) and an lgd checkpoint (with its
    #    head). Zero epochs of warm-up and lr ~ 0 leave the weights as loaded, so the first
    #    checkpoint must hold exactly the loaded tensors.
    for name, source in (("init_pth", whole / "student.pth"), ("init_ckpt", whole / "checkpoints" / "last.ckpt")):
        run(LGD, "train", "--config", config, "--set", f"run.name={name}", "--set", "student.init=weights",
            "--set", f"student.weights={source}", "--set", "optim.epochs=1", "--set", "optim.warmup_epochs=0",
            "--set", "optim.lr=1e-30", "--set", "optim.weight_decay=0", "--set", "train.val_every=0", "--set", "train.val_every_steps=0")
        got, _ = read_safetensors(runs / name / "checkpoints" / "last.ckpt")
        convs = [k for k in got if k.startswith("student.") and k.endswith("conv1.weight")]
        same = all(np.array_equal(got[k], final[k]) for k in convs)
        if name == "init_ckpt":
            same = same and np.array_equal(got["head.2.weight"], final["head.2.weight"])
        check(f"student.init: weights from {source.name}", same and len(convs) > 0, f"{len(convs)} conv weights compared")

    # 7. SEED.
    done = run(LGD, "train", "--config", config, "--set", "run.name=seed", "--set", "method.name=seed",
               "--set", "method.queue_size=64", "--set", "optim.epochs=2", "--set", "train.val_every=0", "--set", "train.val_every_steps=0")
    recs = [r for r in metrics(runs / "seed") if r["kind"] == "train"]
    check("SEED trains", len(recs) == 8 and "loss_seed" in recs[-1] and np.isfinite(recs[-1]["loss"]),
          f"loss {recs[0]['loss']:.4f} -> {recs[-1]['loss']:.4f}")

print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
