"""lgd reads the checkpoints of self-supervised training code, written here by torch.save the
way that code writes them (not by lgd):
  * SEED's / LGD's official code: {"epoch", "arch", "state_dict": DDP(model).state_dict(),
    "optimizer"} with the student (a torchvision ResNet whose fc is the projection MLP
    Linear(F, F), ReLU, Linear(F, 128)) under "module.student.", the teacher under
    "module.teacher.", the queue as "module.queue" / "module.queue_ptr";
  * MoCo's: the query encoder under "module.encoder_q." with a single fc Linear(F, 128).
Each is also read in torch.save's legacy (non-zip) format. The student's backbone must come
out equal to the saved one; SEED's MLP becomes lgd's
projection head (--with-head), MoCo's single fc is dropped as MoCo's own linear probe drops it.
Keys that fit no student give one line showing some of the file's keys and what was guessed.

usage: weights_in_test.py LGD
"""
import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from safetensors_io import read_safetensors  # noqa: E402

LGD = sys.argv[1]
failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
    if not ok:
        failures.append(name)


def lgd(*args):
    return subprocess.run([LGD, *map(str, args)], capture_output=True, text=True)


torch.manual_seed(0)
student = torchvision.models.resnet18(num_classes=128)
student.fc = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), student.fc)
teacher = torchvision.models.resnet50(num_classes=128)
state = OrderedDict()
for k, v in student.state_dict().items():
    state["module.student." + k] = v
for k, v in list(teacher.state_dict().items())[:6]:
    state["module.teacher." + k] = v
state["module.queue"] = torch.randn(128, 64)
state["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
optimizer = torch.optim.SGD(student.parameters(), lr=0.03, momentum=0.9)
student(torch.randn(2, 3, 32, 32)).sum().backward()
optimizer.step()

moco_q = torchvision.models.resnet18(num_classes=128)
moco = OrderedDict(("module.encoder_q." + k, v) for k, v in moco_q.state_dict().items())
moco.update(("module.encoder_k." + k, v) for k, v in moco_q.state_dict().items())

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    torch.save({"epoch": 200, "arch": "resnet18", "state_dict": state, "optimizer": optimizer.state_dict()},
               tmp / "seed_checkpoint.pth.tar")
    torch.save({"epoch": 200, "arch": "resnet18", "state_dict": moco}, tmp / "moco_checkpoint.pth.tar")
    backbone = {k: v for k, v in student.state_dict().items() if not k.startswith("fc.")}

    done = lgd("export", "--arch", "resnet18", "--weights", tmp / "seed_checkpoint.pth.tar", "--with-head",
               "-o", tmp / "seed.safetensors")
    check("SEED / LGD official checkpoint: exported", done.returncode == 0, done.stderr.strip())
    if done.returncode == 0:
        got = read_safetensors(tmp / "seed.safetensors")[0]
        check("its student's backbone, key for key and value for value",
              all(k in got and (got[k] == v.numpy()).all() for k, v in backbone.items())
              and not any(k.startswith(("fc.", "teacher", "queue")) for k in got))
        check("its projection MLP as lgd's head (fc.0 -> head.0, fc.2 -> head.2)",
              all((got["head." + k[3:]] == v.numpy()).all() for k, v in student.state_dict().items()
                  if k.startswith("fc.")))

    done = lgd("export", "--arch", "resnet18", "--weights", tmp / "moco_checkpoint.pth.tar", "-o", tmp / "moco.pth")
    check("MoCo checkpoint (module.encoder_q.): exported", done.returncode == 0, done.stderr.strip())
    if done.returncode == 0:
        got = torch.load(tmp / "moco.pth", weights_only=True)
        expected = {k: v for k, v in moco_q.state_dict().items() if not k.startswith("fc.")}
        check("the query encoder's backbone, without its fc projection",
              list(got) == list(expected) and all(torch.equal(got[k], v) for k, v in expected.items()))
        tv = torchvision.models.resnet18()
        missing, unexpected = tv.load_state_dict(got, strict=False)
        check("loads into torchvision (missing only fc)", sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected)

    # torch.save's legacy (non-zip) format: a state dict, and SEED's checkpoint as above.
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp / "legacy.pth", _use_new_zipfile_serialization=False)
    done = lgd("export", "--arch", "resnet18", "--weights", tmp / "legacy.pth", "--num-classes", "1000",
               "-o", tmp / "from_legacy.pth")
    check("a legacy (non-zip) torch.save file is read", done.returncode == 0, done.stderr.strip())
    if done.returncode == 0:
        got = torch.load(tmp / "from_legacy.pth", weights_only=True)
        check("its tensors, key for key and value for value",
              list(got) == list(reference.state_dict()) and
              all(torch.equal(got[k], v) for k, v in reference.state_dict().items()))
    torch.save({"epoch": 200, "arch": "resnet18", "state_dict": state}, tmp / "seed_legacy.pth.tar",
               _use_new_zipfile_serialization=False)
    done = lgd("export", "--arch", "resnet18", "--weights", tmp / "seed_legacy.pth.tar", "--with-head",
               "-o", tmp / "seed_legacy.safetensors")
    check("a SEED checkpoint in the legacy format", done.returncode == 0 and
          (read_safetensors(tmp / "seed_legacy.safetensors")[0]["head.2.weight"] == student.fc[2].weight.detach().numpy()).all(),
          done.stderr.strip())
    blob = (tmp / "legacy.pth").read_bytes()
    (tmp / "legacy_cut.pth").write_bytes(blob[:len(blob) - 1000])
    done = lgd("export", "--arch", "resnet18", "--weights", tmp / "legacy_cut.pth", "-o", tmp / "cut.pth")
    check("a truncated legacy file is one line naming it", done.returncode == 1 and
          done.stderr.strip().startswith(f"lgd: error: {tmp / 'legacy_cut.pth'}: cannot read torch.save data:")
          and len(done.stderr.strip().splitlines()) == 1, done.stderr.strip())

    torch.save(torchvision.models.mobilenet_v2().state_dict(), tmp / "mnv2.pth")
    done = lgd("export", "--arch", "resnet18", "--weights", tmp / "mnv2.pth", "-o", tmp / "x.pth")
    line = done.stderr.strip()
    check("keys of another student: one line with some of the file's keys and no prefix guessed",
          done.returncode == 1 and len(line.splitlines()) == 1 and "missing" in line
          and "the file's keys: features.0.0.weight, features.0.1.weight" in line and "no student prefix found" in line,
          line)
    print(f"{len(failures)} failure(s)" if failures else "all checks passed")
sys.exit(1 if failures else 0)
