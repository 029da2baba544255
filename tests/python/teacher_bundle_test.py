"""Teacher bundles end to end, against python3-torch and python3-sentencepiece.

A small dual encoder and a SentencePiece model trained here go through
scripts/export_clip.py's export_bundle(); then
  * `lgd tokenize` gives the ids Python's SentencePiece gives under the manifest's rules;
  * lgd's image embeddings equal the eager model's (relative error < 1e-5) and the
    loaded teacher is frozen; frozen as a graph (teacher.freeze), they equal torch.jit.freeze's;
  * `lgd bank build` equals the TSB formula computed here (max abs difference < 1e-6);
  * every bundle validation error is one line naming the file and field, exit code 1 or 2.

usage: teacher_bundle_test.py LGD TEACHER_EMBED SOURCE_DIR
"""
import copy
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F

from tiny_teacher import TinyClip

LGD, EMBED, SOURCE = sys.argv[1], sys.argv[2], Path(sys.argv[3])
sys.path.insert(0, str(SOURCE / "scripts"))
from export_clip import export_bundle  # noqa: E402

NAMES = ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
         "ankle boot"]
TEMPLATES = ["a photo of a {}.", "a blurry photo of the {}.", "a {} in a catalogue.", "my {}!"]
L, D, S = 32, 24, 32
failures = []


def run(*args, check=True):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and done.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, args))}\n{done.stdout}{done.stderr}")
    return done


def tokenize_python(sp, text):
    ids = [2] + sp.encode(text.lower()) + [3]
    return ids + [0] * (L - len(ids))


def read_safetensors(path):
    blob = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    info = header["tsb"]
    begin, end = info["data_offsets"]
    return np.frombuffer(blob[8 + n + begin:8 + n + end], dtype=np.float32).reshape(info["shape"]), meta


