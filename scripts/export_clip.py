#!/usr/bin/env python3
"""Export a CLIP-style image-text model into an lgd teacher bundle.

A bundle is a directory with
    lgd_teacher.yaml   manifest: name, embed_dim, image {file, size, mean, std},
                       text {file, context_length, tokenizer {type, file, ...}}
    image_encoder.pt   TorchScript: float [B, 3, S, S] normalised -> [B, D]
    text_encoder.pt    TorchScript: int64 [N, L] token ids -> [N, D]
    <tokenizer file>   CLIP BPE vocabulary (.txt.gz) or SentencePiece .model

Both towers are traced separately in float32 on the CPU (no device or dtype is baked into
the graphs) and checked against the eager model on fresh inputs before anything is written.

Examples (needs open_clip or OpenAI's clip package installed):
    python3 scripts/export_clip.py --model RN50 --pretrained openai -o teachers/clip_rn50 \
        --classnames imagenet
    python3 scripts/export_clip.py --model ViT-B-32 --pretrained none --seed 0 -o teachers/vitb32_random

`export_bundle()` is the reusable core: any module with encode_image / encode_text goes
through it (lgd's demo teacher does).
"""
import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class _Tower(torch.nn.Module):
    """One tower of a dual encoder as a module: forward = model.<method>(input)."""

    def __init__(self, model, method):
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, inputs):
        return getattr(self.model, self.method)(inputs)


def _quote(value):
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _atomic_write(path, write):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".tmp.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _relative_error(a, b):
    return ((a - b).norm() / b.norm().clamp(min=1e-12)).item()


