#!/usr/bin/env bash
# The main job on a fresh machine, with nothing downloaded: installs what is missing, builds
# lgd, makes (or reuses) a small image-text teacher trained here on Fashion-MNIST, distils a
# MobileNetV2 student from it with LGD, evaluates the student and a random-init MobileNetV2
# the same way (linear-fast and kNN on 10% of the labels, zero-shot), prints the table, and
# hands the student to torchvision.
#
#   scripts/demo.sh                  the demo (about 20 minutes on 2 cores from a fresh clone)
#   LGD_DEMO=tiny scripts/demo.sh    every step at a tiny budget (the test suite runs this)
#   LGD=path/to/lgd scripts/demo.sh  use that lgd: no set-up, no build
#   LGD_DEMO_OUT=DIR                 where runs and results go (default runs/demo)
#   LGD_PYTHON=PATH                  the Python with torch + torchvision (default /usr/bin/python3)
#   LGD_FASHION_MNIST=DIR            the Fashion-MNIST IDX files (default: Debian's dataset-fashion-mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${LGD_DEMO:-full}
out=${LGD_DEMO_OUT:-runs/demo}
source scripts/lib/demo_common.sh

case "$mode" in
  full)
    teacher=teachers/demo_fmnist
    teacher_args=(--epochs 2)
    train_args=()
    eval_args=(--subset 10) ;;
  tiny)
    teacher=$out/teacher
    teacher_args=(--epochs 1 --limit 1024)
    train_args=(--set train.max_steps=4 --set data.batch_size=32 --set train.val_every=0 --set train.log_every=1)
    eval_args=(--subset 1) ;;
  *) echo "demo.sh: LGD_DEMO=$mode (expected full or tiny)" >&2; exit 2 ;;
esac

ensure_lgd
mkdir -p "$out"

demo_teacher "$teacher" "the demo teacher: a CLIP-style model trained here on Fashion-MNIST (reused when it exists)" \
  "${teacher_args[@]}"

step "LGD: distilling a MobileNetV2 from it (configs/demo/fashion_mnist_lgd.yaml)"
"$LGD" train --config configs/demo/fashion_mnist_lgd.yaml --set run.output_dir="$out" --set run.name=lgd_mnv2 \
  --set teacher.bundle="$teacher" --set data.root="$FMNIST" "${train_args[@]}"

step "evaluating the student: linear-fast, kNN, zero-shot"
"$LGD" eval --checkpoint "$out/lgd_mnv2/checkpoints/last.ckpt" --protocol linear-fast,knn,zero-shot \
  "${eval_args[@]}" --out "$out/eval_lgd"

step "evaluating a random-init MobileNetV2 the same way"
"$LGD" eval --init random --arch mobilenet_v2 --seed 0 --format idx --data "$FMNIST" \
  --image-size 32 --protocol linear-fast,knn "${eval_args[@]}" --out "$out/eval_random"

step "handing the student to torchvision"
"$LGD" export --checkpoint "$out/lgd_mnv2/checkpoints/last.ckpt" -o "$out/mobilenet_v2_lgd.pth"
"$PYTHON" - "$out/mobilenet_v2_lgd.pth" <<'PY'
import sys, torch, torchvision
model = torchvision.models.mobilenet_v2()
result = model.load_state_dict(torch.load(sys.argv[1], weights_only=True), strict=False)
print(f"torchvision.models.mobilenet_v2() loaded {sys.argv[1]}: missing {result.missing_keys} "
      f"(the classifier you fine-tune), unexpected {result.unexpected_keys}")
PY

step "summary"
"$PYTHON" - "$teacher/demo_teacher.json" "$out/eval_random/results.json" "$out/eval_lgd/results.json" <<'PY'
import json, sys
teacher = json.load(open(sys.argv[1]))
rows = [("random-init MobileNetV2", json.load(open(sys.argv[2]))), ("LGD MobileNetV2", json.load(open(sys.argv[3])))]
subset = rows[1][1]["dataset"]["subset"]
print(f"Fashion-MNIST test set (10,000 images), top-1 %; linear-fast and kNN learn from a labelled subset ({subset})")
print()
print("| model | linear-fast | kNN | zero-shot |")
print("| --- | ---: | ---: | ---: |")
print(f"| demo teacher (its own script's measurement) | {teacher['linear_probe_top1']:.2f} | | {teacher['zero_shot_top1']:.2f} |")
for name, r in rows:
    top1 = {p["protocol"]: f"{p['top1']:.2f}" for p in r["results"]}
    print(f"| {name} | {top1.get('linear-fast', '')} | {top1.get('knn', '')} | {top1.get('zero-shot', '(no head)')} |")
PY
if [ "$mode" = tiny ]; then
  echo
  echo "LGD_DEMO=tiny: every step ran at a budget too small to learn anything (a teacher trained on"
  echo "1,024 images for one epoch, 4 LGD steps, 1% of the labels): the numbers above check that the"
  echo "pipeline runs end to end and measure nothing. Run scripts/demo.sh for the real ones."
fi
printf '\nDone in %d:%02d. Runs and results: %s\n' $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60)) "$out"
