"""Bad input to the lgd executable: one clear line on stderr and the documented exit code.

usage: cli_errors_test.py LGD SOURCE_DIR
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

LGD = sys.argv[1]
failures = []


def check(name, args, code, expected, stdin_files=None):
    done = subprocess.run([LGD, *args], capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    ok = done.returncode == code and len(lines) == 1 and expected in lines[0]
    ok = ok and "Exception raised" not in done.stderr and "frame #" not in done.stderr
    status = "ok  " if ok else "FAIL"
    print(f"{status} {name}: exit {done.returncode}: {done.stderr.strip()}")
    if not ok:
        failures.append(f"{name}: expected exit {code} and one line containing {expected!r}")


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)

    def config(name, text):
        path = tmp / name
        path.write_text(text)
        return str(path)

    good = config("good.yaml", "student:\n  arch: resnet18\noptim:\n  lr: 0.05\n")
    check("unknown key", ["config", "check", config("u.yaml", "student:\n  arch: resnet18\n  color: red\n")],
          2, "u.yaml:3:3: unknown key 'student.color'")
    check("typo with suggestion", ["config", "check", config("t.yaml", "student:\n  arch: resnet18\noptim:\n  lrr: 0.1\n")],
          2, "t.yaml:4:3: unknown key 'optim.lrr' (did you mean optim.lr?)")
    check("wrong type", ["config", "check", config("w.yaml", "student:\n  arch: resnet18\noptim:\n  epochs: many\n")],
          2, "w.yaml:4:11: optim.epochs: expected an integer >= 1, got 'many'")
    check("out of range", ["config", "check", config("r.yaml", "student:\n  arch: resnet18\nmethod:\n  alpha: 1.5\n")],
          2, "r.yaml:4:10: method.alpha: expected a number in [0, 1], got '1.5'")
    check("missing required", ["config", "check", config("m.yaml", "optim:\n  lr: 0.1\n")],
          2, "m.yaml: student.arch: required key is missing (expected one of resnet18,")
    check("missing file", ["config", "check", str(tmp / "nope.yaml")],
          2, "nope.yaml: cannot read config file (No such file or directory)")
    check("bad YAML syntax", ["config", "check", config("s.yaml", "student:\n  arch: [resnet18\n")],
          2, "s.yaml:3:1: invalid YAML")
    check("unknown arch", ["config", "check", config("a.yaml", "student:\n  arch: resnet19\n")],
          2, "a.yaml:2:9: student.arch: expected one of resnet18, resnet34")
    check("--set unknown key", ["config", "print", good, "--set", "optim.lrr=1"],
          2, "--set optim.lrr=1: unknown key 'optim.lrr' (did you mean optim.lr?)")
    check("--set wrong type", ["config", "print", good, "--set", "optim.lr=fast"],
          2, "--set optim.lr=fast: optim.lr: expected a number > 0, got 'fast'")
    check("cross-field", ["config", "check", good, "--set", "student.init=weights"],
          2, "student.weights: required when student.init is weights")
    check("unknown subcommand option", ["export", "--arch", "resnet18", "-o", "x.pth", "--bogus"], 2, "--bogus")
    check("export unknown arch", ["export", "--arch", "resnet181", "--init", "random", "-o", str(tmp / "x.pth")],
          2, "unknown student architecture 'resnet181' (did you mean resnet18?)")
    check("train without a teacher", ["train", "--config", good],
          2, "teacher.bundle: required by lgd train (expected a teacher bundle directory)")
    check("train without data", ["train", "--config", good, "--set", f"teacher.bundle={tmp}"],
          2, "data.root: required by lgd train (expected the training set's location)")
    check("train --resume of a missing file",
          ["train", "--config", good, "--set", f"teacher.bundle={tmp}", "--set", f"data.root={tmp}",
           "--resume", str(tmp / "none.ckpt")], 1, "none.ckpt: no such checkpoint (--resume)")
    check("train with validation but no validation set",
          ["train", "--config", good, "--set", "train.val_every=1"],
          2, "data.val_root: required when train.val_every > 0 with an image_folder dataset")
    check("export without source", ["export", "--arch", "resnet18", "-o", str(tmp / "x.pth")],
          2, "give exactly one of --checkpoint FILE, --weights FILE or --init random")
    # Data: a missing root, an empty class folder, a list with a bad line, a bad range.
    check("data root missing", ["bench", "data", "--config", good, "--set", f"data.root={tmp / 'nodata'}"],
          1, f"{tmp / 'nodata'}: not a directory (data.root of an image_folder dataset)")
    (tmp / "imgs" / "cat").mkdir(parents=True)
    (tmp / "imgs" / "cat" / "notes.txt").write_text("no images")
    check("empty class folder", ["bench", "data", "--config", good, "--set", f"data.root={tmp / 'imgs'}"],
          1, f"{tmp / 'imgs' / 'cat'}: class folder without images")
    bad_list = config("list.csv", "a.png,1\nb.png\n")
    check("file list line", ["bench", "data", "--config", good, "--set", "data.dataset=file_list",
                             "--set", f"data.root={bad_list}"],
          1, f"{bad_list}:2: expected 'path,label', got 'b.png'")
    check("crop scale order", ["config", "check", good, "--set", "data.crop_scale=[0.9, 0.2]"],
          2, "data.crop_scale: expected [min, max]")
    corrupt = tmp / "corrupt.pth"
    corrupt.write_bytes(b"PK\x03\x04" + os.urandom(200))
    check("export corrupt weights", ["export", "--arch", "resnet18", "--weights", str(corrupt), "-o", str(tmp / "x.pth")],
          1, f"{corrupt}: not a torch.save zip archive")
    junk = tmp / "junk.bin"
    junk.write_bytes(b"hello world, not weights")
    check("export unknown format", ["export", "--arch", "resnet18", "--weights", str(junk), "-o", str(tmp / "x.pth")],
          1, f"{junk}: unknown weights format")
    subprocess.run([LGD, "export", "--arch", "resnet18", "--init", "random", "-o", str(tmp / "r18.safetensors")], check=True,
                   capture_output=True)
    check("export weights of another arch", ["export", "--arch", "resnet34", "--weights", str(tmp / "r18.safetensors"),
                                             "-o", str(tmp / "x.pth")],
          1, "r18.safetensors: holds weights of resnet18, expected resnet34")
    subprocess.run([LGD, "export", "--arch", "resnet18", "--init", "random", "--format", "torchvision", "-o",
                    str(tmp / "r18.pth")], check=True, capture_output=True)
    check("export weights with missing keys", ["export", "--arch", "resnet34", "--weights", str(tmp / "r18.pth"),
                                               "-o", str(tmp / "x.pth")],
          1, "r18.pth: missing 96 key(s): layer1.2.conv1.weight")
    check("export into a missing directory", ["export", "--arch", "resnet18", "--init", "random", "-o",
                                              str(tmp / "no" / "x.pth")],
          1, "does not exist")
    check("bad log level", ["--log-level", "loud", "info"], 2, "--log-level: unknown level 'loud'")

    # Input that was silently accepted, or reached an allocator or a crash.
    check("unknown command", ["trian", "--config", good], 2,
          "unknown command 'trian' (did you mean train?); the commands are train, reinforce, eval, info")
    check("unknown bench command", ["bench", "dta", "--config", good], 2,
          "unknown bench command 'dta' (did you mean data?); the bench commands are data, vsb, train")
    check("second YAML document", ["config", "check", config("two.yaml", "student:\n  arch: resnet18\n---\noptim:\n  lr: 1\n")],
          2, "two.yaml: holds 2 YAML documents (separated by ---); a config is one document")
    check("config check of a directory", ["config", "check", str(tmp)], 2, f"{tmp}: is a directory; expected a YAML config file")
    check("lr beyond float32", ["config", "check", good, "--set", "optim.lr=1e300"], 2,
          "optim.lr: 1e+300 is above the limit 1e6")
    check("huge batch", ["config", "check", good, "--set", "data.batch_size=100000000000"], 2,
          "data.batch_size: expected an integer in [1, 65536], got '100000000000'")
    check("huge queue", ["config", "check", good, "--set", "method.queue_size=10000000000"], 2,
          "method.queue_size: expected an integer in [1, 4194304]")
    eval_args = ["eval", "--init", "random", "--arch", "resnet18", "--format", "idx", "--data", str(tmp),
                 "--protocol", "knn"]
    check("eval huge image size", [*eval_args, "--image-size", "100000"], 2,
          "--image-size: expected 0 (the default) or an integer in [16, 4096], got 100000")
    check("eval negative image size", [*eval_args, "--image-size", "-5"], 2, "--image-size")
    check("eval negative workers", [*eval_args, "--workers", "-1"], 2, "--workers")
    check("eval non-finite lr", [*eval_args, "--linear-lr", "inf"], 2, "--linear-lr: expected a finite number > 0, got 'inf'")
    check("eval NaN lr", [*eval_args, "--linear-lr", "nan"], 2, "--linear-lr")
    check("export negative classes", ["export", "--arch", "resnet18", "--init", "random", "--num-classes", "-5",
                                      "-o", str(tmp / "x.pth")], 2, "--num-classes")
    # A NUL byte in a value: one line, the key named.
    done = subprocess.run([LGD, "config", "check", config("nul.yaml", "student:\n  arch: \"res\\0net18\"\n")],
                          capture_output=True, text=True)
    nul_ok = done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "student.arch" in done.stderr
    print(f"{'ok  ' if nul_ok else 'FAIL'} NUL byte in a value: exit {done.returncode}: {done.stderr.strip()!r}")
    if not nul_ok:
        failures.append("NUL byte in a value: expected exit 2 and one line naming student.arch")
    # A .pth whose pickle builds a tuple from an empty stack (this crashed the reader).
    import zipfile
    with zipfile.ZipFile(tmp / "tuple2.pth", "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02\x86.")
        z.writestr("archive/version", b"3\n")
    check("crafted pickle", ["export", "--arch", "resnet18", "--weights", str(tmp / "tuple2.pth"), "-o", str(tmp / "x.pth")],
          1, f"{tmp / 'tuple2.pth'}: cannot read torch.save data: TUPLE2 with 0 item(s) on the pickle stack")

    # Valid input still works and prints the resolved config.
    done = subprocess.run([LGD, "config", "print", good, "--set", "method.alpha=1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "optim:\n  lr: 0.05\n" in done.stdout and "  alpha: 1.0\n" in done.stdout, done.stdout
    assert not list(tmp.glob("*.tmp.*")), "a temporary file was left behind"

if failures:
    sys.exit("\n".join(failures))
print("all error cases give one line and the right exit code")
