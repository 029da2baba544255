#!/usr/bin/env bash
# Builds lgd's libFuzzer targets (fuzz/: clang with AddressSanitizer, against Debian's
# LibTorch, into ./build-fuzz) and runs each for a bounded time from its seed corpus
# (tests/fuzz/corpus/<target>).
#   scripts/fuzz.sh                      every target, $LGD_FUZZ_SECONDS (default 60) each
#   scripts/fuzz.sh image torch_pickle   the named targets
# $LGD_JOBS targets run at once (default: all cores). A finding fails the script, with the
# target's report and the input kept as build-fuzz/findings/<target>/crash-*; once fixed, copy
# the input into tests/fuzz/corpus/<target>/, where ctest's fuzz.<target> replays it in both
# LibTorch legs. New inputs that reach new code collect in build-fuzz/corpus/<target>.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
seconds=${LGD_FUZZ_SECONDS:-60}
jobs=${LGD_JOBS:-$(nproc)}
build=build-fuzz
CXX=${LGD_FUZZ_CXX:-clang++} cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" -DLGD_FUZZ=ON \
  -DLGD_BUILD_TESTS=OFF >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls tests/fuzz/corpus)
fi
cmake --build "$build" -j "$jobs" --target "${targets[@]/#/lgd_fuzz_}"

run_target() {  # name seconds build: one bounded libFuzzer run
  local name=$1 seconds=$2 build=$3
  mkdir -p "$build/corpus/$name" "$build/findings/$name"
  # LibTorch's own allocations at start-up are not leaks of a reader; the container-overflow
  # check needs every library instrumented, and LibTorch is not.
  # OpenCV's own pixel limit, as the image target's (Debian's LibTorch loads OpenCV before
  # lgd can set it; include/lgd/data/decode.h).
  if OPENCV_IO_MAX_IMAGE_PIXELS=4194304 \
     ASAN_OPTIONS=detect_leaks=0:detect_container_overflow=0:allocator_may_return_null=1 \
     "$build/fuzz/lgd_fuzz_$name" "$build/corpus/$name" "tests/fuzz/corpus/$name" \
       -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 -malloc_limit_mb=2048 \
       -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/findings/$name/" \
       >"$build/findings/$name.log" 2>&1; then
    echo "fuzz $name: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$build/findings/$name.log" |
                        grep -o '[0-9]*$') inputs in ${seconds} s, no finding"
  else
    echo "fuzz $name: FINDING (input in $build/findings/$name/):"
    grep -v -E '^#[0-9]+|^INFO:' "$build/findings/$name.log" | tail -40
    return 1
  fi
}
export -f run_target
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_target "$@"' _ {} "$seconds" "$build"
