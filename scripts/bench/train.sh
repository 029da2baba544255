#!/usr/bin/env bash
# One LGD training step, lgd against PyTorch, same teacher bundle, student, batch and threads.
#   scripts/bench/train.sh [THREADS]      (default 2)
# Prints one line per run, "NAME {json}":
#   lgd                  as it runs by default
#   lgd-malloc-system    LGD_MALLOC=system: glibc's malloc defaults
#   lgd-teacher-frozen   teacher.freeze=true
#   pytorch-vsb-loop, pytorch-vsb-vectorised   scripts/bench/reference_step.py
#   pytorch-vsb-loop-malloc   the same with lgd's malloc settings, through glibc's variables
# Env: LGD (default build/src/cli/lgd), BENCH_TEACHER (bundle, made when absent; default
# /tmp/lgd-bench-teacher), STEPS (timed steps, default 8), BATCH (default 16).
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
# lgd NAME [VAR=value ...] [--set key=value ...]: the environment first, then overrides.
lgd() {
  local name=$1; shift
  local vars=()
  while [ $# -gt 0 ] && [ "$1" != --set ]; do vars+=("$1"); shift; done
  echo "$name $(env "${vars[@]}" "$LGD" --log-level warn bench train --config configs/bench/train_cpu.yaml \
      --set teacher.bundle="$TEACHER" --set run.threads="$THREADS" --set data.batch_size="$BATCH" \
      "$@" --steps "$STEPS" --warmup 2 --json)"
}
# reference NAME loop|vectorised [VAR=value ...]
reference() {
  local name=$1 vsb=$2; shift 2
  echo "$name $(env "$@" "$PY" scripts/bench/reference_step.py --teacher "$TEACHER" --arch resnet18 \
      --batch "$BATCH" --classes 10 --threads "$THREADS" --steps "$STEPS" --warmup 2 --vsb "$vsb")"
}
lgd lgd
lgd lgd-malloc-system LGD_MALLOC=system
lgd lgd-teacher-frozen --set teacher.freeze=true
reference pytorch-vsb-loop loop
reference pytorch-vsb-vectorised vectorised
reference pytorch-vsb-loop-malloc loop MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647
