# Shared by scripts/demo.sh and scripts/compare.sh (sourced, not run): timed progress lines,
# the set-up and build of lgd when $LGD is not given, and the demo teacher.
t0=$SECONDS
# The Python with torch, torchvision and sentencepiece, and the Fashion-MNIST IDX folder.
PYTHON=${LGD_PYTHON:-/usr/bin/python3}
FMNIST=${LGD_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}

# step MESSAGE: "== [M:SS] MESSAGE", the time since the script started.
step() { printf '\n== [%d:%02d] %s\n' $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60)) "$*"; }

# ensure_lgd: sets $LGD. Given $LGD, uses it as is; otherwise installs what is missing and
# builds lgd (into $LGD_BUILD_DIR, default build/).
ensure_lgd() {
  if [ -z "${LGD:-}" ]; then
    step "installing what is missing (scripts/setup.sh)"
    scripts/setup.sh
    step "building lgd (scripts/build.sh --target lgd)"
    scripts/build.sh --target lgd
    LGD=${LGD_BUILD_DIR:-build}/src/cli/lgd
  fi
}

# demo_teacher DIR MESSAGE [make_demo_teacher.py arguments...]: makes the demo teacher in DIR,
# or reuses the one there.
demo_teacher() {
  local dir=$1 message=$2
  shift 2
  step "$message"
  "$PYTHON" scripts/make_demo_teacher.py -o "$dir" --data "$FMNIST" --threads "$(nproc)" "$@"
}
