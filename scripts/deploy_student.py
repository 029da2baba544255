"""Turns a student exported by `lgd export` (a torchvision-layout .pth) into files inference
runtimes load: TorchScript (torch.jit.trace, for LibTorch and PyTorch Mobile) and ONNX (for
ONNX Runtime, TensorRT, OpenVINO), and checks both against the eager torchvision model on the
same random batch before reporting success.

    .venv/bin/python scripts/deploy_student.py student.pth [-o OUT_PREFIX] [--arch ARCH]
        [--image-size S] [--raw-input] [--opset 17]

The model's output is the pooled feature of the backbone (what `lgd eval` probes), or the
logits where the export has a classifier (--num-classes at export). With the JSON file
`lgd export` writes beside a .pth from a checkpoint (x.pth -> x.json: arch, image size, the
teacher's mean / std), the graph starts with that normalisation, so it takes RGB images in
[0, 1]; --raw-input leaves it out (the graph then takes normalised input, as lgd's student
does). Without the JSON, give --arch (and --image-size, default 224) and the graph takes
normalised input. The batch dimension is dynamic in both files.

Writes OUT_PREFIX.torchscript.pt and OUT_PREFIX.onnx (default: the .pth's path without its
extension) and prints the largest difference of each against the eager model. ONNX Runtime is
used for that check when installed (pip install onnxruntime); the ONNX graph is otherwise
checked with onnx.checker only. Needs torch and torchvision (the pip leg's .venv has both,
and onnx / onnxruntime)."""
import argparse
import json
import sys
from pathlib import Path

import torch
import torchvision


class Normalised(torch.nn.Module):
    """RGB in [0, 1] -> (x - mean) / std -> the student."""

    def __init__(self, model, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x):
        return self.model((x - self.mean) / self.std)


def build(weights, arch):
    """torchvision's model of `arch` with the weights; without a classifier in the file, the
    classifier is replaced by the identity so that the output is the pooled feature."""
    state = torch.load(weights, map_location="cpu", weights_only=True)
    probe = getattr(torchvision.models, arch)()
    head = "fc" if hasattr(probe, "fc") else "classifier"
    has_classifier = any(k.startswith(head + ".") for k in state)
    if has_classifier:
        last = [v for k, v in state.items() if k.startswith(head + ".") and v.dim() == 2][-1]
        model = getattr(torchvision.models, arch)(num_classes=last.shape[0])
    else:
        model = probe
        setattr(model, head, torch.nn.Identity())
    model.load_state_dict(state, strict=True)
    return model.eval(), has_classifier


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, help="a .pth written by lgd export (torchvision layout)")
    parser.add_argument("-o", "--output", type=Path, help="output prefix (default: the .pth without extension)")
    parser.add_argument("--arch", help="torchvision architecture (default: from the JSON beside the .pth)")
    parser.add_argument("--image-size", type=int, help="input size S of the check (default: the JSON's, else 224)")
    parser.add_argument("--raw-input", action="store_true", help="leave the input normalisation out of the graph")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    args = parser.parse_args()

    sidecar = args.weights.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    if meta.get("layout", "torchvision") != "torchvision":
        sys.exit(f"deploy_student.py: {args.weights} is in {meta['layout']}'s layout; export it with --layout torchvision")
    arch = args.arch or meta.get("arch")
    if not arch:
        sys.exit(f"deploy_student.py: {sidecar} not found; give --arch")
    size = args.image_size or meta.get("image_size") or 224
    model, has_classifier = build(args.weights, arch)
    normalise = not args.raw_input and "mean" in meta and "std" in meta
    if normalise:
        model = Normalised(model, meta["mean"], meta["std"]).eval()
    prefix = args.output or args.weights.with_suffix("")
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    if not normalise:
        x = (x - 0.45) / 0.25
    with torch.no_grad():
        reference = model(x)

    ts_path = Path(f"{prefix}.torchscript.pt")
    with torch.no_grad():
        traced = torch.jit.trace(model, x)
    traced.save(str(ts_path))
    with torch.no_grad():
        ts_error = float((torch.jit.load(str(ts_path))(x) - reference).abs().max())

    onnx_path = Path(f"{prefix}.onnx")
    torch.onnx.export(model, (x,), str(onnx_path), dynamo=False, opset_version=args.opset,
                      input_names=["image"], output_names=["logits" if has_classifier else "features"],
                      dynamic_axes={"image": {0: "batch"}, ("logits" if has_classifier else "features"): {0: "batch"}})
    import onnx
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    if onnxruntime is not None:
        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        out = session.run(None, {"image": x[:1].numpy()})[0]  # batch 1: the batch dimension is dynamic
        onnx_error = float((torch.from_numpy(out) - reference[:1]).abs().max())
    scale = float(reference.abs().max())
    what = f"{arch}, {'logits' if has_classifier else 'pooled features'} of {reference.shape[1]}, " \
           f"{size} px {'RGB in [0, 1], normalised in the graph' if normalise else 'normalised input'}"
    print(f"deploy_student.py: {what}")
    print(f"  {ts_path}: TorchScript, max |difference| to eager {ts_error:.2e} (outputs up to {scale:.2e})")
    if onnxruntime is not None:
        print(f"  {onnx_path}: ONNX opset {args.opset}, ONNX Runtime max |difference| to eager {onnx_error:.2e}")
    else:
        print(f"  {onnx_path}: ONNX opset {args.opset} (onnx.checker passed; onnxruntime not installed, not run)")
    tolerance = 1e-4 * max(scale, 1.0)
    if ts_error > tolerance or (onnxruntime is not None and onnx_error > tolerance):
        sys.exit(f"deploy_student.py: outputs differ from the eager model by more than {tolerance:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
