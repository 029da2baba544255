#!/usr/bin/env bash
# lgd's data pipeline against torchvision's, side by side, on the same generated folder:
# MoCo v2 views at 224 px, batches of 256, for each worker count given (default: 1 2).
#   scripts/bench/data.sh [WORKERS...]
# Env: LGD (the lgd binary, default build/src/cli/lgd), BENCH_IMAGES (folder, generated when
# absent; default /tmp/lgd-bench-images), BATCHES (timed batches, default 8).
set -euo pipefail
cd "$(dirname "$0")/../.."
LGD=${LGD:-build/src/cli/lgd}
PY=${PYTHON:-/usr/bin/python3}
IMAGES=${BENCH_IMAGES:-/tmp/lgd-bench-images}
BATCHES=${BATCHES:-8}
WORKERS=("$@")
[ ${#WORKERS[@]} -eq 0 ] && WORKERS=(1 2)
[ -x "$LGD" ] || { echo "data.sh: $LGD not found; run scripts/build.sh first" >&2; exit 1; }

"$PY" scripts/bench/make_image_folder.py "$IMAGES" --classes 10 --per-class 250
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for w in "${WORKERS[@]}"; do
  "$LGD" --log-level warn bench data --config configs/bench/data.yaml --set data.root="$IMAGES" \
      --workers "$w" --batches "$BATCHES" --warmup 1 --json
  "$PY" scripts/bench/torchvision_data.py "$IMAGES" --workers "$w" --batches "$BATCHES" --warmup 1
done
