"""A student of lgd's zoo equals torchvision's model of the same name.

Checks, against python3-torchvision:
  * `lgd export --init random` (no classifier) loads into torchvision with strict=False and
    reports exactly the classifier keys missing; names, shapes and order equal torchvision's;
  * weights made by torchvision (with non-trivial BatchNorm statistics) load into lgd, give
    the same pooled features in eval mode (relative error < 1e-4), and export back
    bit-identical with the classifier (strict=True);
  * lgd's parameter count with a 1000-class classifier equals torchvision's and the
    published number.

usage: torchvision_equivalence_test.py LGD STUDENT_FEATURES ARCH
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torchvision

EXPECTED_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
    "efficientnet_b0": 5_288_548,
}
CLASSIFIER_PREFIX = {"resnet18": "fc.", "resnet34": "fc.", "resnet50": "fc."}


def run(*args):
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, args))}\n{done.stdout}{done.stderr}")
    return done.stdout


def features_torchvision(model, x):
    model.eval()
    prefix = CLASSIFIER_PREFIX.get(ARCH, "classifier.")
    setattr(model, prefix[:-1], torch.nn.Identity())
    with torch.no_grad():
        return model(x)


def features_lgd(weights, x, work):
    x.numpy().astype("<f4").tofile(work / "input.bin")
    out = run(TOOL, ARCH, weights, work / "input.bin", *x.shape[:1], *x.shape[2:], work / "out.bin")
    info = dict(kv.split("=") for kv in out.split())
    feats = torch.from_numpy(
        __import__("numpy").fromfile(work / "out.bin", dtype="<f4").reshape(x.shape[0], -1))
    return feats, info


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def main():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ctor = getattr(torchvision.models, ARCH)

        # 1. Random-init export without classifier.
        run(LGD, "export", "--arch", ARCH, "--init", "random", "--seed", 7, "-o", work / "rand.pth")
        sd = torch.load(work / "rand.pth", weights_only=True)
        tv = ctor()
        reference = tv.state_dict()
        prefix = CLASSIFIER_PREFIX.get(ARCH, "classifier.")
        expected_keys = [k for k in reference if not k.startswith(prefix)]
        assert list(sd.keys()) == expected_keys, "key order differs from torchvision"
        for k in expected_keys:
            assert sd[k].shape == reference[k].shape, f"{k}: {sd[k].shape} vs {reference[k].shape}"
            assert sd[k].dtype == reference[k].dtype, f"{k}: {sd[k].dtype} vs {reference[k].dtype}"
        result = tv.load_state_dict(sd, strict=False)
        missing = sorted(result.missing_keys)
        assert missing == sorted(k for k in reference if k.startswith(prefix)), missing
        assert not result.unexpected_keys, result.unexpected_keys
        ours, _ = features_lgd(work / "rand.pth", x, work)
        theirs = features_torchvision(tv, x)
        err = relative_error(ours, theirs)
        assert err < 1e-4, f"random-init features differ: relative error {err:.3g}"
        print(f"{ARCH}: random init, keys and features match (rel. error {err:.2e})")

        # 2. torchvision weights with non-trivial BatchNorm statistics, loaded by lgd.
        tv = ctor()
        with torch.no_grad():
            for m in tv.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
                    m.num_batches_tracked.fill_(17)
        torch.save(tv.state_dict(), work / "tv.pth")  # an OrderedDict, as torchvision ships
        ours, info = features_lgd(work / "tv.pth", x, work)
        assert int(info["classes"]) == 1000
        params_tv = sum(p.numel() for p in tv.parameters())
        assert int(info["params"]) == params_tv == EXPECTED_PARAMS[ARCH], (info, params_tv)
        tv_copy = ctor()
        tv_copy.load_state_dict(torch.load(work / "tv.pth", weights_only=True))
        theirs = features_torchvision(tv_copy, x)
        err = relative_error(ours, theirs)
        assert err < 1e-4, f"torchvision-weight features differ: relative error {err:.3g}"

        # 3. Export back with the classifier: strict load, bit-identical tensors.
        run(LGD, "export", "--arch", ARCH, "--weights", work / "tv.pth", "-o", work / "back.pth")
        back = torch.load(work / "back.pth", weights_only=True)
        again = ctor()
        again.load_state_dict(back, strict=True)
        original = torch.load(work / "tv.pth", weights_only=True)
        for k, v in original.items():
            assert torch.equal(back[k], v), f"{k} changed in the round trip"
        print(f"{ARCH}: torchvision weights, features (rel. error {err:.2e}), "
              f"{params_tv:,} parameters, strict round trip: ok")


if __name__ == "__main__":
    LGD, TOOL, ARCH = sys.argv[1], sys.argv[2], sys.argv[3]
    main()
