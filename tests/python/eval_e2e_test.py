"""`lgd eval` end to end on real image files, checked against torchvision and Python.

usage: eval_e2e_test.py LGD

An image folder of 4 classes (solid colours around one hue per class, PNG) and a random-init
ResNet-18 with a projection head exported by `lgd export`. Checks:
  * the features lgd extracts (cached in <out>/cache) equal torchvision's resnet18 on the same
    images with the eval view and ImageNet normalisation;
  * linear (MoCo protocol, short schedule) and linear-fast reach >= 99% on these linearly
    separable features; the faithful probe's learning rate per epoch follows lr x batch/256
    with x0.1 at each milestone; the backbone (BatchNorm statistics included) is unchanged:
    the exported classifier holds exactly the input backbone, loads into torchvision's
    resnet18 with strict=True, and its predictions score what lgd reported;
  * knn equals a brute-force weighted kNN on lgd's features; zero-shot equals
    argmax 100 * norm(head(f)) . TSB computed in Python; per-class and confusion CSVs agree;
  * a second run takes its features from the cache; --subset keeps that % per class;
  * bad input is one line and a non-zero exit.
"""
import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, str(Path(__file__).parent))
from colour_folder import CLASSES, eval_view, write_images  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402


def torchvision_features(model, colours):
    with torch.no_grad():
        return model(eval_view(colours, S))


LGD = sys.argv[1]
TRAIN_PER_CLASS, VAL_PER_CLASS, S, D = 16, 8, 32, 16
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(name)


def run(*args, check_rc=True):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check_rc and done.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, args))}\n{done.stdout}{done.stderr}")
    return done


def confusion_csv(path):
    rows = list(csv.reader(open(path)))
    assert rows[0][1:] == CLASSES, rows[0]
    return np.array([[int(v) for v in r[1:]] for r in rows[1:]])


def confusion(pred, labels):
    m = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    for p, y in zip(pred, labels):
        m[y, p] += 1
    return m


