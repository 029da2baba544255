#!/usr/bin/env bash
# Resident memory of a long `lgd train` on a CPU, with lgd's malloc settings and with glibc's
# defaults (LGD_MALLOC=system): configs/bench/train_long_cpu.yaml, VmRSS sampled every 5 s.
#   scripts/bench/memory.sh [OUT_DIR]        (default runs/bench/memory: NAME.tsv, NAME.log)
# Prints, per setting: wall time, peak resident set, and the mean and largest resident set in
# each fifth of the run; then whether the two runs' student weights are identical.
# Env: LGD (default build/src/cli/lgd), SETTINGS (default "lgd system").
set -euo pipefail
cd "$(dirname "$0")/../.."
LGD=${LGD:-build/src/cli/lgd}
PY=${PYTHON:-/usr/bin/python3}
OUT=${1:-runs/bench/memory}
read -r -a settings <<<"${SETTINGS:-lgd system}"
[ -x "$LGD" ] || { echo "memory.sh: $LGD not found; run scripts/build.sh first" >&2; exit 1; }
[ -f /tmp/lgd-bench-teacher/lgd_teacher.yaml ] ||
  "$PY" scripts/bench/make_teacher.py /tmp/lgd-bench-teacher --trunk resnet50 --embed-dim 1024 --image-size 224
"$PY" scripts/bench/make_image_folder.py /tmp/lgd-bench-images --classes 10 --per-class 250
# The validation folder: the first 10 images of each class, linked.
for c in /tmp/lgd-bench-images/*/; do
  mkdir -p "/tmp/lgd-bench-val/$(basename "$c")"
  find "$c" -maxdepth 1 -type f | sort | head -10 | while read -r f; do
    ln -sf "$f" "/tmp/lgd-bench-val/$(basename "$c")/"
  done
done
mkdir -p "$OUT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for s in "${settings[@]}"; do
  malloc=""; [ "$s" = system ] && malloc=system
  rm -rf "/tmp/lgd-bench-runs/memory_$s" "$OUT/$s.tsv"
  start=$(date +%s)
  LGD_MALLOC=$malloc "$LGD" train --config configs/bench/train_long_cpu.yaml --set run.name="memory_$s" \
    >"$OUT/$s.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    kb=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$kb" ] && echo "$(($(date +%s) - start)) $kb" >>"$OUT/$s.tsv"
    sleep 5
  done
  wait "$pid" || { echo "memory.sh: lgd train failed ($OUT/$s.log)" >&2; exit 1; }
  "$PY" - "$s" "$(($(date +%s) - start))" "$OUT/$s.tsv" <<'PY'
import sys
name, wall, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [tuple(map(int, l.split())) for l in open(path) if l.strip()]
t_end = rows[-1][0]
parts = []
for i in range(5):
    sel = [kb for t, kb in rows if i * t_end / 5 <= t <= (i + 1) * t_end / 5]
    parts.append(f"{sum(sel) / len(sel) / 1e6:.3f}/{max(sel) / 1e6:.3f}")
print(f"{name}: {wall // 60}:{wall % 60:02d} wall, peak {max(kb for _, kb in rows) / 1e6:.3f} GB; "
      f"mean/largest GB per fifth: {' '.join(parts)}")
PY
done
if [ ${#settings[@]} -eq 2 ]; then
  cmp -s "/tmp/lgd-bench-runs/memory_${settings[0]}/student.pth" "/tmp/lgd-bench-runs/memory_${settings[1]}/student.pth" &&
    echo "student weights: identical" || echo "student weights: differ"
fi
