#!/usr/bin/env bash
# The main job on a fresh machine: install, build, show the student zoo, and hand a
# student to torchvision through `lgd export`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== building lgd"
scripts/build.sh --target lgd
lgd=${LGD_BUILD_DIR:-build}/src/cli/lgd
out=runs/demo
mkdir -p "$out"

echo "== lgd info"
"$lgd" info

echo "== a run config, resolved (defaults < file < --set)"
"$lgd" config print configs/examples/resnet18_minimal.yaml --set optim.lr=0.05 | head -12

echo "== export a ResNet-18 student and load it into torchvision"
"$lgd" export --arch resnet18 --init random --seed 0 -o "$out/resnet18.pth"
"$lgd" export --arch resnet18 --init random --seed 0 -o "$out/resnet18.safetensors"
/usr/bin/python3 - "$out/resnet18.pth" <<'PY'
import sys, torch, torchvision
model = torchvision.models.resnet18()
result = model.load_state_dict(torch.load(sys.argv[1]), strict=False)
print(f"torchvision.models.resnet18 loaded {sys.argv[1]}: missing {result.missing_keys}, "
      f"unexpected {result.unexpected_keys}")
PY
