#!/usr/bin/env bash
# Everything lgd checks on a GPU machine, in one command: the offline build (against the
# PyTorch installed there and the .deb bundle of scripts/bundle_deps.sh), the whole test suite
# (the gpu-labelled tests included), the training step against the reference
# (scripts/bench/gpu_step.sh) and training from JPEG files against synthetic data
# (scripts/bench/gpu_e2e.sh). Logs and JSON lines go into OUT; a summary is printed.
#
#   scripts/gpu_check.sh [OUT]            (default runs/gpu_check)
# Env: DEPS (the bundle, default deps), PYTHON (default python3), JOBS (default nproc),
# STAGES (default "build test bench e2e"), and gpu_step.sh's / gpu_e2e.sh's variables.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-runs/gpu_check}")
deps=${DEPS:-deps}
py=${PYTHON:-python3}
jobs=${JOBS:-$(nproc)}
read -r -a stages <<<"${STAGES:-build test bench e2e}"
mkdir -p "$out"
t0=$SECONDS
say() { printf '[%d:%02d] %s\n' $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60)) "$*"; }
has() { [[ " ${stages[*]} " == *" $1 "* ]]; }
status=0

say "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
say "$("$py" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())' 2>&1)"
if has build; then
  say "building (scripts/build_offline.sh --deps $deps --python $py --jobs $jobs; log: $out/build.log)"
  if ! scripts/build_offline.sh --deps "$deps" --python "$py" --jobs "$jobs" >"$out/build.log" 2>&1; then
    tail -20 "$out/build.log"; say "build failed"; exit 1
  fi
  build-offline/src/cli/lgd info | tee "$out/info.txt"
  # pip builds of LibTorch may export their own std::filesystem copies (pytorch/pytorch#133437);
  # lgd's executables link libstdc++ first so that those cannot replace libstdc++'s.
  torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)
  for lib in "$torch_lib"/libtorch_cpu.so "$torch_lib"/libc10.so; do
    [ -f "$lib" ] &&
      say "$(basename "$lib") exports $(nm -D --defined-only "$lib" 2>/dev/null | grep -c -E ' _ZNK?St10filesystem') std::filesystem symbols"
  done
  say "lgd_tests' first libraries: $(readelf -d build-offline/tests/lgd_tests | awk '/NEEDED/ {print $5}' | head -3 | tr -d '[]' | tr '\n' ' ')"
fi
if has test; then
  say "ctest (log: $out/ctest.log)"
  ctest --test-dir build-offline -j "$jobs" --output-on-failure >"$out/ctest.log" 2>&1 || status=1
  grep -E "tests passed|\*\*\*|Failed|Not Run" "$out/ctest.log" | grep -v "^ *[0-9]*/[0-9]* Test.*Passed" | tail -40
  # A crashing gtest case: the backtrace lgd_tests prints itself (tests/crash_backtrace.cpp),
  # and gdb's, when gdb is there.
  grep -m1 -A25 "fatal signal; backtrace" "$out/ctest.log"
  crash=$(grep -m1 -E "\*\*\*Exception: SegFault" "$out/ctest.log" | sed -E 's/.*Test +#[0-9]+: ([^ ]+) .*/\1/')
  if [ -n "$crash" ] && command -v gdb >/dev/null; then
    say "backtrace of $crash"
    gdb -batch -ex run -ex bt --args build-offline/tests/lgd_tests --gtest_filter="$crash" >"$out/backtrace.txt" 2>&1
    grep -E "^#" "$out/backtrace.txt" | head -30
  fi
  if [ -n "$crash" ]; then
    # Which library each C++ standard-library symbol of the crashing case binds to: a libstdc++
    # symbol served by a LibTorch library (that exports its own copies) would show here.
    say "symbol bindings of $crash outside libstdc++ (log: $out/bindings.txt)"
    LD_DEBUG=bindings LD_DEBUG_OUTPUT="$out/ld" build-offline/tests/lgd_tests --gtest_filter="$crash" >/dev/null 2>&1
    cat "$out"/ld.* 2>/dev/null | grep -E "normal symbol \`_ZN?St|normal symbol \`_ZNKSt" |
      grep -v "to .*libstdc++" >"$out/bindings.txt"
    # A library's own template instances bind to itself; the ones served by another library:
    sed -E 's/.*binding file ([^ ]+) \[0\] to ([^ ]+) .*/\1 -> \2/' "$out/bindings.txt" |
      awk '$1 != $3' | sort | uniq -c | sort -rn | head
    grep -m5 "filesystem" "$out/bindings.txt"
    rm -f "$out"/ld.*
  fi
fi
if has bench; then
  say "scripts/bench/gpu_step.sh (JSON: $out/gpu_step.jsonl)"
  PYTHON=$py scripts/bench/gpu_step.sh "$out/gpu_step.jsonl" >"$out/gpu_step.log" 2>&1 || status=1
  tail -30 "$out/gpu_step.log"
fi
if has e2e; then
  say "scripts/bench/gpu_e2e.sh (JSON: $out/gpu_e2e.jsonl)"
  PYTHON=$py scripts/bench/gpu_e2e.sh "$out/gpu_e2e.jsonl" >"$out/gpu_e2e.log" 2>&1 || status=1
  tail -10 "$out/gpu_e2e.log"
fi
say "done (exit $status)"
exit "$status"
