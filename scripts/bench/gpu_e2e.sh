#!/usr/bin/env bash
# End-to-end training from JPEG files against the synthetic-data step, on one GPU: the same
# config (configs/bench/train_gpu.yaml: batch 256 at 224 px, fp16, colour work on the device,
# the 1,000-class bank) for `lgd train` over an ImageNet-like folder of JPEGs
# (scripts/bench/make_image_folder.py: 500x375-ish, quality 90) and for `lgd bench train` on
# synthetic images already in memory. lgd train's images/s are those of its log lines after
# the first LOG steps (decode, crop, flip on WORKERS loader threads, overlapped with the
# step). Prints one JSON object per run and appends them to OUT.
#   scripts/bench/gpu_e2e.sh [OUT.jsonl]       (default runs/bench/gpu_e2e.jsonl)
# Env: LGD, PYTHON (as gpu_step.sh), IMAGES (folder, made when absent: 16 classes x 250, in
# parallel; default /tmp/lgd-bench-jpeg), TEACHER (rn50), ARCHS ("resnet18 mobilenet_v2"),
# STEPS (train steps, default 80), LOG (log interval, 20), WORKERS (default: nproc), SETS
# (more KEY=VALUE overrides for both runs, e.g. "run.device=cpu data.batch_size=16").
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGES=${IMAGES:-/tmp/lgd-bench-jpeg}
TEACHER=${TEACHER:-rn50}
read -r -a archs <<<"${ARCHS:-resnet18 mobilenet_v2}"
STEPS=${STEPS:-80}
LOG=${LOG:-20}
WORKERS=${WORKERS:-$(nproc)}
out=${1:-runs/bench/gpu_e2e.jsonl}
source scripts/bench/gpu_common.sh
mkdir -p "$(dirname "$out")"
bundle=$(bench_teacher "$TEACHER")
if [ ! -d "$IMAGES/class_015" ]; then
  parts=$(mktemp -d)
  for c in $(seq 0 15); do "$PY" scripts/bench/make_image_folder.py "$parts/$c" --classes 1 --per-class 250 --seed "$c" >/dev/null & done
  wait
  mkdir -p "$IMAGES"
  for c in $(seq 0 15); do mv "$parts/$c/class_000" "$IMAGES/$(printf 'class_%03d' "$c")"; done
  rm -rf "$parts"
fi
echo "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo unknown); $(nproc) CPU cores;" \
     "$(find "$IMAGES" -name '*.jpg' | wc -l) JPEGs, $(du -sm "$IMAGES" | cut -f1) MB in $IMAGES"
common=(--config configs/bench/train_gpu.yaml --set teacher.bundle="$bundle" --set bank.classnames="$classes")
read -r -a extra <<<"${SETS:-}"
for kv in "${extra[@]}"; do common+=(--set "$kv"); done
for arch in "${archs[@]}"; do
  "$LGD" --log-level warn bench train "${common[@]}" --set student.arch="$arch" --steps 30 --warmup 10 --json |
    tee -a "$out"
  run=$(mktemp -d)
  "$LGD" train "${common[@]}" --set student.arch="$arch" --set data.dataset=image_folder \
    --set data.root="$IMAGES" --set data.workers="$WORKERS" --set train.max_steps="$STEPS" \
    --set train.log_every="$LOG" --set train.val_every=0 --set train.checkpoint_every=100000 \
    --set run.output_dir="$run" --set run.name=e2e >"$run/stdout.log" 2>&1 ||
    { tail -5 "$run/stdout.log" >&2; exit 1; }
  # The log lines' img/s after the first interval (cuDNN autotuning, the loader filling up).
  grep -o 'step [0-9]*/[0-9]* .* img/s data [0-9]*%' "$run/stdout.log" | tail -n +2 |
    "$PY" -c '
import json, re, sys
rows = [re.search(r"step (\d+)/\d+ .* ([\d.]+) img/s data (\d+)%", l).groups() for l in sys.stdin]
ips = [float(r[1]) for r in rows]
print(json.dumps({"impl": "lgd train (JPEG files)", "arch": sys.argv[1], "workers": int(sys.argv[2]),
                  "steps": [int(r[0]) for r in rows], "images_per_s": round(sum(ips) / len(ips), 1),
                  "data_wait_percent": [int(r[2]) for r in rows]}))' "$arch" "$WORKERS" | tee -a "$out"
  rm -rf "$run"
done