def export_bundle(model, out_dir, *, name, image_size, mean, std, context_length, tokenizer,
                  token_example, classnames=None, templates=None, tolerance=1e-5):
    """Traces model.encode_image / model.encode_text and writes a teacher bundle.

    tokenizer: {"type": "clip-bpe" | "sentencepiece", "file": path to copy, and for
    sentencepiece the optional "bos_id", "eos_id", "pad_id", "lower_case"}.
    token_example: int64 [N, context_length] realistic token ids (used for tracing and checks).
    Returns the manifest as a dict.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().float().cpu()
    for p in model.parameters():
        p.requires_grad_(False)
    if token_example.dim() != 2 or token_example.shape[1] != context_length:
        raise ValueError(f"token_example must be [N, {context_length}], got {list(token_example.shape)}")

    torch.manual_seed(0)
    image_example = torch.randn(2, 3, image_size, image_size)
    with torch.no_grad():
        image_traced = torch.jit.trace(_Tower(model, "encode_image"), image_example, check_trace=False)
        text_traced = torch.jit.trace(_Tower(model, "encode_text"), token_example.long(), check_trace=False)
        fresh_images = torch.randn(3, 3, image_size, image_size)
        fresh_tokens = token_example.long().flip(0)
        eager_image = model.encode_image(fresh_images).float()
        eager_text = model.encode_text(fresh_tokens).float()
        image_error = _relative_error(image_traced(fresh_images), eager_image)
        text_error = _relative_error(text_traced(fresh_tokens), eager_text)
    if image_error > tolerance or text_error > tolerance:
        raise RuntimeError(f"traced towers differ from the eager model (image {image_error:.2e}, "
                           f"text {text_error:.2e}, tolerance {tolerance:.0e})")
    embed_dim = eager_image.shape[1]
    if eager_text.shape[1] != embed_dim:
        raise RuntimeError(f"image width {embed_dim} differs from text width {eager_text.shape[1]}")

    _atomic_write(out / "image_encoder.pt", lambda p: torch.jit.save(image_traced, p))
    _atomic_write(out / "text_encoder.pt", lambda p: torch.jit.save(text_traced, p))
    tokenizer_file = Path(tokenizer["file"]).name
    if Path(tokenizer["file"]).resolve() != (out / tokenizer_file).resolve():
        shutil.copyfile(tokenizer["file"], out / tokenizer_file)

    lines = [f"name: {_quote(name)}", f"embed_dim: {embed_dim}", "image:",
             "  file: image_encoder.pt", f"  size: {image_size}",
             f"  mean: [{', '.join(repr(float(m)) for m in mean)}]",
             f"  std: [{', '.join(repr(float(s)) for s in std)}]",
             "text:", "  file: text_encoder.pt", f"  context_length: {context_length}",
             "  tokenizer:", f"    type: {tokenizer['type']}", f"    file: {_quote(tokenizer_file)}"]
    for key in ("merges", "bos_id", "eos_id", "pad_id"):
        if key in tokenizer:
            lines.append(f"    {key}: {int(tokenizer[key])}")
    if "lower_case" in tokenizer:
        lines.append(f"    lower_case: {'true' if tokenizer['lower_case'] else 'false'}")
    if classnames:
        (out / "classnames.txt").write_text("".join(c + "\n" for c in classnames), encoding="utf-8")
        lines.append("classnames: classnames.txt")
    if templates:
        (out / "templates.txt").write_text("".join(t + "\n" for t in templates), encoding="utf-8")
        lines.append("templates: templates.txt")
    manifest_text = "\n".join(lines) + "\n"
    _atomic_write(out / "lgd_teacher.yaml", lambda p: Path(p).write_text(manifest_text))
    print(f"export_clip: wrote {out} (D = {embed_dim}, traced vs eager: image {image_error:.1e}, "
          f"text {text_error:.1e})")
    return manifest_text


def _open_clip_model(name, pretrained):
    import open_clip  # noqa: imported only when used

    tag = None if pretrained == "none" else pretrained
    model, _, _ = open_clip.create_model_and_transforms(name, pretrained=tag)
    visual = model.visual
    size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
    mean = getattr(visual, "image_mean", None) or CLIP_MEAN
    std = getattr(visual, "image_std", None) or CLIP_STD
    tokenizer = open_clip.get_tokenizer(name)
    if not hasattr(tokenizer, "encoder"):
        raise SystemExit(f"export_clip: {name} does not use CLIP's BPE tokenizer; only CLIP-BPE "
                         "models can be exported from open_clip by this script")
    from open_clip.tokenizer import default_bpe
    context_length = getattr(model, "context_length", 77)
    tokens = tokenizer(["a photo of a cat.", "a diagram", "a photo of a dog on the grass."],
                       context_length=context_length)
    return model, size, mean, std, context_length, {"type": "clip-bpe", "file": default_bpe()}, tokens


def _openai_clip_model(name):
    import clip  # noqa: imported only when used

    model, _ = clip.load(name, device="cpu", jit=False)
    size = model.visual.input_resolution
    context_length = model.context_length
    bpe = Path(clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    tokens = clip.tokenize(["a photo of a cat.", "a diagram", "a photo of a dog on the grass."])
    return model, size, CLIP_MEAN, CLIP_STD, context_length, {"type": "clip-bpe", "file": str(bpe)}, tokens


def _imagenet_metadata():
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    return list(IMAGENET_CLASSNAMES), [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="open_clip model name (RN50, ViT-B-32, ...) or, "
                        "with --source openai, an OpenAI CLIP name (RN50, ViT-B/32)")
    parser.add_argument("--pretrained", default="openai",
                        help="open_clip pretrained tag, or 'none' for random weights (benchmarks)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of torch's generator before the model is created: with --pretrained none, "
                             "the same random weights as open_clip.create_model_and_transforms(MODEL) after torch.manual_seed(SEED)")
    parser.add_argument("--source", choices=["open_clip", "openai"], default="open_clip")
    parser.add_argument("--classnames", choices=["none", "imagenet"], default="none",
                        help="also write open_clip's class names and prompt templates")
    parser.add_argument("-o", "--output", required=True, help="bundle directory")
    args = parser.parse_args(argv)
    if args.seed is not None:
        torch.manual_seed(args.seed)
    if args.source == "openai":
        model, size, mean, std, length, tokenizer, tokens = _openai_clip_model(args.model)
    else:
        model, size, mean, std, length, tokenizer, tokens = _open_clip_model(args.model, args.pretrained)
    classnames = templates = None
    if args.classnames == "imagenet":
        classnames, templates = _imagenet_metadata()
    export_bundle(model, args.output, name=f"{args.model}-{args.pretrained}", image_size=size, mean=mean,
                  std=std, context_length=length, tokenizer=tokenizer, token_example=tokens,
                  classnames=classnames, templates=templates)


if __name__ == "__main__":
    sys.exit(main())
