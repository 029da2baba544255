#!/usr/bin/env bash
# Installs the Debian packages lgd needs to build and test. Idempotent and quiet when
# everything is present; needs root (or password-less sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
  cmake make g++ ccache
  libtorch-dev libgloo-dev           # LibTorch 1.13 (CPU) and the headers its distributed API needs
  libopenblas0-openmp                # optimised BLAS behind libblas.so.3 (the reference BLAS is ~14x slower on a 1024^3 matmul)
  libturbojpeg0-dev libpng-dev       # JPEG decoding with DCT-domain down-scaling; PNG decoding
  libopencv-dev                      # optional: BMP, WebP, TIFF, ... (-DLGD_WITH_OPENCV)
  libyaml-cpp-dev libspdlog-dev libcli11-dev libsentencepiece-dev zlib1g-dev
  libpcre2-dev                       # Unicode classes of CLIP's pre-tokenisation pattern
  libgtest-dev
  dataset-fashion-mnist              # a real IDX dataset for tests and the demo
  python3 python3-numpy python3-torch python3-torchvision python3-sentencepiece  # test references
  python3-matplotlib                 # the plot of scripts/compare.sh
)

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
[ ${#missing[@]} -eq 0 ] && exit 0

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
echo "setup.sh: done"
