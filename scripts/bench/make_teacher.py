#!/usr/bin/env python3
"""A teacher bundle with the compute of a real CLIP image tower and random weights, for
benchmarks: torchvision's ResNet-50 trunk + a linear projection to D (CLIP RN50 embeds in
1024), a small text tower, and a SentencePiece tokenizer trained on the class names'
prompts. Written through scripts/export_clip.py's export_bundle().

    python3 scripts/bench/make_teacher.py OUT_DIR [--trunk resnet50|vit_b_32] [--embed-dim 1024]
        [--image-size 224] [--classnames configs/classnames/cifar10.txt]
"""
import argparse
import sys
import tempfile
from pathlib import Path

import sentencepiece as spm
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from export_clip import CLIP_MEAN, CLIP_STD, export_bundle  # noqa: E402

CONTEXT = 77  # as CLIP
TEMPLATES = ["a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
             "a photo of the large {}.", "a photo of the small {}.", "a bad photo of the {}."]


class BenchClip(torch.nn.Module):
    def __init__(self, trunk, embed_dim, vocab):
        super().__init__()
        net = getattr(torchvision.models, trunk)()
        if hasattr(net, "fc"):  # ResNets
            width = net.fc.in_features
            net.fc = torch.nn.Identity()
        else:  # torchvision's ViTs (vit_b_32: CLIP ViT-B/32's trunk, width 768, embedding 512)
            width = net.hidden_dim
            net.heads = torch.nn.Identity()
        self.visual = net
        self.proj = torch.nn.Linear(width, embed_dim)
        self.embed = torch.nn.Embedding(vocab, 256)
        self.text_proj = torch.nn.Linear(256, embed_dim)

    def encode_image(self, x):
        return self.proj(self.visual(x))

    def encode_text(self, tokens):
        mask = (tokens != 0).float().unsqueeze(-1)
        pooled = (self.embed(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.text_proj(torch.tanh(pooled))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--trunk", default="resnet50")
    p.add_argument("--embed-dim", type=int, default=1024)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--classnames", default=str(Path(__file__).resolve().parents[2] / "configs/classnames/cifar10.txt"))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    names = [l.strip() for l in open(a.classnames) if l.strip() and not l.startswith("#")]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(t.format(n) for t in TEMPLATES for n in names * 4) + "\n")
        spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(Path(tmp) / "sp"), vocab_size=64,
                                       hard_vocab_limit=False, model_type="unigram", pad_id=0, unk_id=1,
                                       bos_id=2, eos_id=3, minloglevel=2)
        vocab = spm.SentencePieceProcessor(model_file=str(Path(tmp) / "sp.model")).get_piece_size()
        torch.manual_seed(a.seed)
        model = BenchClip(a.trunk, a.embed_dim, vocab)
        example = torch.tensor([[2, 5, 6, 7, 3] + [0] * (CONTEXT - 5)])
        export_bundle(model, a.out, name=f"bench-{a.trunk}-{a.embed_dim}", image_size=a.image_size,
                      mean=CLIP_MEAN, std=CLIP_STD, context_length=CONTEXT, token_example=example,
                      tokenizer={"type": "sentencepiece", "file": Path(tmp) / "sp.model", "bos_id": 2,
                                 "eos_id": 3, "pad_id": 0, "lower_case": True})
    print(a.out)


if __name__ == "__main__":
    main()
