#!/usr/bin/env bash
# Installs what is missing, builds lgd and its tests, and runs ctest.
# Extra arguments go to ctest, e.g. `scripts/test.sh -R torchvision`.
#   scripts/test.sh                  the Debian leg (LibTorch 1.13, CPU)
#   LGD_TORCH=pip scripts/test.sh    the pip leg (PyTorch 2.11 from PyPI, CUDA build, run on the CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/leg.sh
scripts/setup.sh
scripts/build.sh
ctest --test-dir "$LGD_BUILD_DIR" --output-on-failure -j "${LGD_JOBS:-$(nproc)}" "$@"
