"""Every example command of the README and of every `lgd ... --help`, run as a new user types
it, in a scratch folder that holds links to the checkout's configs/ and scripts/ and to this
leg's build folder as build/ (so `build/src/cli/lgd` is the lgd under test; the quick tour's
bare `lgd` means the same file).

The commands are read from the documents themselves: the README's indented code blocks (a
block with `$ ` prompts: those lines, the rest is output; otherwise each line that starts like
a command) and the footers of `lgd <command> --help` for every command and sub-command. Each
must have an entry in EXAMPLES below, and each entry must still be in a document, so a new
example cannot go unchecked and a removed one cannot linger here. An entry either runs the
command, or names the test that runs it, or says why a fresh machine cannot (a download, a
GPU, a placeholder). A run may carry a budget (documented options appended or swapped, listed
in the entry) where the command as written trains or evaluates for minutes; everything else
about it (paths, files it reads and writes, keys, options) is as written. Expected output shown
in the README is checked where it is deterministic.

usage: docs_examples_test.py LGD SOURCE_DIR
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

LGD, SOURCE = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
BUILD = LGD.parents[2]  # <build>/src/cli/lgd
PYTHON = sys.executable  # the leg's Python with torch and torchvision stands in for /usr/bin/python3
FMNIST = Path(os.environ.get("LGD_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
failures = []

# Budgets: documented options that shorten a run without changing what it exercises.
TRAIN_BUDGET = ["--set", "train.max_steps=3", "--set", "train.val_limit=200"]
DEMO_TEACHER_BUDGET = ["--epochs", "1", "--limit", "1024"]

# command as documented -> what this test does with it. Keys are the commands with
# continuation lines joined and comments removed. Entries run in this order.
#   run:      {"budget": args appended, "swap": {old: new}, "exit": code, "output": text shown}
#   covered:  the test that runs it
#   skip:     why a fresh machine cannot run it here
EXAMPLES = {
    # --- README: set up
    "scripts/demo.sh": {"covered": "demo.tiny (LGD_DEMO=tiny scripts/demo.sh: every step at a tiny budget)"},
    "scripts/test.sh": {"covered": "CI (.ci/run): it is the command that runs this test"},
    "LGD_TORCH=pip scripts/test.sh": {"covered": "CI (.ci/run): the pip leg, which runs this test"},
    # --- README: the quick tour
    "/usr/bin/python3 scripts/make_demo_teacher.py -o teachers/demo_fmnist": {
        "run": {"budget": DEMO_TEACHER_BUDGET}, "needs_fmnist": True},
    "lgd train --config configs/demo/fashion_mnist_lgd.yaml --set run.output_dir=runs/demo --set run.name=lgd_mnv2": {
        "run": {"budget": TRAIN_BUDGET}, "needs_fmnist": True},
    "lgd eval --checkpoint runs/demo/lgd_mnv2/checkpoints/last.ckpt --protocol linear-fast,knn,zero-shot --subset 10 --out runs/demo/eval_lgd": {
        "run": {"swap": {"--subset 10": "--subset 1"}}, "needs_fmnist": True},
    "lgd export --checkpoint runs/demo/lgd_mnv2/checkpoints/last.ckpt -o runs/demo/mobilenet_v2_lgd.pth": {
        "run": {"output": "as torchvision .pth to runs/demo/mobilenet_v2_lgd.pth"}, "needs_fmnist": True},
    "/usr/bin/python3 -c \"import torch, torchvision; m = torchvision.models.mobilenet_v2(); print(m.load_state_dict(torch.load('runs/demo/mobilenet_v2_lgd.pth', weights_only=True), strict=False))\"": {
        "run": {"output": "_IncompatibleKeys(missing_keys=['classifier.1.weight', 'classifier.1.bias'], unexpected_keys=[])"},
        "needs_fmnist": True},
    ".venv/bin/python scripts/deploy_student.py runs/demo/mobilenet_v2_lgd.pth": {
        "covered": "export.deploy (deploy_student.py's TorchScript and ONNX against lgd's features; needs onnxruntime, "
                   "which the pip leg's .venv has)"},
    "build/src/cli/lgd info": {"run": {"output": "mobilenet_v3_small            927008          2542856       576"}},
    "build/src/cli/lgd config check configs/examples/resnet18_minimal.yaml --set optim.lr=0.05": {
        "run": {"output": "configs/examples/resnet18_minimal.yaml: ok (student resnet18, method lgd, run resnet18_minimal)"}},
    "build/src/cli/lgd config check configs/examples/resnet18_minimal.yaml --set optim.lrr=0.05": {
        "run": {"exit": 2, "output": "lgd: error: --set optim.lrr=0.05: unknown key 'optim.lrr' (did you mean optim.lr?)"}},
    # --- README: data
    "build/src/cli/lgd bench data --config configs/bench/data.yaml --set data.root=/path/to/images --workers 2": {
        "run": {"swap": {"/path/to/images": "images"}, "budget": ["--batches", "2", "--set", "data.batch_size=16"]}},
    "scripts/bench/data.sh 1 2": {"skip": "a benchmark: generates a 224 px ImageNet-like folder and times lgd and "
                                          "torchvision for minutes (docs/PERFORMANCE.md has its numbers)"},
    # --- README: training, and lgd train --help
    "/usr/bin/python3 scripts/bench/make_teacher.py teachers/random_r18_32 --trunk resnet18 --embed-dim 256 --image-size 32 --classnames configs/classnames/fashion_mnist.txt": {
        "run": {}},
    "build/src/cli/lgd train --config configs/examples/fashion_mnist_cpu.yaml": {
        "run": {"budget": TRAIN_BUDGET}, "needs_fmnist": True},
    "lgd train --config configs/examples/fashion_mnist_cpu.yaml --set optim.epochs=1": {
        "run": {"budget": TRAIN_BUDGET + ["--set", "run.name=help_example"]}, "needs_fmnist": True},
    # --- README: the teacher once, and lgd reinforce --help
    "build/src/cli/lgd reinforce --config configs/examples/fashion_mnist_cpu.yaml --views 2 --out runs/fmnist_cache": {
        "run": {"swap": {"--views 2": "--views 1"}, "budget": ["--set", "data.split=test"]}, "needs_fmnist": True},
    "build/src/cli/lgd train --config configs/examples/fashion_mnist_cpu.yaml --set optim.epochs=2 --set teacher.cache=runs/fmnist_cache --set run.name=fmnist_cached": {
        "run": {"budget": TRAIN_BUDGET + ["--set", "data.split=test"]}, "needs_fmnist": True},
    "lgd reinforce --config configs/examples/fashion_mnist_cpu.yaml --views 2 --out runs/fmnist_cache": {
        "covered": "the README's build/src/cli/lgd reinforce command, the same command, runs above"},
    "lgd train --config configs/examples/fashion_mnist_cpu.yaml --set optim.epochs=2 --set teacher.cache=runs/fmnist_cache --set run.name=fmnist_cached": {
        "covered": "the README's build/src/cli/lgd train --set teacher.cache command, the same command, runs above"},
    "build/src/cli/lgd export --checkpoint runs/fmnist_r18/checkpoints/last.ckpt -o r18.pth": {
        "run": {"output": "as torchvision .pth to r18.pth"}, "needs_fmnist": True},
    "build/src/cli/lgd export --checkpoint runs/fmnist_r18/checkpoints/last.ckpt --with-head -o r18.safetensors": {
        "run": {"output": "r18.safetensors"}, "needs_fmnist": True},
    "build/src/cli/lgd bench train --config configs/examples/fashion_mnist_cpu.yaml": {"run": {}},
    "build/src/cli/lgd bench train --config configs/examples/fashion_mnist_cpu.yaml --trace step.json": {"run": {}},
    # --- README: evaluation, and lgd eval --help
    "build/src/cli/lgd eval --checkpoint runs/fmnist_r18/checkpoints/last.ckpt --protocol linear-fast,knn,zero-shot": {
        "run": {"budget": ["--subset", "1"]}, "needs_fmnist": True},
    "build/src/cli/lgd eval --init random --arch mobilenet_v2 --format idx --data /usr/share/datasets/fashion-mnist --image-size 32 --protocol linear-fast,knn": {
        "run": {"budget": ["--subset", "1"]}, "needs_fmnist": True},
    "lgd eval --checkpoint runs/x/checkpoints/last.ckpt --protocol linear-fast,zero-shot,knn": {
        "run": {"swap": {"runs/x/": "runs/fmnist_r18/"}, "budget": ["--subset", "1"]}, "needs_fmnist": True},
    "lgd eval --init random --arch resnet18 --format idx --data /usr/share/datasets/fashion-mnist --image-size 32 --protocol linear-fast,knn --subset 10 --export-classifier cls.pth": {
        "run": {"swap": {"--subset 10": "--subset 1"}, "output": "wrote cls.pth"}, "needs_fmnist": True},
    "lgd eval --init random --arch resnet18 --format idx --data /usr/share/datasets/fashion-mnist --image-size 32 --protocol finetune --subset 1 --finetune-epochs 5 --out ft-r18": {
        "run": {"swap": {"--finetune-epochs 5": "--finetune-epochs 1"}, "output": "| finetune "}, "needs_fmnist": True},
    "/usr/bin/python3 -c \"import torch, torchvision; m = torchvision.models.resnet18(num_classes=10); m.load_state_dict(torch.load('cls.pth', weights_only=True))\"": {
        "run": {}, "needs_fmnist": True},
    # --- README: teachers and the TSB
    ".venv/bin/python scripts/export_clip.py --model RN50 --pretrained openai --classnames imagenet -o teachers/clip_rn50": {
        "skip": "downloads OpenAI's RN50 weights (teacher.open_clip checks the same script with random weights)"},
    ".venv/bin/python scripts/export_clip.py --model ViT-B-32 --pretrained none -o teachers/vitb32_random": {
        "covered": "teacher.open_clip (export_clip.py on RN50 and ViT-B-32 with random weights, against open_clip)"},
    "build/src/cli/lgd tokenize --teacher teachers/clip_rn50 \"a photo of a dog.\"": {
        "run": {"swap": {"teachers/clip_rn50": "teachers/random_r18_32"}},
        "why": "teachers/clip_rn50 needs a download; the random bundle has CLIP's tokenizer too"},
    "build/src/cli/lgd bank build --teacher teachers/clip_rn50 --classnames my_classes.txt --templates teachers/clip_rn50/templates.txt -o tsb.safetensors": {
        "run": {"swap": {"teachers/clip_rn50/templates.txt": "templates.txt", "teachers/clip_rn50": "teachers/random_r18_32",
                         "my_classes.txt": "configs/classnames/fashion_mnist.txt"}},
        "why": "the random bundle ships no template file; the test writes one"},
    "build/src/cli/lgd bank show tsb.safetensors": {"run": {"output": "T-shirt/top"}},
    # --- README: building by hand
    "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2": {
        "covered": "every test: scripts/build.sh configures and builds the same way (this test runs in that build)"},
    "ctest --test-dir build --output-on-failure": {"covered": "CI (.ci/run, through scripts/test.sh)"},
    "cmake -S . -B build -DCMAKE_PREFIX_PATH=$(.venv/bin/python -c 'import torch;print(torch.utils.cmake_prefix_path)')": {
        "covered": "CI's pip leg (LGD_TORCH=pip scripts/build.sh passes the same prefix path)"},
    # --- README: air-gapped install
    "scripts/bundle_deps.sh deps": {"covered": "CI's offline leg (scripts/check_offline.sh)"},
    "scripts/build_offline.sh --deps deps --python python3": {"covered": "CI's offline leg (scripts/check_offline.sh)"},
    "ctest --test-dir build-offline -j 8": {"skip": "the CPU tests of an offline build: CI runs the suite in both legs"},
    "build-offline/src/cli/lgd info": {"covered": "CI's offline leg (scripts/check_offline.sh checks what lgd info reports)"},
    "scripts/bundle_deps.sh /tmp/lgd-deps": {"covered": "CI's offline leg (scripts/check_offline.sh)"},
    "scripts/build_offline.sh --deps /tmp/lgd-deps --prefix /tmp/offline-prefix --python /usr/bin/python3 --torch /usr/lib/x86_64-linux-gnu/cmake --jobs 2 --cmake -DLGD_WITH_OPENCV=OFF --cmake -DLGD_USE_CCACHE=OFF": {
        "skip": "a 23-minute build of the Debian LibTorch leg without OpenCV, recorded in the README as a check made once; "
                "CI's offline leg builds the same way against the pip LibTorch"},
    "ctest --test-dir build-offline -j2": {"skip": "as above: the suite of that one-off build"},
    # --- lgd export --help
    "lgd export --checkpoint runs/r18/checkpoints/last.ckpt -o r18_lgd.pth": {
        "run": {"swap": {"runs/r18/": "runs/fmnist_r18/"}}, "needs_fmnist": True},
    "lgd export --arch resnet18 --init random --seed 0 -o resnet18.pth": {"run": {"output": "resnet18.pth"}},
    "lgd export --arch mobilenet_v2 --init random --layout mmdet -o mobilenet_v2_mmdet.pth": {
        "run": {"output": "mmdet config beside it: mobilenet_v2_mmdet.py"}},
    "/usr/bin/python3 -c \"import torch, torchvision; m = torchvision.models.resnet18(); print(m.load_state_dict(torch.load('resnet18.pth', weights_only=True), strict=False))\"": {
        "run": {"output": "_IncompatibleKeys(missing_keys=['fc.weight', 'fc.bias'], unexpected_keys=[])"}},
}

COMMAND_START = re.compile(r"^(\$ |scripts/|LGD_\w+=|/usr/bin/python3 |\.venv/bin/python |build(-offline)?/|lgd |cmake |ctest )")


def join_lines(lines):
    """Commands of a list of lines: continuation lines joined, trailing comments removed."""
    out, current = [], ""
    for line in lines:
        line = line.strip()
        current = f"{current} {line}" if current else line
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        out.append(current)
        current = ""
    return [strip_comment(c) for c in out if c]


def strip_comment(command):
    """Removes a trailing `# ...` comment outside quotes."""
    quote = None
    for i, ch in enumerate(command):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and i > 0 and command[i - 1] == " ":
            return command[:i].rstrip()
    return command.strip()


def readme_commands(text):
    commands, block = [], []

    def flush():
        if not block:
            return
        lines = [b[4:] for b in block]
        if any(line.startswith("$ ") for line in lines):
            grouped, in_command = [], False
            for line in lines:
                if line.startswith("$ "):
                    grouped.append([line[2:]])
                    in_command = line.rstrip().endswith("\\")
                elif in_command:
                    grouped[-1].append(line)
                    in_command = line.rstrip().endswith("\\")
            for g in grouped:
                commands.extend(join_lines(g))
        else:
            kept, in_command = [], False
            for line in lines:
                stripped = line.strip()
                if in_command or (COMMAND_START.match(stripped) and not stripped.startswith("#")):
                    kept.append(line)
                    in_command = stripped.endswith("\\")
            commands.extend(join_lines(kept))
        block.clear()

    previous_blank = True
    for line in text.splitlines():
        if line.startswith("    ") and (block or previous_blank):
            block.append(line)
        elif block and not line.strip():
            block.append("    ")
        else:
            flush()
        previous_blank = not line.strip()
    flush()
    return commands


def help_commands():
    """The example commands in the footers of every lgd command and sub-command."""
    def help_of(args):
        return subprocess.run([str(LGD), *args, "--help"], capture_output=True, text=True, timeout=60).stdout

    def subcommands(text):
        names, in_section = [], False
        for line in text.splitlines():
            if line.strip() in ("Subcommands:", "SUBCOMMANDS:"):
                in_section = True
            elif in_section and re.match(r"^  \S", line):
                names.append(line.split()[0])
            elif in_section and line.strip() and not line.startswith("  "):
                in_section = False
        return names

    commands, pages = [], [[]]
    seen = set()
    while pages:
        args = pages.pop(0)
        text = help_of(args)
        for sub in subcommands(text):
            if tuple(args + [sub]) not in seen:
                seen.add(tuple(args + [sub]))
                pages.append(args + [sub])
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("Example"):
                block = []
                for follow in lines[i + 1:]:
                    if not follow.startswith("  "):
                        break
                    block.append(follow)
                commands.extend(join_lines(block))
    return commands, len(seen)


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
    if not ok:
        failures.append(name)


def as_run(command, spec):
    for old, new in spec.get("swap", {}).items():
        assert old in command, (old, command)
        command = command.replace(old, new)
    if command.startswith("lgd "):
        command = "build/src/cli/lgd " + command[4:]
    command = command.replace("/usr/bin/python3 ", shlex.quote(PYTHON) + " ", 1)
    command = re.sub(r"^python3 ", shlex.quote(PYTHON) + " ", command)
    if spec.get("budget"):
        command += " " + " ".join(shlex.quote(a) for a in spec["budget"])
    return command


def make_images(folder):
    """A small image folder (two classes of PNGs) for the data benchmark's placeholder."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / c / f"{i}.png")


