#!/usr/bin/env bash
# Builds lgd on a machine that cannot reach a package registry (an air-gapped GPU cluster),
# against the LibTorch inside its PyTorch install and the Debian packages that
# scripts/bundle_deps.sh collected elsewhere. Nothing is installed system-wide: the .deb
# files are unpacked (dpkg -x, or ar + tar where dpkg is absent) into a private prefix and
# the binaries find their libraries there through their RPATH.
#
#   scripts/build_offline.sh [options] [-- cmake --build arguments, e.g. --target lgd]
#     --deps DIR       the folder of scripts/bundle_deps.sh (default deps)
#     --prefix DIR     where the packages are unpacked (default DEPS/prefix)
#     --build-dir DIR  the build folder (default build-offline)
#     --python PY      the Python whose torch to build against and to run the tests with
#                      (default python3)
#     --torch DIR      LibTorch's CMake prefix instead (default: PY's torch.utils.cmake_prefix_path,
#                      else the system's LibTorch)
#     --jobs N         parallel compile jobs (default: all cores)
#     --cmake ARG      one more argument for CMake's configure step (repeatable), e.g.
#                      --cmake -DLGD_WITH_OPENCV=OFF
# then: ctest --test-dir build-offline            (every test; the gpu-labelled ones need CUDA)
#       ctest --test-dir build-offline -L gpu     (the GPU tests alone)
set -euo pipefail
cd "$(dirname "$0")/.."
deps=deps prefix= build_dir=build-offline python=python3 torch_dir= jobs=$(nproc)
build_args=() cmake_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --deps) deps=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --torch) torch_dir=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --cmake) cmake_args+=("$2"); shift 2 ;;
    --) shift; build_args=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_offline.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "build_offline.sh: $*" >&2; exit 1; }

[ -f "$deps/MANIFEST" ] || die "$deps/MANIFEST: not found (expected the folder of scripts/bundle_deps.sh; --deps DIR)"
prefix=$(realpath -m "${prefix:-$deps/prefix}")

# 1. Check and unpack the packages (again only when the bundle changed).
(cd "$deps" && grep -v '^#' MANIFEST | sha256sum --quiet -c -) ||
  die "$deps: a .deb does not match its MANIFEST checksum (copy the folder again)"
stamp="$prefix/.lgd-bundle"
if ! cmp -s "$deps/MANIFEST" "$stamp" 2>/dev/null; then
  rm -rf "$prefix"
  mkdir -p "$prefix"
  n=0
  for deb in "$deps"/*.deb; do
    if command -v dpkg >/dev/null 2>&1; then
      dpkg -x "$deb" "$prefix"
    else
      member=$(ar t "$deb" | grep '^data\.tar') || die "$deb: no data.tar member (not a .deb?)"
      ar p "$deb" "$member" | tar -x -C "$prefix" -f - ||
        die "$deb: cannot unpack $member (tar needs xz or zstd support)"
    fi
    n=$((n + 1))
  done
  # pkg-config files name /usr; point them at the prefix.
  find "$prefix" -name '*.pc' -exec sed -i "s|^prefix=/usr\$|prefix=$prefix/usr|" {} +
  cp "$deps/MANIFEST" "$stamp"
  echo "build_offline.sh: unpacked $n packages into $prefix"
fi
arch_dir=$(find "$prefix/usr/lib" -maxdepth 1 -type d -name '*-linux-gnu*' | head -1)
[ -n "$arch_dir" ] || die "$prefix/usr/lib: no <arch>-linux-gnu folder (was the bundle made on Debian?)"

# 2. LibTorch: the installed PyTorch's, unless --torch says otherwise.
if [ -z "$torch_dir" ]; then
  torch_dir=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null) || torch_dir=
  [ -f "$torch_dir/Torch/TorchConfig.cmake" ] || torch_dir=
fi
if [ -n "$torch_dir" ]; then
  [ -f "$torch_dir/Torch/TorchConfig.cmake" ] || die "$torch_dir: no Torch/TorchConfig.cmake (--torch expects LibTorch's CMake prefix)"
  echo "build_offline.sh: LibTorch from $torch_dir"
else
  echo "build_offline.sh: $python has no LibTorch CMake files; using the system's LibTorch"
fi

# Fashion-MNIST, when the bundle has it (LGD_BUNDLE_DATA=1), for the demo tests.
fmnist="$prefix/usr/share/datasets/fashion-mnist"
[ -f "$fmnist/train-images-idx3-ubyte.gz" ] && cmake_args+=("-DLGD_FASHION_MNIST=$fmnist")

# 3. Configure and build. DT_RPATH (not RUNPATH) so the libraries' own dependencies in the
# prefix are found too, with no LD_LIBRARY_PATH.
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
rpath_flags="-Wl,--disable-new-dtags"
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DLGD_BUILD_TESTS=ON \
  -DCMAKE_PREFIX_PATH="$prefix/usr;$arch_dir/cmake;$prefix/usr/share/cmake${torch_dir:+;$torch_dir}" \
  -DCMAKE_LIBRARY_PATH="$arch_dir" -DCMAKE_INCLUDE_PATH="$prefix/usr/include" \
  -DCMAKE_EXE_LINKER_FLAGS="$rpath_flags" -DCMAKE_SHARED_LINKER_FLAGS="$rpath_flags" \
  -DCMAKE_MODULE_LINKER_FLAGS="$rpath_flags" \
  -DLGD_PYTHON="$(command -v "$python")" "${cmake_args[@]}"
cmake --build "$build_dir" -j "$jobs" "${build_args[@]}"
echo "build_offline.sh: built in $build_dir; run the tests with: ctest --test-dir $build_dir -j $jobs"
