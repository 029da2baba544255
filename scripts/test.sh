#!/usr/bin/env bash
# Installs what is missing, builds lgd and its tests, and runs ctest.
# Extra arguments go to ctest, e.g. `scripts/test.sh -R torchvision`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
build_dir=${LGD_BUILD_DIR:-build}
ctest --test-dir "$build_dir" --output-on-failure -j "${LGD_JOBS:-$(nproc)}" "$@"
