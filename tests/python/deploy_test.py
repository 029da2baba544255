"""scripts/deploy_student.py: the TorchScript and ONNX files it writes compute lgd's features.
For a MobileNetV3-Small and a ResNet-18 exported by lgd, the files are run (TorchScript by
torch.jit.load, ONNX by ONNX Runtime, batch sizes other than the traced one) on the same
inputs as lgd's own forward (the student_features tool), and must agree within 1e-4 relative.
The ResNet-18 has the JSON that `lgd export` writes beside a checkpoint's export (mean / std /
size): its graph takes RGB in [0, 1] and normalises inside. Skipped where onnx / onnxruntime
are not installed (the Debian leg), required in the pip leg.

usage: deploy_test.py LGD STUDENT_FEATURES SOURCE_DIR
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from references import optional  # noqa: E402

ort = optional("onnxruntime")
if ort is None or optional("onnx") is None:
    print("skipped: onnx / onnxruntime are not installed")
    sys.exit(77)

LGD, FEATURES, SOURCE = sys.argv[1], sys.argv[2], Path(sys.argv[3])
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
    if not ok:
        failures.append(name)


def run(*args):
    done = subprocess.run([*map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"FAIL {' '.join(map(str, args))}: {done.stdout}{done.stderr}")
    return done.stdout


def lgd_features(arch, weights, x, tmp):
    (tmp / "in.bin").write_bytes(x.numpy().astype(np.float32).tobytes())
    n, _, h, w = x.shape
    run(FEATURES, arch, weights, tmp / "in.bin", n, h, w, tmp / "out.bin")
    return torch.from_numpy(np.frombuffer((tmp / "out.bin").read_bytes(), dtype=np.float32).reshape(n, -1).copy())


def relative(a, b):
    return float((a - b).abs().max() / (b.abs().max() + 1e-12))


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    g = torch.Generator().manual_seed(1)
    cases = [("mobilenet_v3_small", 64, None), ("resnet18", 32, {"mean": [0.5, 0.45, 0.4], "std": [0.25, 0.2, 0.3]})]
    for arch, size, norm in cases:
        weights = tmp / f"{arch}.pth"
        run(LGD, "export", "--arch", arch, "--init", "random", "--seed", 3, "-o", weights)
        args = [sys.executable, SOURCE / "scripts" / "deploy_student.py", weights]
        if norm:
            (tmp / f"{arch}.json").write_text(json.dumps({"arch": arch, "layout": "torchvision", "image_size": size, **norm}))
        else:
            args += ["--arch", arch, "--image-size", size]
        out = run(*args)
        check(f"{arch}: deploy_student.py reports both files", ".torchscript.pt" in out and "ONNX Runtime" in out, out)
        x = torch.rand(3, 3, size, size, generator=g)  # batch 3: neither traced size
        if norm:
            lgd_in = (x - torch.tensor(norm["mean"]).view(1, 3, 1, 1)) / torch.tensor(norm["std"]).view(1, 3, 1, 1)
            model_in = x
        else:
            lgd_in = model_in = (x - 0.45) / 0.25
        expected = lgd_features(arch, weights, lgd_in, tmp)
        scripted = torch.jit.load(str(tmp / f"{arch}.torchscript.pt"))
        with torch.no_grad():
            got_ts = scripted(model_in)
        session = ort.InferenceSession(str(tmp / f"{arch}.onnx"), providers=["CPUExecutionProvider"])
        got_onnx = torch.from_numpy(session.run(None, {"image": model_in.numpy()})[0])
        e_ts, e_onnx = relative(got_ts, expected), relative(got_onnx, expected)
        check(f"{arch}: TorchScript equals lgd's features ({e_ts:.1e} relative)", e_ts < 1e-4, f"{e_ts:.3e}")
        check(f"{arch}: ONNX Runtime equals lgd's features ({e_onnx:.1e} relative{', normalising inside' if norm else ''})",
              e_onnx < 1e-4, f"{e_onnx:.3e}")
    print(f"{len(failures)} failure(s)" if failures else "all checks passed")
sys.exit(1 if failures else 0)
