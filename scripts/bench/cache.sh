#!/usr/bin/env bash
# The teacher-embedding cache on a CPU, where the teacher dominates a step: a CLIP
# RN50-sized teacher (ResNet-50 trunk -> 1024, random weights) at 64 px, lightweight students,
# Fashion-MNIST's 10,000 test images (Debian's dataset-fashion-mnist) as the training set.
#   scripts/bench/cache.sh [THREADS]     (default 2)
# Prints one line per measurement, "NAME {json}":
#   reinforce            lgd reinforce --views 1 over the 10,000 images: images/s, and the
#                        teacher's forward alone from the same config (lgd bench train's
#                        synchronised teacher phase, no loader)
#   train-<arch>-teacher / train-<arch>-cache
#                        lgd train, STEPS steps of 64 images, without and with the cache, side
#                        by side: images/s of the log intervals after the first (metrics.jsonl)
#   bench-<arch>-teacher / bench-<arch>-cache    lgd bench train, the same two steps
# Env: LGD (default build/src/cli/lgd), ARCHS (default "mobilenet_v3_small mobilenet_v2"),
# STEPS (default 40), OUT (work folder, default /tmp/lgd-bench-cache).
# One loader thread (data.workers=1): it makes 8,600 of these views a second, far more than
# either step takes, and a second one beside THREADS compute threads on 2 cores slows the
# forward by about a tenth (lgd reinforce ran at 0.87 of the forward alone with 2, 1.01 with 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
LGD=${LGD:-build/src/cli/lgd}
PY=${PYTHON:-/usr/bin/python3}
THREADS=${1:-2}
STEPS=${STEPS:-40}
OUT=${OUT:-/tmp/lgd-bench-cache}
read -r -a archs <<<"${ARCHS:-mobilenet_v3_small mobilenet_v2}"
FMNIST=${LGD_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
[ -x "$LGD" ] || { echo "cache.sh: $LGD not found; run scripts/build.sh first" >&2; exit 1; }
[ -d "$FMNIST" ] || { echo "cache.sh: $FMNIST not found (Debian's dataset-fashion-mnist)" >&2; exit 1; }
teacher=/tmp/lgd-bench-teacher-rn50-64
[ -f "$teacher/lgd_teacher.yaml" ] || "$PY" scripts/bench/make_teacher.py "$teacher" --trunk resnet50 \
  --embed-dim 1024 --image-size 64 --classnames configs/classnames/fashion_mnist.txt >/dev/null
mkdir -p "$OUT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
common=(--config configs/examples/fashion_mnist_cpu.yaml --set teacher.bundle="$teacher" --set data.root="$FMNIST"
        --set data.split=test --set data.image_size=64 --set data.batch_size=64 --set run.threads="$THREADS"
        --set data.workers=1 --set run.device=cpu)
cache=$OUT/cache
rm -rf "$cache"
start=$(date +%s.%N)
"$LGD" reinforce "${common[@]}" --views 1 --out "$cache" 2>"$OUT/reinforce.log"
seconds=$(echo "$(date +%s.%N) - $start" | bc)
forward=$("$LGD" --log-level warn bench train "${common[@]}" --steps 5 --warmup 1 --json)
"$PY" - "$seconds" "$forward" "$OUT/reinforce.log" <<'EOF'
import json, re, sys
seconds, forward = float(sys.argv[1]), json.loads(sys.argv[2])
log = open(sys.argv[3]).read()
inner = re.search(r"\(([\d.]+) img/s; the teacher's forward alone ([\d.]+) img/s\)", log)
alone = forward["batch"] * 1000 / forward["teacher_ms"]
print("reinforce " + json.dumps({"images": 10000, "seconds_with_startup": round(seconds, 1),
      "images_per_s": float(inner.group(1)), "forward_in_run_images_per_s": float(inner.group(2)),
      "teacher_forward_alone_images_per_s": round(alone, 1),
      "ratio_to_forward_alone": round(float(inner.group(1)) / alone, 3)}))
EOF
for arch in "${archs[@]}"; do
  for keys in teacher cache; do
    sets=(--set student.arch="$arch" --set run.output_dir="$OUT/runs" --set run.name="$arch-$keys"
          --set train.max_steps="$STEPS" --set train.log_every=10 --set train.val_every=0
          --set train.checkpoint_every=0)
    [ "$keys" = cache ] && sets+=(--set teacher.cache="$cache")
    rm -rf "$OUT/runs/$arch-$keys"
    "$LGD" --log-level warn train "${common[@]}" "${sets[@]}"
    "$PY" - "$OUT/runs/$arch-$keys/metrics.jsonl" "train-$arch-$keys" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"train"' in l]
later = [r["images_per_s"] for r in recs[1:]]
print(sys.argv[2] + " " + json.dumps({"steps": recs[-1]["step"], "images_per_s": round(sum(later) / len(later), 1),
                                      "intervals": [round(x, 1) for x in later]}))
EOF
  done
  for keys in teacher cache; do
    sets=(--set student.arch="$arch")
    [ "$keys" = cache ] && sets+=(--set teacher.cache="$cache")
    echo "bench-$arch-$keys $("$LGD" --log-level warn bench train "${common[@]}" "${sets[@]}" --steps 8 --warmup 2 --json)"
  done
done
