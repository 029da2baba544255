"""`lgd eval --protocol finetune` end to end on real image files, checked against torchvision.

usage: eval_finetune_test.py LGD

An image folder of 4 classes of solid colours (colour_folder.py) and a random-init ResNet-18
exported by `lgd export`. Checks:
  * fine-tuning learns: top-1 >= 90% on the evaluation set, the loss falls, results.json states
    the recipe (epochs, batch, both learning rates scaled by batch/256, schedule, optimiser);
  * the network --export-classifier writes loads into torchvision's resnet18 with strict=True,
    its backbone is not the input's (the whole student was trained, BatchNorm statistics
    included), and torchvision's predictions with it on the eval view score lgd's top-1;
  * the student the later protocols see is the original: kNN after finetune equals kNN alone;
  * resume: a run killed (SIGKILL) after an epoch's state was written, run again with the same
    command, continues after that epoch and ends bit-identical to the uninterrupted run (loss
    per epoch, top-1, exported weights); a finished run scores its state without training; a
    state that does not read is set aside with a warning and the run starts afresh;
  * --subset trains on that % per class.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).parent))
from colour_folder import CLASSES, eval_view, write_images  # noqa: E402
from safetensors_io import read_safetensors  # noqa: E402

LGD = sys.argv[1]
S, EPOCHS = 32, 10
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
    if not ok:
        failures.append(name)


def run(*args):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, args))}\n{done.stdout}{done.stderr}")
    return done


def results(out):
    return {r["protocol"]: r for r in json.loads((out / "results.json").read_text())["results"]}


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    train_colours, train_labels = write_images(tmp / "train", 16, 0)
    val_colours, val_labels = write_images(tmp / "val", 8, 1)
    weights = tmp / "student.pth"
    run(LGD, "export", "--arch", "resnet18", "--init", "random", "--seed", "5", "-o", weights)
    student = [LGD, "eval", "--weights", weights, "--arch", "resnet18", "--data", tmp / "train", "--val-data",
               tmp / "val", "--image-size", S, "--threads", 2, "--workers", 2]
    recipe = ["--finetune-epochs", EPOCHS, "--finetune-batch", 16, "--finetune-lr", 0.4, "--finetune-head-lr", 8]

    # The whole run, then kNN alone on the same student.
    a = tmp / "a"
    run(*student, "--protocol", "finetune,knn", *recipe, "--export-classifier", tmp / "a.pth", "--out", a)
    by = results(a)
    ft = by["finetune"]
    check(f"fine-tuning reaches >= 90% top-1 ({ft['top1']:.1f}%)", ft["top1"] >= 90.0, str(ft))
    check("the loss falls", ft["loss_per_epoch"][-1] < ft["loss_per_epoch"][0], str(ft["loss_per_epoch"]))
    check("results.json states the recipe",
          ft["epochs"] == EPOCHS and ft["batch"] == 16 and abs(ft["lr_backbone"] - 0.4 * 16 / 256) < 1e-12
          and abs(ft["lr_head"] - 8 * 16 / 256) < 1e-12 and "cosine" in ft["schedule"]
          and "Nesterov" in ft["optimizer"] and ft["resumed_after_epoch"] == 0
          and len(ft["loss_per_epoch"]) == EPOCHS, str(ft))
    run(*student, "--protocol", "knn", "--out", tmp / "knn")
    alone = results(tmp / "knn")["knn"]
    check("kNN after finetune equals kNN alone (the original student)", by["knn"]["top1"] == alone["top1"]
          and (a / "knn_confusion.csv").read_text() == (tmp / "knn" / "knn_confusion.csv").read_text())

    exported = torch.load(tmp / "a.pth", weights_only=True)
    net = torchvision.models.resnet18(num_classes=len(CLASSES))
    net.load_state_dict(exported, strict=True)  # raises on a missing or extra key
    check("the fine-tuned network loads into torchvision's resnet18 with strict=True", True)
    original = torch.load(weights, weights_only=True)
    check("its backbone was fine-tuned (weights and BatchNorm statistics changed)",
          not torch.equal(exported["layer1.0.conv1.weight"], original["layer1.0.conv1.weight"])
          and not torch.equal(exported["bn1.running_mean"], original["bn1.running_mean"]))
    net.eval()
    with torch.no_grad():
        pred = net(eval_view(val_colours, S)).argmax(1)
    acc = 100.0 * (pred == torch.tensor(val_labels)).float().mean().item()
    check("torchvision's predictions with it score lgd's top-1", abs(acc - ft["top1"]) < 1e-6,
          f"{acc} vs {ft['top1']}")

    # Killed after an epoch, then the same command again.
    b = tmp / "b"
    command = [str(x) for x in [*student, "--protocol", "finetune", *recipe, "--export-classifier", tmp / "b.pth",
                                "--out", b]]
    state = b / "finetune" / "state.safetensors"
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_after = None
    while proc.poll() is None:
        if state.exists():
            try:
                killed_after = int(read_safetensors(state)[1]["epochs_done"])
            except Exception:  # noqa: BLE001 (renamed into place between the check and the read)
                continue
            if killed_after >= 1:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.005)
    proc.wait()
    check("the run was killed before it finished", proc.returncode == -signal.SIGKILL and killed_after is not None
          and killed_after < EPOCHS, f"exit {proc.returncode}, state after epoch {killed_after}")
    done = run(*command)
    resumed = results(b)["finetune"]
    check(f"run again, it resumes after epoch {killed_after}", resumed["resumed_after_epoch"] == killed_after
          and f"resuming after epoch {killed_after} of {EPOCHS}" in done.stderr, str(resumed))
    check("and ends bit-identical to the uninterrupted run",
          resumed["loss_per_epoch"] == ft["loss_per_epoch"] and resumed["top1"] == ft["top1"]
          and all(torch.equal(v, exported[k]) for k, v in torch.load(tmp / "b.pth", weights_only=True).items()),
          f"{resumed['loss_per_epoch']} vs {ft['loss_per_epoch']}")
    done = run(*command)
    again = results(b)["finetune"]
    check("a finished run is scored from its state without training",
          again["resumed_after_epoch"] == EPOCHS and again["top1"] == ft["top1"]
          and "finetune epoch" not in done.stderr, done.stderr[-400:])

    # A state that does not read (here: cut short) costs its epochs, not the evaluation.
    c = tmp / "c"
    (c / "finetune").mkdir(parents=True)
    (c / "finetune" / "state.safetensors").write_bytes(state.read_bytes()[:300])
    done = run(*student, "--protocol", "finetune", *recipe, "--out", c)
    fresh = results(c)["finetune"]
    check("a state that does not read: a warning, then the whole run, as uninterrupted",
          "ignoring the unreadable state" in done.stderr and fresh["resumed_after_epoch"] == 0
          and fresh["loss_per_epoch"] == ft["loss_per_epoch"] and fresh["top1"] == ft["top1"], done.stderr[-600:])

    # Semi-supervised: 25% of 16 per class.
    run(*student, "--protocol", "finetune", "--subset", 25, "--finetune-epochs", 2, "--finetune-batch", 8,
        "--out", tmp / "sub")
    sub = json.loads((tmp / "sub" / "results.json").read_text())
    check("--subset 25 fine-tunes on 4 per class", sub["dataset"]["train_samples"] == 16
          and sub["results"][0]["batch"] == 8, str(sub["dataset"]))

if failures:
    sys.exit(f"{len(failures)} check(s) failed: {failures}")
print("all checks passed")
