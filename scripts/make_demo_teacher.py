#!/usr/bin/env python3
"""The demo teacher: a small CLIP-style image-text model trained on Fashion-MNIST here, in
minutes, with nothing downloaded.

Image tower: a 4-stage CNN on 32 px images -> D. Text tower: token + position embeddings,
masked mean pool, two-layer MLP -> D. Tokenizer: SentencePiece trained on the captions.
Captions are the prompt templates filled with the ten class names; each step scores every
image of the batch against one randomly templated caption per class (CLIP's image-to-text
cross-entropy with a learned temperature; classes, not images, are the candidates, so two
images of one class are never each other's negatives). Images get random resized crops
(scale 0.2-1), flips and brightness/contrast jitter, so the teacher also reads the views
LGD's MoCo-v2 augmentation shows it.

The teacher's zero-shot accuracy (TSB from the templates) and linear-probe accuracy
(L-BFGS logistic regression on the embeddings of 10,000 training images) are measured on the
10,000 test images. The bundle is written through scripts/export_clip.py's export_bundle() and reused when the
settings that made it are unchanged (stamp file demo_teacher.json, which also holds the
teacher's measured zero-shot and linear-probe accuracy on the 10,000 test images).

    python3 scripts/make_demo_teacher.py [-o teachers/demo_fmnist] [--epochs 2] [--threads 2] [--limit N]
"""
import argparse
import gzip
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

import sentencepiece as spm
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from export_clip import export_bundle  # noqa: E402

CONTEXT = 32
PROBE_TRAIN = 10000
IMAGE_SIZE = 32
MEAN = (0.2860, 0.2860, 0.2860)  # Fashion-MNIST's training-set mean and std, on all three channels
STD = (0.3530, 0.3530, 0.3530)
TEMPLATES = ["a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
             "a photo of the large {}.", "a photo of the small {}.", "a low resolution photo of a {}.",
             "a cropped photo of the {}.", "a close-up photo of a {}.", "a bright photo of a {}.",
             "a dark photo of the {}.", "a photo of one {}.", "a picture of a {}."]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def load_split(root, prefix):
    images = read_idx(Path(root) / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(Path(root) / f"{prefix}-labels-idx1-ubyte.gz").long()
    # 28 -> 32 px once, bilinear, as the float images the towers see
    x = F.interpolate(images.unsqueeze(1).float() / 255.0, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                      align_corners=False, antialias=True)
    return x.clamp(0, 1), labels


def normalise(x):
    """[B, 1, S, S] in 0-1 -> the 3-channel normalised input of the image tower."""
    return ((x - MEAN[0]) / STD[0]).expand(-1, 3, -1, -1)


def augment(x, gen):
    """Random resized crop (scale 0.2-1, ratio 3/4-4/3), flip and brightness/contrast jitter,
    batched through affine_grid."""
    b = x.shape[0]
    area = torch.empty(b).uniform_(0.2, 1.0, generator=gen)
    log_ratio = torch.empty(b).uniform_(-0.2877, 0.2877, generator=gen)
    ratio = log_ratio.exp()
    w = (area * ratio).sqrt().clamp(max=1.0)
    h = (area / ratio).sqrt().clamp(max=1.0)
    cx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - w)
    cy = (torch.rand(b, generator=gen) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    brightness = torch.empty(b, 1, 1, 1).uniform_(0.6, 1.4, generator=gen)
    contrast = torch.empty(b, 1, 1, 1).uniform_(0.6, 1.4, generator=gen)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return ((out * brightness - mean) * contrast + mean).clamp(0, 1)


def conv_bn(cin, cout, stride):
    return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                               torch.nn.BatchNorm2d(cout), torch.nn.ReLU(inplace=True))


