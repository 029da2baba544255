#!/usr/bin/env bash
# Configures and builds lgd with its tests. Extra arguments go to `cmake --build`, e.g.
# `scripts/build.sh --target lgd`.
#   scripts/build.sh                 against Debian's LibTorch 1.13, into ./build
#   LGD_TORCH=pip scripts/build.sh   against the LibTorch of .venv's PyTorch (scripts/setup.sh
#                                    installs it) with CUDA, into ./build-pip
# $LGD_BUILD_DIR names another build folder, $LGD_JOBS the parallel jobs (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/leg.sh
jobs=${LGD_JOBS:-$(nproc)}
args=(-DCMAKE_BUILD_TYPE=Release -DLGD_BUILD_TESTS=ON)
if [ "$LGD_TORCH" = pip ]; then
  [ -x "$LGD_VENV_PYTHON" ] ||
    { echo "build.sh: $LGD_VENV_PYTHON not found; run LGD_TORCH=pip scripts/setup.sh first" >&2; exit 1; }
  torch_prefix=$("$LGD_VENV_PYTHON" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
  args+=(-DCMAKE_PREFIX_PATH="$torch_prefix" -DLGD_PYTHON="$LGD_VENV_PYTHON" -DLGD_REQUIRE_PYTHON_REFERENCES=ON)
  # The CUDA toolkit that LibTorch's CMake files look for (nvcc, the CUDA runtime's headers).
  cuda_root=${CUDA_HOME:-/usr/local/cuda}
  if [ -x "$cuda_root/bin/nvcc" ]; then
    args+=(-DCUDAToolkit_ROOT="$cuda_root" -DCMAKE_CUDA_COMPILER="$cuda_root/bin/nvcc")
  fi
fi
cmake -S . -B "$LGD_BUILD_DIR" "${args[@]}" >/dev/null
cmake --build "$LGD_BUILD_DIR" -j "$jobs" "$@"
