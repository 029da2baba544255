#!/usr/bin/env bash
# lgd eval on Fashion-MNIST (Debian's dataset-fashion-mnist) for a random-init MobileNetV2
# and a MobileNetV2 distilled for 2 epochs with lgd train from the demo teacher trained for
# 3 epochs (configs/demo/fashion_mnist_lgd.yaml; teacher made by scripts/make_demo_teacher.py).
# Results land in eval-fmnist/<name>/results.json; docs/PERFORMANCE.md quotes them.
#   scripts/bench/eval_fashion_mnist.sh [quick|subset|full]
#     quick   linear-fast, knn (and zero-shot for the student) on all 60,000 labels
#     subset  linear (MoCo, 100 epochs) and linear-fast on 10% of the labels per class
#     full    linear (MoCo, 100 epochs) on all labels, the trained student only (~1 h on 2 cores)
# Each mode writes fresh folders (delete eval-fmnist/ to time feature extraction again).
set -euo pipefail
cd "$(dirname "$0")/../.."
LGD=build/src/cli/lgd
DATA=(--format idx --data /usr/share/datasets/fashion-mnist --image-size 32 --threads 2)
CKPT=runs/demo_lgd/checkpoints/last.ckpt
if [ ! -f runs/demo_lgd/student.pth ]; then
  /usr/bin/python3 scripts/make_demo_teacher.py -o teachers/demo_fmnist_e3 --epochs 3 --threads 2
  "$LGD" train --config configs/demo/fashion_mnist_lgd.yaml --set run.threads=2 --set optim.epochs=2 \
    --set teacher.bundle=teachers/demo_fmnist_e3
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
