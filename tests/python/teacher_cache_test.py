"""`lgd reinforce` and `lgd train --set teacher.cache=DIR` end to end on CPU.

usage: teacher_cache_test.py LGD SOURCE_DIR

The test writes an image folder (4 classes, one unreadable file among them, so that a
replaced sample is part of the views) and a small TorchScript teacher bundle, then checks:
  * the cache: manifest.json fields, embeddings.bin of K x N x D values read with
    numpy.memmap, unit rows, every row written; the embeddings equal the teacher's own
    forward (torch.jit.load in Python) on the same views, which the test regenerates by
    asking lgd for a run whose view is deterministic (data.augment=eval);
  * exactness: with K = epochs and a float32 cache, the trained student.pth, the last
    checkpoint (student, head, optimiser, VSB) and every loss in metrics.jsonl are
    bit-identical to the run without a cache; run.seed changed with data.seed kept reuses
    the cache; a float16 cache trains and moves the loss by little;
  * refusals (exit 2, one line naming the cache and the first differing field): another
    teacher, view, data.seed and dataset; resuming a run with a cache of another K; an
    unfinished cache (exit 1);
  * resume: `lgd reinforce` stopped by SIGTERM (exit 143) and killed by SIGKILL leaves no
    manifest, and the same command again ends with embeddings.bin byte-identical to an
    uninterrupted one; `--nproc 2` writes the same cache as one process.
"""
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from safetensors_io import read_safetensors
from tiny_teacher import make_tiny_bundle, write_images

LGD, SOURCE = sys.argv[1], Path(sys.argv[2])
S, D, L = 32, 24, 48
PER_CLASS, BATCH, EPOCHS = 16, 16, 3
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


def losses(run_dir):
    keys = ("step", "loss", "loss_vis", "loss_tex", "grad_norm", "student_top1")
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.append({k: r[k] for k in keys if k in r})
    return out


def one_error_line(done):
    lines = [l for l in done.stderr.splitlines() if l.strip()]
    return lines[-1] if lines else ""


def embeddings(cache):
    m = json.loads((cache / "manifest.json").read_text())
    dtype = {"float32": np.float32, "float16": np.float16}[m["dtype"]]
    return m, np.memmap(cache / "embeddings.bin", dtype=dtype, mode="r",
                        shape=(m["views"], m["size"], m["embed_dim"]))