class DemoClip(torch.nn.Module):
    def __init__(self, vocab, embed_dim=256, widths=(32, 64, 128, 256), text_width=256):
        super().__init__()
        layers = [conv_bn(3, widths[0], 1)]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [conv_bn(cin, cout, 2), conv_bn(cout, cout, 1)]
        self.visual = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.visual_proj = torch.nn.Linear(widths[-1], embed_dim)
        self.token_embedding = torch.nn.Embedding(vocab, text_width)
        self.position_embedding = torch.nn.Parameter(torch.randn(CONTEXT, text_width) * 0.01)
        self.text_mlp = torch.nn.Sequential(torch.nn.Linear(text_width, text_width), torch.nn.GELU(),
                                            torch.nn.Linear(text_width, embed_dim))
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.659))  # log(1 / 0.07), as CLIP

    def image_features(self, x):
        return self.visual(x)

    def encode_image(self, x):
        return self.visual_proj(self.visual(x))

    def encode_text(self, tokens):
        mask = (tokens != 0).unsqueeze(-1).float()
        h = self.token_embedding(tokens) + self.position_embedding
        pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.text_mlp(pooled)


def tokenize(sp, texts):
    out = torch.zeros(len(texts), CONTEXT, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [2] + sp.encode(text.lower()) + [3]  # bos, pieces, eos (pad 0), as the manifest says
        if len(ids) > CONTEXT:
            raise SystemExit(f"make_demo_teacher: caption longer than {CONTEXT} tokens: {text!r}")
        out[i, :len(ids)] = torch.tensor(ids)
    return out


@torch.no_grad()
def embed_images(model, x, batch=250):
    return torch.cat([model.encode_image(normalise(x[i:i + batch])) for i in range(0, len(x), batch)])


@torch.no_grad()
def text_bank(model, tokens_by_template):
    """[T, C, L] tokens -> [C, D]: mean of the normalised template embeddings, normalised (the TSB)."""
    t, c, l = tokens_by_template.shape
    e = F.normalize(model.encode_text(tokens_by_template.reshape(t * c, l)), dim=-1).reshape(t, c, -1)
    return F.normalize(e.mean(0), dim=-1)


def linear_probe(train_f, train_y, test_f, test_y, classes, weight_decay=1e-4):
    """Multinomial logistic regression on standardised embeddings by full-batch L-BFGS."""
    mu, sd = train_f.mean(0), train_f.std(0).clamp(min=1e-6)
    a, b = (train_f - mu) / sd, (test_f - mu) / sd
    w = torch.zeros(a.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], lr=1, max_iter=300, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(a @ w + bias, train_y) + weight_decay * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return ((b @ w + bias).argmax(1) == test_y).float().mean().item() * 100


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default=str(ROOT / "teachers/demo_fmnist"), help="bundle directory")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX folder")
    p.add_argument("--classnames", default=str(ROOT / "configs/classnames/fashion_mnist.txt"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--embed-dim", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 16))
    p.add_argument("--limit", type=int, default=0, help="train on the first N images only (tests)")
    p.add_argument("--force", action="store_true", help="retrain even when a matching bundle exists")
    a = p.parse_args(argv)

    out = Path(a.output)
    settings = {k: v for k, v in vars(a).items() if k not in ("output", "threads", "force")}
    settings["data"] = str(Path(a.data).resolve())
    settings["classnames"] = Path(a.classnames).read_text()
    settings["templates"] = TEMPLATES
    settings["version"] = 1
    stamp = out / "demo_teacher.json"
    if not a.force and stamp.is_file() and (out / "lgd_teacher.yaml").is_file():
        previous = json.loads(stamp.read_text())
        if previous.get("settings") == settings:
            print(f"make_demo_teacher: reusing {out} (zero-shot {previous['zero_shot_top1']:.2f}%, "
                  f"linear probe {previous['linear_probe_top1']:.2f}% on the test set)")
            return 0

    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        if not (Path(a.data) / name).is_file():
            raise SystemExit(f"make_demo_teacher: {Path(a.data) / name} not found; install Debian's "
                             "dataset-fashion-mnist (scripts/setup.sh does) or pass --data")
    names = [l.strip() for l in Path(a.classnames).read_text().splitlines() if l.strip() and not l.startswith("#")]
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    started = time.time()
    train_x, train_y = load_split(a.data, "train")
    test_x, test_y = load_split(a.data, "t10k")
    if a.limit:
        train_x, train_y = train_x[:a.limit], train_y[:a.limit]

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "captions.txt"
        corpus.write_text("\n".join(t.format(n).lower() for t in TEMPLATES for n in names) + "\n")
        spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(Path(tmp) / "demo"), vocab_size=96,
                                       hard_vocab_limit=False, model_type="unigram", pad_id=0, unk_id=1,
                                       bos_id=2, eos_id=3, minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=str(Path(tmp) / "demo.model"))
        tokens = torch.stack([tokenize(sp, [t.format(n) for n in names]) for t in TEMPLATES])  # [T, C, L]

        model = DemoClip(sp.get_piece_size(), a.embed_dim)
        steps_per_epoch = len(train_x) // a.batch_size
        total = steps_per_epoch * a.epochs
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=total, pct_start=0.1)
        step = 0
        for epoch in range(a.epochs):
            model.train()
            order = torch.randperm(len(train_x), generator=gen)
            running, seen = 0.0, 0
            for i in range(steps_per_epoch):
                idx = order[i * a.batch_size:(i + 1) * a.batch_size]
                x = normalise(augment(train_x[idx], gen))
                pick = torch.randint(len(TEMPLATES), (len(names),), generator=gen)
                captions = tokens[pick, torch.arange(len(names))]
                img = F.normalize(model.encode_image(x), dim=-1)
                txt = F.normalize(model.encode_text(captions), dim=-1)
                logits = model.logit_scale.clamp(max=4.6052).exp() * img @ txt.t()
                loss = F.cross_entropy(logits, train_y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                running += loss.item()
                seen += 1
                if step % 50 == 0 or i == steps_per_epoch - 1:
                    elapsed = time.time() - started
                    eta = elapsed / step * (total - step)
                    print(f"make_demo_teacher: epoch {epoch + 1}/{a.epochs} step {step}/{total} "
                          f"loss {running / seen:.4f} elapsed {elapsed:.0f}s eta {eta:.0f}s", flush=True)
        model.eval()
        bank = text_bank(model, tokens)
        test_e = embed_images(model, test_x)
        zero_shot = ((F.normalize(test_e, dim=-1) @ bank.t()).argmax(1) == test_y).float().mean().item() * 100
        # The probe fits on 10,000 training images (all 60,000 add minutes and little else).
        train_e = embed_images(model, train_x[:PROBE_TRAIN])
        probe = linear_probe(train_e, train_y[:PROBE_TRAIN], test_e, test_y, len(names))
        train_seconds = time.time() - started
        print(f"make_demo_teacher: zero-shot {zero_shot:.2f}%, linear probe {probe:.2f}% on the "
              f"{len(test_x)} test images ({train_seconds:.0f}s)")
        example = tokens[:, :3].reshape(-1, CONTEXT)[:4]
        export_bundle(model, out, name="lgd-demo-fashion-mnist", image_size=IMAGE_SIZE, mean=MEAN, std=STD,
                      context_length=CONTEXT, token_example=example, classnames=names, templates=TEMPLATES,
                      tokenizer={"type": "sentencepiece", "file": Path(tmp) / "demo.model", "bos_id": 2,
                                 "eos_id": 3, "pad_id": 0, "lower_case": True})
    record = {"settings": settings, "zero_shot_top1": zero_shot, "linear_probe_top1": probe,
              "test_images": len(test_x), "seconds": train_seconds, "threads": a.threads,
              "torch": torch.__version__}
    fd, tmp_path = tempfile.mkstemp(dir=out, prefix="demo_teacher.json.tmp.")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp_path, stamp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
