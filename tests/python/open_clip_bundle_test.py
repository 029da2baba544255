"""scripts/export_clip.py against the real open_clip (open_clip_torch from PyPI), on real CLIP
architectures with random weights (--pretrained none: nothing is downloaded).

For RN50 and ViT-B-32: the script writes a bundle from open_clip's model; the bundle loads in
lgd; lgd's image embeddings (TEACHER_EMBED, lgd's Teacher) equal open_clip's encode_image on
the same normalised images, and its text embeddings (`lgd bank build`, one template: each TSB
column is the normalised embedding of one prompt) equal normalised encode_text, both to a
relative error below 1e-5 (float32 on the CPU, TorchScript in C++ against eager Python);
`lgd tokenize` gives the ids of open_clip's tokenizer on every ImageNet class name in three
prompt templates.

usage: open_clip_bundle_test.py LGD TEACHER_EMBED SOURCE_DIR
Skipped (77) where open_clip is not installed, unless LGD_REQUIRE_PYTHON_REFERENCES=1.
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from references import optional
from safetensors_io import read_safetensors

LGD, EMBED, SOURCE = sys.argv[1], sys.argv[2], Path(sys.argv[3])
open_clip = optional("open_clip")
if open_clip is None:
    sys.exit(77)
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES  # noqa: E402

TOLERANCE = 1e-5
TEMPLATES = ["a photo of a {}.", "a blurry photo of the {}.", "itap of my {}!"]
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)


def run(*args):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, args))}\n{done.stdout}{done.stderr}")
    return done.stdout


def relative_error(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


torch.set_num_threads(2)
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    for name in ("RN50", "ViT-B-32"):
        bundle = tmp / name
        run(sys.executable, SOURCE / "scripts/export_clip.py", "--model", name, "--pretrained", "none",
            "--seed", 7, "-o", bundle)
        torch.manual_seed(7)
        model, _, _ = open_clip.create_model_and_transforms(name, pretrained=None)
        model.eval()
        tokenizer = open_clip.get_tokenizer(name)
        size = model.visual.image_size
        size = size if isinstance(size, int) else size[0]

        # Image tower: the same normalised images through lgd's Teacher and open_clip.
        images = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
        images.numpy().astype(np.float32).tofile(tmp / "images.bin")
        shown = run(EMBED, bundle, tmp / "images.bin", 3, tmp / "lgd_images.bin")
        with torch.no_grad():
            reference = model.encode_image(images).numpy()
        ours = np.fromfile(tmp / "lgd_images.bin", dtype=np.float32).reshape(reference.shape)
        err = relative_error(ours, reference)
        check(f"{name}: the bundle loads in lgd and its image embeddings equal encode_image", err < TOLERANCE,
              f"{shown.strip()}, relative error {err:.1e}")

        # Text tower: one template, so TSB column c is normalize(encode_text(prompt c)).
        classes = list(IMAGENET_CLASSNAMES[:24])
        (tmp / "names.txt").write_text("".join(c + "\n" for c in classes))
        (tmp / "template.txt").write_text(TEMPLATES[1] + "\n")
        run(LGD, "bank", "build", "--teacher", bundle, "--classnames", tmp / "names.txt", "--templates",
            tmp / "template.txt", "--batch-size", 10, "-o", tmp / "tsb.safetensors")
        tsb = read_safetensors(tmp / "tsb.safetensors")[0]["tsb"]
        with torch.no_grad():
            text = F.normalize(model.encode_text(tokenizer([TEMPLATES[1].format(c) for c in classes])), dim=1)
        err = relative_error(tsb, text.numpy().T)
        check(f"{name}: lgd's text embeddings (lgd bank build) equal normalised encode_text", err < TOLERANCE,
              f"{tsb.shape}, relative error {err:.1e}")

        # Tokenizer: every ImageNet class in every template.
        prompts = [t.format(c) for c in IMAGENET_CLASSNAMES for t in TEMPLATES]
        lines = run(LGD, "tokenize", "--teacher", bundle, "--padding", *prompts).rstrip("\n").split("\n")
        theirs = tokenizer(prompts).tolist()
        differ = [p for p, line, want in zip(prompts, lines, theirs)
                  if [int(i) for i in line.rsplit("\t", 1)[1].split()] != want]
        check(f"{name}: lgd's token ids equal open_clip's tokenizer on {len(prompts)} ImageNet prompts",
              len(lines) == len(prompts) and not differ, f"differ: {differ[:3]}" if differ else "")

if failures:
    sys.exit(f"{len(failures)} check(s) failed: {failures}")
print("all checks passed")
