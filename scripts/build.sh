#!/usr/bin/env bash
# Configures and builds lgd in ./build (or $LGD_BUILD_DIR). Extra arguments go to
# `cmake --build`, e.g. `scripts/build.sh --target lgd`.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${LGD_BUILD_DIR:-build}
jobs=${LGD_JOBS:-$(nproc)}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DLGD_BUILD_TESTS=ON >/dev/null
cmake --build "$build_dir" -j "$jobs" "$@"
