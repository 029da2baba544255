#!/usr/bin/env bash
# The air-gapped install, exercised end to end on this machine against the pip leg's PyTorch:
# scripts/bundle_deps.sh collects the Debian packages, scripts/build_offline.sh unpacks them
# into a private prefix and builds lgd there against .venv's LibTorch (CUDA build), and the
# binary is checked: its libraries come from the prefix (not /usr), `lgd info` names the
# pip LibTorch, its CUDA build and both process groups, and a student it exports loads in
# that PyTorch with torch.load(weights_only=True). Run by .ci/run after the pip leg.
#
#   scripts/check_offline.sh [DIR]    work folder (default build-offline-check; reused: the
#                                     build is incremental, the bundle is collected again)
# Needs `LGD_TORCH=pip scripts/setup.sh` first (the virtual environment) and apt (Debian 12).
set -euo pipefail
cd "$(dirname "$0")/.."
LGD_TORCH=pip
source scripts/lib/leg.sh
dir=$(realpath -m "${1:-build-offline-check}")
die() { echo "check_offline.sh: FAIL: $*" >&2; exit 1; }
[ -x "$LGD_VENV_PYTHON" ] || die "$LGD_VENV_PYTHON: not found (run LGD_TORCH=pip scripts/setup.sh)"

rm -rf "$dir/deps"
scripts/bundle_deps.sh "$dir/deps"
scripts/build_offline.sh --deps "$dir/deps" --build-dir "$dir/build" --python "$LGD_VENV_PYTHON" \
  --jobs "$(nproc)" -- --target lgd
lgd=$dir/build/src/cli/lgd
prefix=$dir/deps/prefix

# Every library lgd needs from the bundle is resolved inside the prefix, none from /usr.
# (libsentencepiece is linked by the module lgd opens with dlopen, not by lgd.)
module=$dir/build/lib/liblgd_sentencepiece.so
[ -f "$module" ] || die "$module: not built"
libs=$(ldd "$lgd" "$module")
for lib in libyaml-cpp libspdlog libfmt libturbojpeg libpng16 libpcre2-8 libsentencepiece; do
  line=$(grep -m1 "$lib" <<<"$libs") || die "$lgd does not link $lib (ldd: $(tr '\n' ' ' <<<"$libs"))"
  [[ "$line" == *"$prefix/"* ]] || die "$lib resolves outside the bundle: $line"
done
! grep -q "not found" <<<"$libs" || die "$lgd: unresolved libraries: $(grep 'not found' <<<"$libs")"
torch_lib=$("$LGD_VENV_PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
grep -q "$torch_lib/lib/libtorch_cpu.so" <<<"$libs" ||
  die "libtorch_cpu.so does not come from $torch_lib: $(grep libtorch_cpu <<<"$libs")"

info=$("$lgd" info)
version=$("$LGD_VENV_PYTHON" -c 'import torch; print(torch.__version__.split("+")[0])')
cuda=$("$LGD_VENV_PYTHON" -c 'import torch; print(torch.version.cuda or "")')
grep -q "LibTorch $version" <<<"$info" || die "lgd info does not name LibTorch $version: $(head -1 <<<"$info")"
if [ -n "$cuda" ]; then
  grep -q "CUDA: built with CUDA $cuda" <<<"$info" || die "lgd info does not name CUDA $cuda: $(grep CUDA <<<"$info")"
  grep -q "Process groups: gloo nccl" <<<"$info" || die "lgd info: $(grep 'Process groups' <<<"$info") (expected gloo nccl)"
else
  grep -q "Process groups: gloo" <<<"$info" || die "lgd info: $(grep 'Process groups' <<<"$info") (expected gloo)"
fi

"$lgd" export --arch mobilenet_v3_small --init random --seed 0 -o "$dir/mnv3s.pth" >/dev/null
"$LGD_VENV_PYTHON" - "$dir/mnv3s.pth" <<'EOF'
import sys, torch, torchvision
sd = torch.load(sys.argv[1], weights_only=True)
model = torchvision.models.mobilenet_v3_small()
result = model.load_state_dict(sd, strict=False)
assert not result.unexpected_keys and all(k.startswith("classifier.") for k in result.missing_keys), result
print(f"check_offline.sh: {len(sd)} tensors load into torchvision's mobilenet_v3_small with weights_only=True")
EOF
echo "check_offline.sh: ok: $(head -1 <<<"$info"); $(grep '^CUDA' <<<"$info"); $(grep '^Process' <<<"$info")"