def cached_features(out, which_root):
    for f in sorted((out / "cache").glob("features-*.safetensors")):
        tensors, meta = read_safetensors(f)
        if f"data=image_folder:{which_root}:" in meta["key"] and "view=eval" in meta["key"]:
            return torch.from_numpy(tensors["features"].copy()), torch.from_numpy(tensors["labels"].copy())
    raise AssertionError(f"no cached eval-view features of {which_root} in {out}/cache")


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    train_colours, train_labels = write_images(tmp / "train", TRAIN_PER_CLASS, 0)
    val_colours, val_labels = write_images(tmp / "val", VAL_PER_CLASS, 1)
    weights = tmp / "student.pth"
    run(LGD, "export", "--arch", "resnet18", "--init", "random", "--seed", "5", "--with-head",
        "--embed-dim", D, "-o", weights)
    sd = torch.load(weights, weights_only=True)
    head_sd = {k[5:]: v for k, v in sd.items() if k.startswith("head.")}
    backbone_sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    g = torch.Generator().manual_seed(0)
    tsb = F.normalize(torch.randn(D, len(CLASSES), generator=g), dim=0)
    write_safetensors(tmp / "tsb.safetensors", {"tsb": tsb.numpy()},
                      {"class_names": "\n".join(CLASSES), "templates": "a photo of a {}.", "teacher": "test"})

    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    model.load_state_dict(backbone_sd, strict=True)
    model.eval()
    head = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, D))
    head.load_state_dict(head_sd)

    out = tmp / "out"
    lin_batch, lin_lr, milestones, epochs = 16, 3.0, [6, 9], 10
    student = [LGD, "eval", "--weights", weights, "--arch", "resnet18", "--data", tmp / "train", "--val-data",
               tmp / "val", "--image-size", S, "--threads", 2, "--workers", 2]
    common = [*student, "--out", out]
    done = run(*common, "--protocol", "knn,zero-shot,linear-fast", "--protocol", "linear",
               "--linear-epochs", epochs, "--linear-batch", lin_batch, "--linear-lr", lin_lr,
               "--linear-milestones", ",".join(map(str, milestones)), "--bank", tmp / "tsb.safetensors",
               "--export-classifier", tmp / "classifier.pth")
    print(done.stdout)
    res = json.loads((out / "results.json").read_text())
    by = {r["protocol"]: r for r in res["results"]}
    check("results.json lists the four protocols in order",
          [r["protocol"] for r in res["results"]] == ["knn", "zero-shot", "linear-fast", "linear"])
    check("table printed", "| linear-fast |" in done.stdout and "| knn " in done.stdout, done.stdout)
    check("dataset sizes", res["dataset"]["train_samples"] == 64 and res["dataset"]["val_samples"] == 32,
          str(res["dataset"]))

    # Features: lgd's cached eval-view features against torchvision's resnet18.
    tv_train = torchvision_features(model, train_colours)
    tv_val = torchvision_features(model, val_colours)
    lgd_train, lgd_train_y = cached_features(out, tmp / "train")
    lgd_val, lgd_val_y = cached_features(out, tmp / "val")
    diff = max((lgd_train - tv_train).abs().max().item(), (lgd_val - tv_val).abs().max().item())
    scale = tv_train.abs().max().item()
    check("features equal torchvision's", diff <= 1e-4 * max(scale, 1.0), f"max diff {diff:.2e} (scale {scale:.2f})")

    # Where this CPU's channels_last convolutions are wrong (Debian 13's PyTorch 2.6 on AVX-512
    # AMD CPUs: ResNet's 256 -> 512 1x1 stride-2 one), lgd says so and evaluates in the contiguous
    # layout, which the comparison above checks; `lgd info`'s verdict equals Python's on that one.
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(2, 256, 4, 4, generator=g), torch.randn(512, 256, 1, 1, generator=g) / 16
    with torch.no_grad():
        ref = F.conv2d(x.double(), w.double(), stride=2)
        cl = F.conv2d(x.contiguous(memory_format=torch.channels_last),
                      w.contiguous(memory_format=torch.channels_last), stride=2)
    python_ok = ((cl.double() - ref).abs().max() / ref.abs().max()).item() < 1e-4
    info = [l for l in run(LGD, "info").stdout.splitlines() if l.startswith("CPU convolutions in channels_last")]
    check("lgd info's channels_last verdict equals Python's", len(info) == 1 and
          ("agree with a float64 reference" in info[0]) == python_ok, f"{info}, Python's agrees: {python_ok}")
    warned = "convolutions are wrong in channels_last" in done.stderr
    check("the eval warns exactly where channels_last is wrong", warned == (not python_ok), done.stderr[-300:])
    check("feature labels", torch.equal(lgd_train_y, torch.tensor(train_labels)) and
          torch.equal(lgd_val_y, torch.tensor(val_labels)))

    # kNN: brute force on lgd's own features.
    tr = F.normalize(lgd_train.double(), dim=1)
    va = F.normalize(lgd_val.double(), dim=1)
    preds, top5 = [], 0
    for q, y in zip(va, val_labels):
        sims = sorted(((float(q @ t), int(l)) for t, l in zip(tr, train_labels)), key=lambda s: -s[0])[:20]
        votes = [0.0] * len(CLASSES)
        for s, l in sims:
            votes[l] += math.exp(s / 0.07)
        preds.append(int(np.argmax(votes)))
    want = confusion(preds, val_labels)
    check("knn confusion equals brute force", np.array_equal(confusion_csv(out / "knn_confusion.csv"), want),
          f"\n{want}\n{confusion_csv(out / 'knn_confusion.csv')}")
    check("knn top-1 equals brute force", abs(by["knn"]["top1"] - 100.0 * np.trace(want) / len(val_labels)) < 1e-9)

    # Zero-shot: 100 * norm(head(f)) . TSB in Python.
    with torch.no_grad():
        zs = 100 * F.normalize(head(lgd_val), dim=1) @ tsb
    srt = zs.sort(dim=1, descending=True).values
    margin = (srt[:, 0] - srt[:, 1]).min().item()
    want = confusion(zs.argmax(1).tolist(), val_labels)
    check("zero-shot confusion equals Python", np.array_equal(confusion_csv(out / "zero-shot_confusion.csv"), want),
          f"(min margin {margin:.3g})\n{want}")
    pc = list(csv.DictReader(open(out / "zero-shot_per_class.csv")))
    check("per-class CSV", [int(r["samples"]) for r in pc] == [VAL_PER_CLASS] * 4 and
          [int(r["correct"]) for r in pc] == list(np.diag(want)) and pc[0]["name"] == CLASSES[0], str(pc))

    # Linear probes.
    check("linear-fast >= 99%", by["linear-fast"]["top1"] >= 99.0, str(by["linear-fast"]["top1"]))
    check("linear (MoCo protocol) >= 99%", by["linear"]["top1"] >= 99.0,
          f"{by['linear']['top1']}, loss per epoch {by['linear']['loss_per_epoch']}")
    base = lin_lr * lin_batch / 256
    want_lr = [base * 0.1 ** sum(e >= m for m in milestones) for e in range(epochs)]
    check("linear lr schedule", all(abs(a - b) <= 1e-12 * base for a, b in zip(by["linear"]["lr_per_epoch"], want_lr))
          and len(by["linear"]["lr_per_epoch"]) == epochs, f"{by['linear']['lr_per_epoch']} vs {want_lr}")
    check("linear loss falls", by["linear"]["loss_per_epoch"][-1] < by["linear"]["loss_per_epoch"][0],
          str(by["linear"]["loss_per_epoch"]))
    check("linear reports the backbone unchanged", by["linear"]["backbone_unchanged"] is True)

    cls_sd = torch.load(tmp / "classifier.pth", weights_only=True)
    classifier = torchvision.models.resnet18(num_classes=len(CLASSES))
    classifier.load_state_dict(cls_sd, strict=True)  # raises on any missing or extra key
    check("classifier loads into torchvision resnet18 with strict=True", True)
    same = all(torch.equal(cls_sd[k], v) for k, v in backbone_sd.items())
    check("backbone (BatchNorm running statistics included) unchanged by the faithful probe", same)
    classifier.eval()
    with torch.no_grad():
        x = eval_view(val_colours, S)
        acc = 100.0 * (classifier(x).argmax(1) == torch.tensor(val_labels)).float().mean().item()
    check("exported classifier scores lgd's linear top-1", abs(acc - by["linear"]["top1"]) < 1e-6,
          f"{acc} vs {by['linear']['top1']}")

    # The cache: a second run extracts nothing.
    done = run(*common, "--protocol", "linear-fast,knn")
    res2 = json.loads((out / "results.json").read_text())
    check("second run reads the cache", [r["features"] for r in res2["results"]] == ["cached", "reused"]
          and res2["feature_extraction_seconds"] == {}, str([r["features"] for r in res2["results"]]))
    check("cached features give the same numbers",
          [r["top1"] for r in res2["results"]] == [by["linear-fast"]["top1"], by["knn"]["top1"]])

    # Augmented passes: one more pass over the training set with the linear view, cached too.
    run(*common, "--protocol", "linear-fast", "--fast-passes", "1")
    res3 = json.loads((out / "results.json").read_text())
    views = sorted(read_safetensors(f)[1]["key"].split(" view=")[1].split(" ")[0]
                   for f in (out / "cache").glob("features-*.safetensors"))
    check("--fast-passes 1 adds one linear-view pass", res3["results"][0]["augmented_passes"] == 1 and
          views == ["eval", "eval", "linear"] and list(res3["feature_extraction_seconds"]) == ["train/linear/1"]
          and res3["results"][0]["top1"] >= 99.0, f"{views} {res3['feature_extraction_seconds']}")

    # Semi-supervised subset: 25% of 16 per class = 4 per class.
    run(*student, "--protocol", "knn", "--subset", "25", "--out", tmp / "sub")
    sub = json.loads((tmp / "sub" / "results.json").read_text())
    check("--subset 25 keeps 4 per class", sub["dataset"]["train_samples"] == 16, str(sub["dataset"]))

    # Bad input: one line, non-zero exit.
    def one_line_error(name, args, needle):
        d = run(*args, check_rc=False)
        # Progress and warnings are log lines ("I ...", "W ..."); the error is one line.
        lines = [l for l in d.stderr.strip().splitlines() if l.startswith("lgd:")]
        check(name, d.returncode != 0 and len(lines) == 1 and needle in lines[0] and
              d.stderr.strip().splitlines()[-1] == lines[0], repr(d.stderr))

    plain = tmp / "plain.pth"
    run(LGD, "export", "--arch", "resnet18", "--init", "random", "-o", plain)
    one_line_error("zero-shot without a head", [LGD, "eval", "--weights", plain, "--arch", "resnet18", "--data", tmp / "train",
                   "--val-data", tmp / "val", "--image-size", S, "--protocol", "zero-shot", "--bank",
                   tmp / "tsb.safetensors", "--out", tmp / "e1"], "head")
    one_line_error("unknown protocol", [*common, "--protocol", "linaer"], "linaer")
    one_line_error("image folder without --val-data", [LGD, "eval", "--weights", weights, "--arch", "resnet18", "--data", tmp / "train",
                   "--protocol", "knn", "--out", tmp / "e2"], "--val-data")
    one_line_error("classifier export of a mobilenet_v3", [LGD, "eval", "--init", "random", "--arch",
                   "mobilenet_v3_small", "--data", tmp / "train", "--val-data", tmp / "val", "--protocol",
                   "linear-fast", "--export-classifier", tmp / "x.pth", "--out", tmp / "e3"], "mobilenet_v3_small")
    (tmp / "val" / "a_red" / "zz_broken.png").write_bytes(b"not a png")
    one_line_error("unreadable image", [*common, "--protocol", "knn", "--no-cache"], "zz_broken.png")

if failures:
    sys.exit(f"{len(failures)} check(s) failed: {failures}")
print("all checks passed")