def main():
    documented = readme_commands((SOURCE / "README.md").read_text())
    from_help, pages = help_commands()
    check(f"read {len(documented)} README commands and {len(from_help)} --help examples from {pages} help pages",
          len(documented) > 20 and len(from_help) >= 6)
    all_commands = documented + from_help
    for command in all_commands:
        check(f"documented command has an entry here: {command}", command in EXAMPLES)
    for command in EXAMPLES:
        check(f"entry still documented: {command}", command in all_commands)

    have_fmnist = (FMNIST / "train-images-idx3-ubyte.gz").exists()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("configs", "scripts"):
            (work / name).symlink_to(SOURCE / name)
        (work / "build").symlink_to(BUILD)
        if (SOURCE / ".venv").exists():
            (work / ".venv").symlink_to(SOURCE / ".venv")
        make_images(work / "images")
        (work / "templates.txt").write_text("a photo of a {}.\na blurry photo of a {}.\n")
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        for command, entry in EXAMPLES.items():
            if "run" not in entry:
                kind = "covered" if "covered" in entry else "skip"
                print(f"---- {kind}: {command}\n     {entry[kind]}", flush=True)
                continue
            if entry.get("needs_fmnist") and not have_fmnist:
                print(f"---- not run (no Fashion-MNIST at {FMNIST}): {command}", flush=True)
                continue
            spec = entry["run"]
            line = as_run(command, spec)
            print(f"---- {line}", flush=True)
            done = subprocess.run(line, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=900)
            text = done.stdout + done.stderr
            want = spec.get("exit", 0)
            check(f"exits {want}: {command}", done.returncode == want, f"exit {done.returncode}\n{text[-2500:]}")
            if "output" in spec:
                check(f"prints what the docs show: {spec['output']}", spec["output"] in text, text[-1500:])
    print(f"{len(failures)} failure(s)" if failures else "all documented commands accounted for")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
