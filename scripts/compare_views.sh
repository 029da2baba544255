#!/usr/bin/env bash
# How far a teacher cache of K < epochs views moves LGD (each view seen epochs / K times, as in
# FKD and MobileCLIP's dataset reinforcement): MobileNetV2 distilled from the demo teacher on
# the first 12,000 Fashion-MNIST training images for 4 epochs, without a cache and with the
# first K = 1, 2 and 4 views (teacher.cache_views) of one float16 cache per seed, 3 seeds; each student scored as scripts/compare.sh scores it
# (linear-fast and kNN on 10% of the 60,000 training labels, zero-shot; the 10,000 test images).
# Seed 0 also runs with a float32 cache of 4 views, whose student must equal the run without
# a cache bit for bit. The table goes into docs/RESULTS.md (between its "teacher cache"
# markers; scripts/compare.sh keeps that section).
#   scripts/compare_views.sh
# Env: LGD (default: set up and build), LGD_VIEWS_OUT (default runs/views), LGD_VIEWS_SEEDS
# ("0 1 2"), LGD_VIEWS_K ("1 2 4"), LGD_VIEWS_EPOCHS (4), LGD_VIEWS_LIMIT (12000 images).
# Finished steps are reused: run it again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${LGD_VIEWS_OUT:-runs/views}
seeds=${LGD_VIEWS_SEEDS:-0 1 2}
views=${LGD_VIEWS_K:-1 2 4}
epochs=${LGD_VIEWS_EPOCHS:-4}
limit=${LGD_VIEWS_LIMIT:-12000}
source scripts/lib/demo_common.sh
ensure_lgd
threads=$(nproc)
teacher=teachers/demo_fmnist
mkdir -p "$out"
demo_teacher "$teacher" "the demo teacher (reused when it exists)" --epochs 2

data=$out/fashion_mnist_$limit
if [ ! -f "$data/train-labels-idx1-ubyte" ]; then
  step "the first $limit Fashion-MNIST training images: $data"
  "$PYTHON" - "$FMNIST" "$data" "$limit" <<'EOF'
import gzip, struct, sys
from pathlib import Path
src, dst, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
dst.mkdir(parents=True, exist_ok=True)
images = gzip.open(src / "train-images-idx3-ubyte.gz").read()
labels = gzip.open(src / "train-labels-idx1-ubyte.gz").read()
_, _, rows, cols = struct.unpack(">IIII", images[:16])
(dst / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, rows, cols) + images[16:16 + n * rows * cols])
(dst / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels[8:8 + n])
EOF
fi

config=(--config configs/demo/fashion_mnist_lgd.yaml --set run.output_dir="$out" --set run.threads="$threads"
        --set teacher.bundle="$teacher" --set data.root="$data" --set optim.epochs="$epochs"
        --set train.val_every=0 --set train.log_every=50)
# train NAME SEED [--set ...]: trains unless finished, then scores the student.
train() {
  local name=$1 seed=$2
  shift 2
  if [ ! -f "$out/$name/student.pth" ]; then
    step "$name: lgd train $*"
    "$LGD" train "${config[@]}" --set run.name="$name" --set run.seed="$seed" "$@"
  fi
  if [ ! -f "$out/eval_$name/results.json" ]; then
    step "$name: lgd eval (linear-fast, kNN, zero-shot)"
    "$LGD" eval --checkpoint "$out/$name/checkpoints/last.ckpt" --protocol linear-fast,knn,zero-shot \
      --data "$FMNIST" --format idx --subset 10 --seed "$seed" --threads "$threads" --out "$out/eval_$name"
  fi
}
# cache SEED DTYPE: one cache of $epochs views per seed (teacher.cache_views takes the first K).
cache() {
  if [ ! -f "$out/cache_s$1_$2/manifest.json" ]; then
    step "lgd reinforce: seed $1, $epochs views, $2"
    "$LGD" reinforce "${config[@]}" --set run.seed="$1" --views "$epochs" --dtype "$2" --out "$out/cache_s$1_$2"
  fi
}

for s in $seeds; do
  train "none_s$s" "$s"
  cache "$s" float16
  for k in $views; do
    train "k${k}_s$s" "$s" --set teacher.cache="$out/cache_s${s}_float16" --set teacher.cache_views="$k"
  done
done
first=${seeds%% *}
cache "$first" float32
train "k${epochs}f32_s$first" "$first" --set teacher.cache="$out/cache_s${first}_float32"

step "report: docs/RESULTS.md"
"$PYTHON" scripts/views_report.py --runs "$out" --docs docs --seeds $seeds --view-counts $views \
  --epochs "$epochs" --limit "$limit"
printf '\nDone in %d:%02d.\n' $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60))