def expect_error(name, args, code, expected):
    done = run(LGD, *args, check=False)
    lines = done.stderr.strip().splitlines()
    ok = done.returncode == code and len(lines) == 1 and expected in lines[0]
    print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {done.returncode}: {done.stderr.strip()}")
    if not ok:
        failures.append(f"{name}: expected exit {code} and one line containing {expected!r}")


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    captions = [t.format(n) for t in TEMPLATES for n in NAMES] * 3
    (tmp / "captions.txt").write_text("\n".join(c.lower() for c in captions) + "\n")
    spm.SentencePieceTrainer.train(input=str(tmp / "captions.txt"), model_prefix=str(tmp / "sp"),
                                   vocab_size=48, hard_vocab_limit=False,  # (0.2.3 makes 47 of these captions)
                                   model_type="unigram", pad_id=0, unk_id=1, bos_id=2,
                                   eos_id=3, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(tmp / "sp.model"))

    torch.manual_seed(0)
    model = TinyClip(sp.get_piece_size(), D)
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.3, 0.3)
        model.bn.running_var.uniform_(0.5, 1.5)
    model.eval()
    example = torch.tensor([tokenize_python(sp, "a photo of a coat."), tokenize_python(sp, "my bag!")])
    bundle = tmp / "bundle"
    export_bundle(model, bundle, name="tiny", image_size=S, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3),
                  context_length=L, token_example=example,
                  tokenizer={"type": "sentencepiece", "file": tmp / "sp.model", "bos_id": 2, "eos_id": 3,
                             "pad_id": 0, "lower_case": True})

    # Tokenizer: C++ ids equal Python's.
    texts = ["A photo of a Coat.", "my ankle boot!", "a blurry photo of the T-shirt."]
    out = run(LGD, "tokenize", "--teacher", bundle, "--padding", *texts).stdout.strip().splitlines()
    for text, line in zip(texts, out):
        got = [int(i) for i in line.split("\t")[1].split()]
        assert got == tokenize_python(sp, text), (text, got, tokenize_python(sp, text))
    decoded = run(LGD, "tokenize", "--teacher", bundle, "--decode", *texts).stdout.strip().splitlines()
    for text, line in zip(texts, decoded):
        assert line.split("\t")[2] == sp.decode(sp.encode(text.lower())) == text.lower(), (text, line)
    print(f"tokenize: {len(texts)} texts equal Python's SentencePiece ids and decode back")

    # Image embeddings and frozen teacher.
    x = torch.randn(4, 3, S, S)
    x.numpy().astype("<f4").tofile(tmp / "x.bin")
    info = run(EMBED, bundle, tmp / "x.bin", 4, tmp / "y.bin").stdout
    ours = torch.from_numpy(np.fromfile(tmp / "y.bin", dtype="<f4").reshape(4, D))
    with torch.no_grad():
        theirs = model.encode_image(x)
    err = ((ours - theirs).norm() / theirs.norm()).item()
    assert err < 1e-5, f"image embeddings differ: {err:.2e}"
    assert "frozen=1" in info, info
    # In float64 and bfloat16: against the same model cast to that dtype in Python (bfloat16's
    # own error is the platform's: Debian 13's PyTorch 2.6 on AVX-512 AMD CPUs is off by ~6% in
    # bfloat16 convolutions, in Python as in lgd), and bfloat16 visibly not float32.
    for dtype in (torch.float64, torch.bfloat16):
        run(EMBED, bundle, tmp / "x.bin", 4, tmp / "y.bin", str(dtype).split(".")[1])
        other = torch.from_numpy(np.fromfile(tmp / "y.bin", dtype="<f4").reshape(4, D))
        with torch.no_grad():
            python = copy.deepcopy(model).to(dtype).encode_image(x.to(dtype)).float()
        rel = ((other - python).norm() / python.norm()).item()
        from_f32 = ((other - theirs).norm() / theirs.norm()).item()
        assert rel < 2e-3, f"{dtype} teacher differs from Python's: relative error {rel:.2e}"
        if dtype == torch.bfloat16:
            assert from_f32 > 1e-4, f"bfloat16 teacher equals the float32 one: relative difference {from_f32:.2e}"
        print(f"image embeddings in {dtype}: relative error {rel:.1e} to Python's, {from_f32:.1e} to float32")
    print(f"image embeddings: relative error {err:.1e}; teacher frozen")

    # The trainer's frozen image encoder (teacher.freeze): equal to torch.jit.freeze's in Python
    # (which folds the BatchNorm into the convolution) and to the eager model, with the weights
    # and input in channels_last or not; in bfloat16, to the bfloat16 model frozen in Python.
    encoder = torch.jit.load(str(bundle / "image_encoder.pt")).eval()
    assert "aten::batch_norm" not in str(torch.jit.freeze(encoder).graph), "Python's freeze kept the BatchNorm"
    for dtype, options in (("float32", "freeze"), ("float32", "freeze,channels_last"),
                           ("float32", "channels_last"), ("bfloat16", "freeze")):
        info = run(EMBED, bundle, tmp / "x.bin", 4, tmp / "y.bin", dtype, options).stdout
        got = torch.from_numpy(np.fromfile(tmp / "y.bin", dtype="<f4").reshape(4, D))
        want_frozen = "freeze" in options
        assert f"frozen_graph={int(want_frozen)}" in info, (options, info)
        cast = getattr(torch, dtype)
        python = torch.jit.load(str(bundle / "image_encoder.pt")).eval().to(cast)
        python = torch.jit.freeze(python) if want_frozen else python
        with torch.no_grad():
            want = python(x.to(cast)).float()
            eager = copy.deepcopy(model).to(cast).encode_image(x.to(cast)).float()
        rel = ((got - want).norm() / want.norm()).item()
        from_eager = ((got - eager).norm() / eager.norm()).item()
        assert rel < 1e-6, f"{dtype} {options}: differs from Python's: relative error {rel:.2e}"
        bound = 1e-5 if dtype == "float32" else 2e-2
        assert from_eager < bound, f"{dtype} {options}: differs from the eager model: {from_eager:.2e}"
        print(f"image embeddings, {dtype} {options}: relative error {rel:.1e} to Python's, "
              f"{from_eager:.1e} to the eager model")

    # TSB against the formula.
    (tmp / "names.txt").write_text("# Fashion-MNIST\n\n" + "\n".join(NAMES) + "\n")
    (tmp / "templates.txt").write_text("\n".join(TEMPLATES) + "\n")
    run(LGD, "bank", "build", "--teacher", bundle, "--classnames", tmp / "names.txt", "--templates",
        tmp / "templates.txt", "--batch-size", 7, "-o", tmp / "tsb.safetensors")
    tsb, meta = read_safetensors(tmp / "tsb.safetensors")
    with torch.no_grad():
        columns = []
        for name in NAMES:
            tokens = torch.tensor([tokenize_python(sp, t.format(name)) for t in TEMPLATES])
            e = F.normalize(model.encode_text(tokens), dim=1).mean(0)
            columns.append(F.normalize(e, dim=0))
        reference = torch.stack(columns, dim=1).numpy()
    diff = np.abs(tsb - reference).max()
    assert tsb.shape == (D, len(NAMES)) and diff < 1e-6, (tsb.shape, diff)
    assert meta["class_names"].split("\n") == NAMES and meta["teacher"] == "tiny", meta
    shown = run(LGD, "bank", "show", tmp / "tsb.safetensors").stdout
    assert "D = 24, C = 10" in shown, shown
    print(f"TSB: {tsb.shape}, max abs difference {diff:.1e}")

    # Validation errors.
    def broken(name, edit=None, remove=None, replace=None):
        target = tmp / name
        shutil.copytree(bundle, target)
        manifest = target / "lgd_teacher.yaml"
        if edit:
            manifest.write_text(edit(manifest.read_text()))
        if remove:
            (target / remove).unlink()
        if replace:
            (target / replace[0]).write_bytes(replace[1])
        return target

    build = lambda b: ["bank", "build", "--teacher", b, "--classnames", tmp / "names.txt", "-o", tmp / "x.safetensors"]
    expect_error("no bundle", build(tmp / "nowhere"), 1, "nowhere: teacher bundle directory does not exist")
    expect_error("no manifest", build(broken("b1", remove="lgd_teacher.yaml")), 1, "lgd_teacher.yaml: missing")
    expect_error("missing encoder file", build(broken("b2", remove="image_encoder.pt")), 1,
                 "lgd_teacher.yaml:4:3: image.file: ")
    expect_error("unknown tokenizer type", build(broken("b3", edit=lambda m: m.replace("type: sentencepiece", "type: wordpiece"))),
                 2, "text.tokenizer.type: expected one of clip-bpe, sentencepiece, got 'wordpiece'")
    expect_error("unknown manifest key", build(broken("b4", edit=lambda m: m + "colour: red\n")), 2,
                 "unknown key 'colour'")
    expect_error("missing field", build(broken("b5", edit=lambda m: m.replace("  size: 32\n", ""))), 2,
                 "image.size: required key is missing")
    expect_error("width mismatch", build(broken("b6", edit=lambda m: m.replace("embed_dim: 24", "embed_dim: 32"))), 1,
                 "image.file: output [1, 24], expected [1, 32] (embed_dim)")
    expect_error("not TorchScript", build(broken("b7", replace=("text_encoder.pt", b"junk"))), 1,
                 "text.file: ")
    wrong_rank = torch.jit.trace(torch.nn.Linear(5, D), torch.randn(2, 5))
    b8 = broken("b8")
    torch.jit.save(wrong_rank, str(b8 / "image_encoder.pt"))
    expect_error("wrong input rank", build(b8), 1, "image.file: forward on a float [1, 3, 32, 32] input failed")
    expect_error("corrupt tokenizer", build(broken("b9", replace=("sp.model", b"junk"))), 1,
                 "sp.model: cannot load the SentencePiece model")
    expect_error("mean of two values", build(broken("b10", edit=lambda m: m.replace("mean: [0.5, 0.4, 0.3]", "mean: [0.5, 0.4]"))),
                 2, "image.mean: expected 3 numbers (R, G, B), got 2")
    expect_error("bos outside vocabulary", build(broken("b11", edit=lambda m: m.replace("bos_id: 2", "bos_id: 900"))),
                 1, f"bos_id 900 is outside the vocabulary of {sp.get_piece_size()} pieces")
    (tmp / "dup.txt").write_text("coat\nbag\ncoat\n")
    expect_error("duplicate class names", ["bank", "build", "--teacher", bundle, "--classnames", tmp / "dup.txt", "-o",
                                           tmp / "x.safetensors"], 1, "dup.txt:3: duplicate class name 'coat' (also at line 1)")
    (tmp / "badtemplates.txt").write_text("a photo of a {}.\na photo.\n")
    expect_error("template without {}", ["bank", "build", "--teacher", bundle, "--classnames", tmp / "names.txt",
                                         "--templates", tmp / "badtemplates.txt", "-o", tmp / "x.safetensors"], 1,
                 "badtemplates.txt:2: template 'a photo.' must contain exactly one {}")
    expect_error("overlong text", ["tokenize", "--teacher", bundle, " ".join(["coat"] * 80)], 2,
                 "tokens long, more than the context length 32")

if failures:
    sys.exit("\n".join(failures))
print("teacher bundle: all checks passed")
