"""Fixtures of the training tests: a small CLIP-style dual encoder (a conv + BatchNorm image
tower and a bag-of-embeddings text tower, both projecting to `dim`) and a 4-class image folder
that such a teacher can tell apart."""
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CLASSES = ["red square", "green circle", "blue stripes", "yellow noise"]


def write_images(root, per_class):
    """root/<class>/NNN.{png,jpg}: 40 x 48 images, `per_class` per class, PNG and JPEG alternating."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:48]
    for c, name in enumerate(CLASSES):
        folder = root / name.replace(" ", "_")
        folder.mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (40, 48, 3)).astype(np.int32)
            if c == 0:
                img[8:30, 10:36, 0] += 180
            elif c == 1:
                img[((yy - 20) ** 2 + (xx - 24) ** 2) < 150, 1] += 180
            elif c == 2:
                img[:, (xx[0] // 4) % 2 == 0, 2] += 180
            else:
                img[..., :2] += rng.integers(100, 190, (40, 48, 1))
            im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
            im.save(folder / (f"{i:03d}.png" if i % 2 else f"{i:03d}.jpg"))


class TinyClip(torch.nn.Module):
    def __init__(self, vocab, dim):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.bn = torch.nn.BatchNorm2d(8)
        self.proj = torch.nn.Linear(8, dim)
        self.embed = torch.nn.Embedding(vocab, 32)
        self.text_proj = torch.nn.Linear(32, dim)

    def encode_image(self, x):
        return self.proj(F.relu(self.bn(self.conv(x))).mean((2, 3)))

    def encode_text(self, tokens):
        mask = (tokens != 0).float().unsqueeze(-1)
        pooled = (self.embed(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.text_proj(torch.tanh(pooled))


def make_tiny_bundle(work, bundle, *, image_size, dim, context, prepare=None):
    """A teacher bundle at `bundle`: a SentencePiece tokenizer (vocabulary 28) trained in `work`
    on captions of CLASSES, TinyClip(28, dim) seeded 0 (`prepare(model)` may adjust it first),
    written through scripts/export_clip.py's export_bundle. Returns the model."""
    import sys
    from pathlib import Path

    import sentencepiece as spm

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from export_clip import export_bundle

    work, bundle = Path(work), Path(bundle)
    captions = [f"a photo of a {n}." for n in CLASSES] * 4 + [f"the {n}" for n in CLASSES] * 4
    (work / "captions.txt").write_text("\n".join(captions) + "\n")
    spm.SentencePieceTrainer.train(input=str(work / "captions.txt"), model_prefix=str(work / "sp"),
                                   vocab_size=28, model_type="unigram", pad_id=0, unk_id=1, bos_id=2,
                                   eos_id=3, minloglevel=2)
    torch.manual_seed(0)
    model = TinyClip(28, dim)
    if prepare:
        prepare(model)
    export_bundle(model, bundle, name="tiny", image_size=image_size, mean=(0.5, 0.45, 0.4), std=(0.25, 0.25, 0.25),
                  context_length=context, token_example=torch.tensor([[2, 5, 6, 3] + [0] * (context - 4)]),
                  tokenizer={"type": "sentencepiece", "file": work / "sp.model", "bos_id": 2, "eos_id": 3,
                             "pad_id": 0, "lower_case": True})
    return model


def tiny_training_setup(tmp, per_class, *, image_size, dim, context):
    """An image folder, a tiny teacher bundle and a runs folder under `tmp`:
    (images, bundle, runs)."""
    write_images(tmp / "images", per_class)
    bundle = tmp / "teacher"
    make_tiny_bundle(tmp, bundle, image_size=image_size, dim=dim, context=context)
    return tmp / "images", bundle, tmp / "runs"


def max_diff(a, b, keys):
    """The largest absolute difference between a[k] and b[k] over `keys` (float64)."""
    return max(float(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)).max()) for k in keys)