def main():
    tmp = Path(tempfile.mkdtemp(prefix="lgd_cache_"))
    images = tmp / "images"
    write_images(images, PER_CLASS)
    (images / "red_square" / "999_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    bundle = tmp / "teacher"
    make_tiny_bundle(tmp, bundle, image_size=S, dim=D, context=L)
    config = tmp / "cache.yaml"
    config.write_text(f"""
run: {{output_dir: {tmp / 'runs'}, seed: 3, device: cpu, threads: 2}}
student: {{arch: resnet18}}
teacher: {{bundle: {bundle}}}
data: {{dataset: image_folder, root: {images}, image_size: {S}, batch_size: {BATCH}, workers: 2,
       max_bad_fraction: 0.1}}
bank: {{template_list: ["a photo of a {{}}.", "the {{}}"]}}
method: {{name: lgd, vsb_momentum: 0.9}}
optim: {{lr: 0.1, epochs: {EPOCHS}, warmup_epochs: 1}}
train: {{log_every: 1, checkpoint_every: 0}}
""")
    runs = tmp / "runs"
    N = 4 * PER_CLASS + 1

    # 1. The cache itself.
    c32 = tmp / "c32"
    done = run(LGD, "reinforce", "--config", config, "--views", EPOCHS, "--dtype", "float32", "--out", c32)
    check("reinforce reports the size before it starts", "GiB" in done.stderr and "images x 3 views" in done.stderr,
          done.stderr.splitlines()[0] if done.stderr else "")
    m, e = embeddings(c32)
    check("manifest: views, size, width, dtype", (m["views"], m["size"], m["embed_dim"], m["dtype"]) ==
          (EPOCHS, N, D, "float32"), str({k: m[k] for k in ("views", "size", "embed_dim", "dtype")}))
    for field in ("teacher.digest", "dataset.digest", "view.crop_scale", "data.seed", "image_size"):
        check(f"manifest records {field}", field in m["fields"], str(list(m["fields"])))
    norms = np.linalg.norm(np.asarray(e, dtype=np.float64), axis=2)
    check("every row written, each of unit norm", np.abs(norms - 1).max() < 1e-5, f"max |norm - 1| {np.abs(norms - 1).max():.2e}")
    check("the views of an image differ between epochs", not np.allclose(e[0], e[1]))

    # The teacher's forward in Python: with the eval view, view k of image i is its resized centre
    # crop, which torchvision makes independently of lgd.
    ceval = tmp / "ceval"
    run(LGD, "reinforce", "--config", config, "--set", "data.augment=eval", "--views", 1, "--dtype", "float32",
        "--out", ceval)
    _, ev = embeddings(ceval)
    tower = torch.jit.load(str(bundle / "image_encoder.pt")).eval()
    manifest = (bundle / "lgd_teacher.yaml").read_text()
    import yaml
    meta = yaml.safe_load(manifest)
    mean = torch.tensor(meta["image"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(meta["image"]["std"]).view(1, 3, 1, 1)
    import torchvision.transforms as T
    from PIL import Image
    files = sorted(p for p in images.rglob("*") if p.is_file())
    files = sorted(files, key=lambda p: (p.parent.name, p.name))
    ok_rows, worst = 0, 0.0
    for i, f in enumerate(files):
        if f.name == "999_broken.png":
            continue
        img = Image.open(f).convert("RGB")
        resize = round(S * 256 / 224)  # lgd's eval view: torchvision's Resize(S * 256 / 224), CenterCrop(S)
        x = T.Compose([T.Resize(resize), T.CenterCrop(S), T.PILToTensor()])(img).unsqueeze(0).float() / 255
        with torch.no_grad():
            t = tower((x - mean) / std)
        t = torch.nn.functional.normalize(t, dim=1)[0].numpy()
        diff = float(np.abs(t - ev[0, i]).max())
        worst = max(worst, diff)
        ok_rows += diff < 2e-2
    check("eval-view embeddings equal the teacher's forward in Python on torchvision's crop",
          ok_rows >= N - 1 - 2, f"{ok_rows} of {N - 1} rows within 2e-2, worst {worst:.3g}")

    # 2. Exactness: K = epochs, float32.
    run(LGD, "train", "--config", config, "--set", "run.name=plain")
    done = run(LGD, "train", "--config", config, "--set", "run.name=cached", "--set", f"teacher.cache={c32}")
    check("train says where the embeddings come from", "teacher embeddings from" in done.stderr)
    plain = (runs / "plain" / "student.pth").read_bytes()
    cached = (runs / "cached" / "student.pth").read_bytes()
    check("student.pth bit-identical with a float32 cache of K = epochs", plain == cached)
    pa, _ = read_safetensors(runs / "plain" / "checkpoints" / "last.ckpt")
    pb, _ = read_safetensors(runs / "cached" / "checkpoints" / "last.ckpt")
    diff = [k for k in pa if k not in pb or not np.array_equal(pa[k], pb[k])]
    check("last checkpoint (student, head, optimiser, VSB) bit-identical", not diff and len(pa) == len(pb) and
          any(k.startswith("method.") for k in pa), str(diff[:5]))
    check("every logged loss bit-identical", losses(runs / "plain") == losses(runs / "cached"),
          f"{len(losses(runs / 'plain'))} records")

    # One cache serves another run.seed (the student's initialisation) when data.seed stays.
    done = run(LGD, "train", "--config", config, "--set", "run.name=seed5", "--set", "run.seed=5", "--set",
               "data.seed=3", "--set", f"teacher.cache={c32}", "--set", "optim.epochs=1")
    check("run.seed 5 with data.seed 3 uses the data.seed 3 cache", done.returncode == 0)

    c16 = tmp / "c16"
    run(LGD, "reinforce", "--config", config, "--views", EPOCHS, "--out", c16)
    m16, e16 = embeddings(c16)
    check("float16 is the default dtype", m16["dtype"] == "float16")
    check("float16 rows are the float32 rows rounded", np.abs(np.asarray(e16, np.float32) - e).max() < 1e-3)
    run(LGD, "train", "--config", config, "--set", "run.name=half", "--set", f"teacher.cache={c16}")
    l32 = [r["loss"] for r in losses(runs / "plain") if "loss" in r]
    l16 = [r["loss"] for r in losses(runs / "half") if "loss" in r]
    move = max(abs(x - y) / abs(x) for x, y in zip(l32, l16))
    check("a float16 cache moves the loss by little", 0 < move < 5e-2, f"largest relative loss difference {move:.3g}")

    # 3. Refusals.
    def refused(name, args, field, code=2):
        done = run(LGD, "train", "--config", config, "--set", f"run.name={name}", *args, check_rc=False)
        line = one_error_line(done)
        check(f"refused: {name}", done.returncode == code and field in line and "teacher.cache" in line, line)

    other = tmp / "teacher_other"
    shutil.copytree(bundle, other)
    with open(other / "lgd_teacher.yaml", "a") as f:
        f.write("# another teacher\n")
    refused("other_teacher", ["--set", f"teacher.cache={c32}", "--set", f"teacher.bundle={other}"], "teacher.digest")
    refused("other_view", ["--set", f"teacher.cache={c32}", "--set", "data.flip_p=0.3"], "view.flip_p")
    refused("other_seed", ["--set", f"teacher.cache={c32}", "--set", "data.seed=4"], "data.seed")
    fewer = tmp / "images_fewer"
    shutil.copytree(images, fewer)
    next((fewer / "blue_stripes").glob("*.png")).unlink()
    refused("other_dataset", ["--set", f"teacher.cache={c32}", "--set", f"data.root={fewer}"], "dataset.")
    c1 = tmp / "c1"
    run(LGD, "reinforce", "--config", config, "--views", 1, "--dtype", "float32", "--out", c1)
    run(LGD, "train", "--config", config, "--set", "run.name=remap", "--set", f"teacher.cache={c32}",
        "--set", "train.max_steps=5")
    done = run(LGD, "train", "--config", config, "--set", "run.name=remap", "--set", f"teacher.cache={c1}",
               check_rc=False)
    line = one_error_line(done)
    check("refused: resuming with a cache of another K", done.returncode == 2 and "cache_views" in line and str(c1) in line, line)
    done = run(LGD, "train", "--config", config, "--set", "run.name=k1", "--set", f"teacher.cache={c1}")
    check("K = 1 < epochs trains (each view seen 3 times)", "up to 3 times" in done.stderr)
    done = run(LGD, "train", "--config", config, "--set", "run.name=k1_of_3", "--set", f"teacher.cache={c32}",
               "--set", "teacher.cache_views=1")
    check("teacher.cache_views=1 of a 3-view cache trains as the 1-view cache does",
          (runs / "k1_of_3" / "student.pth").read_bytes() == (runs / "k1" / "student.pth").read_bytes())
    done = run(LGD, "train", "--config", config, "--set", "run.name=k4_of_3", "--set", f"teacher.cache={c32}",
               "--set", "teacher.cache_views=4", check_rc=False)
    line = one_error_line(done)
    check("refused: teacher.cache_views beyond the cache", done.returncode == 2 and "teacher.cache_views" in line
          and "holds 3 views" in line, line)

    # 4. Resume of an interrupted lgd reinforce: a bigger, slower set.
    big = tmp / "big"
    rng = np.random.default_rng(1)
    from PIL import Image as PILImage
    for c in range(4):
        (big / f"c{c}").mkdir(parents=True)
        for i in range(150):
            PILImage.fromarray(rng.integers(0, 256, (320, 320, 3), dtype=np.uint8)).save(big / f"c{c}" / f"{i:03d}.png")
    big_args = ["--config", config, "--set", f"data.root={big}", "--set", "data.batch_size=8",
                "--set", "data.workers=1", "--views", 3, "--dtype", "float32"]
    whole = tmp / "big_whole"
    run(LGD, "reinforce", *big_args, "--out", whole)
    reference = (whole / "embeddings.bin").read_bytes()

    for sig, name in ((signal.SIGTERM, "sigterm"), (signal.SIGKILL, "sigkill")):
        out = tmp / f"big_{name}"
        proc = subprocess.Popen([LGD, "reinforce", *map(str, big_args), "--out", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "plan.json").exists():
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(sig)
        _, err = proc.communicate()
        stopped = proc.returncode == (143 if sig == signal.SIGTERM else -9)
        check(f"{name}: reinforce stopped mid-way", stopped and not (out / "manifest.json").exists(),
              f"exit {proc.returncode}")
        if sig == signal.SIGTERM:
            progress = list(out.glob("progress.*.json"))
            check("sigterm: progress saved", len(progress) == 1 and "progress saved" in err,
                  progress[0].read_text() if progress else err[-300:])
        done = run(LGD, "train", "--config", config, "--set", f"data.root={big}", "--set", f"run.name=unfinished_{name}",
                   "--set", f"teacher.cache={out}", check_rc=False)
        line = one_error_line(done)
        check(f"{name}: the unfinished cache is refused", done.returncode == 1 and "unfinished" in line, line)
        if sig == signal.SIGKILL:
            done = run(LGD, "reinforce", *big_args[:-2], "--dtype", "float16", "--out", out, check_rc=False)
            line = one_error_line(done)
            check("another command on an unfinished cache is refused",
                  done.returncode == 1 and "unfinished cache of another run" in line and "dtype" in line, line)
        done = run(LGD, "reinforce", *big_args, "--out", out)
        check(f"{name}: the same command continues", "continuing" in done.stderr)
        check(f"{name}: finished cache byte-identical to an uninterrupted one",
              (out / "embeddings.bin").read_bytes() == reference)
    done = run(LGD, "reinforce", *big_args, "--out", whole)
    check("a finished cache is left alone", "already complete" in done.stderr)
    done = run(LGD, "reinforce", *big_args[:-2], "--dtype", "float16", "--out", whole, check_rc=False)
    line = one_error_line(done)
    check("a finished cache of another dtype is refused", done.returncode == 1 and "dtype" in line, line)

    two = tmp / "big_two"
    run(LGD, "reinforce", "--nproc", 2, *big_args, "--out", two)
    _, e2 = embeddings(two)
    _, e1 = embeddings(whole)
    worst = float(np.abs(np.asarray(e2) - np.asarray(e1)).max())
    check("--nproc 2 writes the cache one process writes", worst < 1e-5 and
          len(list(two.glob("progress.*-of-2.json"))) == 2, f"max difference {worst:.2e}")

    if failures:
        sys.exit(f"{len(failures)} check(s) failed: {failures}")
    shutil.rmtree(tmp, ignore_errors=True)
    print("all checks passed")


if __name__ == "__main__":
    main()
