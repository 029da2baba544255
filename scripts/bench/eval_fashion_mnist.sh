#!/usr/bin/env bash
# lgd eval on Fashion-MNIST (Debian's dataset-fashion-mnist) for a random-init MobileNetV2
# and a MobileNetV2 distilled for one epoch with lgd train (README example config, random
# teacher). Results land in eval-fmnist/<name>/results.json; docs/PERFORMANCE.md quotes them.
#   scripts/bench/eval_fashion_mnist.sh [quick|subset|full]
#     quick   linear-fast, knn (and zero-shot for the student) on all 60,000 labels
#     subset  linear (MoCo, 100 epochs) and linear-fast on 10% of the labels per class
#     full    linear (MoCo, 100 epochs) on all labels, the trained student only (~1 h on 2 cores)
# Each mode writes fresh folders (delete eval-fmnist/ to time feature extraction again).
set -euo pipefail
cd "$(dirname "$0")/../.."
LGD=build/src/cli/lgd
DATA=(--format idx --data /usr/share/datasets/fashion-mnist --image-size 32 --threads 2)
CKPT=runs/fmnist_mnv2/checkpoints/last.ckpt
if [ ! -f "$CKPT" ]; then
  [ -f teachers/random_r18_32/lgd_teacher.yaml ] || python3 scripts/bench/make_teacher.py teachers/random_r18_32 \
    --trunk resnet18 --embed-dim 256 --image-size 32 --classnames configs/classnames/fashion_mnist.txt
  "$LGD" train --config configs/examples/fashion_mnist_cpu.yaml --set run.name=fmnist_mnv2 \
    --set student.arch=mobilenet_v2
fi
RANDOM_INIT=(--init random --arch mobilenet_v2 --seed 0 "${DATA[@]}")
STUDENT=(--checkpoint "$CKPT" --threads 2)
case "${1:-quick}" in
  quick)
    "$LGD" eval "${RANDOM_INIT[@]}" --protocol linear-fast,knn --out eval-fmnist/random_mnv2
    "$LGD" eval "${STUDENT[@]}" --protocol linear-fast,knn,zero-shot --out eval-fmnist/lgd_mnv2 ;;
  subset)
    "$LGD" eval "${RANDOM_INIT[@]}" --subset 10 --protocol linear-fast,linear --out eval-fmnist/random_mnv2_10pct
    "$LGD" eval "${STUDENT[@]}" --subset 10 --protocol linear-fast,linear --out eval-fmnist/lgd_mnv2_10pct ;;
  full)
    "$LGD" eval "${STUDENT[@]}" --protocol linear --out eval-fmnist/lgd_mnv2_full ;;
  *) echo "usage: $0 [quick|subset|full]" >&2; exit 2 ;;
esac
