#!/usr/bin/env bash
# One LGD training step, lgd against PyTorch, same teacher bundle, student, batch and threads.
#   scripts/bench/train.sh [THREADS]      (default 2)
# Env: LGD (default build/src/cli/lgd), BENCH_TEACHER (bundle, made when absent; default
# /tmp/lgd-bench-teacher), STEPS (timed steps, default 5), BATCH (default 16).
set -euo pipefail
cd "$(dirname "$0")/../.."
LGD=${LGD:-build/src/cli/lgd}
PY=${PYTHON:-/usr/bin/python3}
TEACHER=${BENCH_TEACHER:-/tmp/lgd-bench-teacher}
THREADS=${1:-2}
STEPS=${STEPS:-8}
BATCH=${BATCH:-16}
[ -x "$LGD" ] || { echo "train.sh: $LGD not found; run scripts/build.sh first" >&2; exit 1; }
[ -f "$TEACHER/lgd_teacher.yaml" ] || "$PY" scripts/bench/make_teacher.py "$TEACHER" --trunk resnet50 --embed-dim 1024 --image-size 224
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
"$LGD" --log-level warn bench train --config configs/bench/train_cpu.yaml --set teacher.bundle="$TEACHER" \
    --set run.threads="$THREADS" --set data.batch_size="$BATCH" --steps "$STEPS" --warmup 2 --json
for vsb in loop vectorised; do
  "$PY" scripts/bench/reference_step.py --teacher "$TEACHER" --arch resnet18 --batch "$BATCH" --classes 10 \
      --threads "$THREADS" --steps "$STEPS" --warmup 2 --vsb "$vsb"
done
