#!/usr/bin/env bash
# Installs what lgd needs to build and test. Idempotent and quiet when everything is present;
# needs root (or password-less sudo) only when a Debian package is missing.
#   scripts/setup.sh                 Debian's packages, LibTorch 1.13 (CPU) among them
#   LGD_TORCH=pip scripts/setup.sh   Debian's packages but LibTorch, and PyTorch from PyPI
#                                    (scripts/requirements-pip.txt) in .venv ($LGD_VENV)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/leg.sh

PACKAGES=(
  cmake make g++ ccache
  libopenblas0-openmp                # optimised BLAS behind libblas.so.3 (the reference BLAS is ~14x slower on a 1024^3 matmul)
  libturbojpeg0-dev libpng-dev       # JPEG decoding with DCT-domain down-scaling; PNG decoding
  libopencv-dev                      # optional: BMP, WebP, TIFF, ... (-DLGD_WITH_OPENCV)
  libyaml-cpp-dev libspdlog-dev libcli11-dev libsentencepiece-dev zlib1g-dev
  libpcre2-dev                       # Unicode classes of CLIP's pre-tokenisation pattern
  nlohmann-json3-dev                 # JSON files lgd writes (the metadata beside an exported .pth)
  libgtest-dev
  libgloo-dev                        # the headers of c10d's Gloo process group (CPU multi-process)
  dataset-fashion-mnist              # a real IDX dataset for tests and the demo
  clang libclang-rt-dev              # libFuzzer and AddressSanitizer for the fuzz targets (scripts/fuzz.sh)
)
if [ "$LGD_TORCH" = debian ]; then
  PACKAGES+=(
    libtorch-dev                     # LibTorch 1.13 (CPU)
    python3 python3-numpy python3-torch python3-torchvision python3-sentencepiece  # test references
    python3-matplotlib               # the plot of scripts/compare.sh
  )
else
  PACKAGES+=(python3 python3-venv)   # the virtual environment of the PyPI packages
fi

# sentencepiece >= 0.2.1 declares its API with Abseil types (0.2.0, Debian 13's, still has
# its own stand-ins), and Debian's libsentencepiece-dev does not depend on libabsl-dev.
if command -v apt-cache >/dev/null 2>&1; then
  sp_version=$(apt-cache policy libsentencepiece-dev 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -n "$sp_version" ] && [ "$sp_version" != "(none)" ] &&
     dpkg --compare-versions "$sp_version" ge 0.2.1; then
    PACKAGES+=(libabsl-dev)
  fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: this script installs Debian/Ubuntu packages; install these by hand: ${missing[*]}" >&2
    exit 1
  fi
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      SUDO=(sudo)
    else
      echo "setup.sh: missing packages: ${missing[*]}" >&2
      echo "setup.sh: run as root (or with sudo) to install them: sudo $0" >&2
      exit 1
    fi
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup.sh: Debian packages done"
fi

[ "$LGD_TORCH" = pip ] || exit 0
# The pip leg: a virtual environment of Debian's Python 3 with the pinned PyPI packages.
# The wheels are kept in $LGD_WHEEL_CACHE (default ~/.cache/lgd/wheels): a second set-up on
# the same machine (a clean clone, a new venv) installs from there without the network.
# (pip's own HTTP cache is not enough: an index that answers "no-store" leaves it empty.)
requirements=scripts/requirements-pip.txt
# Installed without their declared dependencies (the file says why): its own list is complete.
no_deps=scripts/requirements-openmmlab.txt
wheels=${LGD_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lgd/wheels}
stamp=$LGD_VENV/.lgd-requirements
if [ -x "$LGD_VENV_PYTHON" ] && cat "$requirements" "$no_deps" | cmp -s - "$stamp"; then
  exit 0
fi
if [ ! -x "$LGD_VENV_PYTHON" ]; then
  echo "setup.sh: creating the virtual environment $LGD_VENV"
  /usr/bin/python3 -m venv "$LGD_VENV"
fi
mkdir -p "$wheels"
pip=("$LGD_VENV_PYTHON" -m pip --disable-pip-version-check -q)
if "${pip[@]}" install --no-index --find-links "$wheels" -r "$requirements" 2>/dev/null; then
  echo "setup.sh: installed $requirements into $LGD_VENV from $wheels"
else
  echo "setup.sh: downloading $requirements into $wheels (PyTorch's CUDA build: about 5 GB)"
  "${pip[@]}" download -d "$wheels" -r "$requirements"
  echo "setup.sh: installing them into $LGD_VENV"
  "${pip[@]}" install --no-index --find-links "$wheels" -r "$requirements"
fi
if ! "${pip[@]}" install --no-deps --no-index --find-links "$wheels" -r "$no_deps" 2>/dev/null; then
  echo "setup.sh: downloading $no_deps into $wheels"
  "${pip[@]}" download --no-deps -d "$wheels" -r "$no_deps"
  "${pip[@]}" install --no-deps --no-index --find-links "$wheels" -r "$no_deps"
fi
cat "$requirements" "$no_deps" > "$stamp"
"$LGD_VENV_PYTHON" -c 'import torch; print(f"setup.sh: PyTorch {torch.__version__} (CUDA {torch.version.cuda}) in '"$LGD_VENV"'")'
