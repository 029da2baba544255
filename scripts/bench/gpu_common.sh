# Shared by scripts/bench/gpu_step.sh and gpu_e2e.sh (sourced): the lgd binary, the Python,
# the 1,000-class name file and the benchmark teachers.
LGD=${LGD:-$( [ -x build-offline/src/cli/lgd ] && echo build-offline/src/cli/lgd || echo build/src/cli/lgd )}
PY=${PYTHON:-python3}
[ -x "$LGD" ] || { echo "$(basename "$0"): $LGD not found (scripts/build.sh or scripts/build_offline.sh first)" >&2; exit 1; }
classes=/tmp/lgd-bench-classes-1000.txt
[ -f "$classes" ] || for i in $(seq 0 999); do echo "class $i"; done > "$classes"

# bench_teacher NAME: prints the bundle folder of teacher rn50 (CLIP RN50-sized: ResNet-50
# trunk -> 1024) or vitb32 (ViT-B/32 trunk -> 512), random weights; made when absent.
bench_teacher() {
  local bundle=/tmp/lgd-bench-teacher-$1 args
  case "$1" in
    rn50) args=(--trunk resnet50 --embed-dim 1024) ;;
    vitb32) args=(--trunk vit_b_32 --embed-dim 512) ;;
    *) echo "$(basename "$0"): unknown teacher $1 (rn50 or vitb32)" >&2; return 1 ;;
  esac
  [ -f "$bundle/lgd_teacher.yaml" ] || "$PY" scripts/bench/make_teacher.py "$bundle" "${args[@]}" --image-size 224 >/dev/null
  echo "$bundle"
}

# bench_cache NAME BUNDLE: prints the folder of a teacher cache (lgd reinforce, 1 view) of
# BUNDLE over 256 ImageNet-like 224 px images; made when absent. lgd bench train --set
# teacher.cache=... reads its rows in place of the teacher's forward.
bench_cache() {
  local dir=/tmp/lgd-bench-cache-$1 images=/tmp/lgd-bench-images-256
  [ -d "$images" ] || "$PY" scripts/bench/make_image_folder.py "$images" --classes 4 --per-class 64 >/dev/null
  [ -f "$dir/manifest.json" ] || "$LGD" --log-level warn reinforce --config configs/bench/train_gpu.yaml \
    --set teacher.bundle="$2" --set data.root="$images" --views 1 --out "$dir" >&2
  echo "$dir"
}
