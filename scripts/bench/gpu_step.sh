#!/usr/bin/env bash
# lgd's training step against the reference's on one GPU (the issue's like-for-like test):
# the same teacher TorchScript file (CLIP RN50-sized: ResNet-50 trunk -> 1024; ViT-B/32-sized:
# ViT-B/32 trunk -> 512; random weights), the same student (ResNet-18, MobileNetV2), batch
# 256 at 224 px, 1,000 classes. Prints one JSON object per run and appends them to OUT.
#   scripts/bench/gpu_step.sh [OUT.jsonl]        (default runs/bench/gpu_step.jsonl)
# Env: LGD (default build/src/cli/lgd, or build-offline/src/cli/lgd when that exists),
# PYTHON (default python3: the PyTorch to compare with), STEPS (default 30), WARMUP (10),
# TEACHERS (default "rn50 vitb32"), ARCHS ("resnet18 mobilenet_v2"), VARIANTS (lgd's runs as
# "amp:photometric[:key=value,...]", the optional part being more --set overrides, which each
# JSON line then carries as "overrides"; default "fp16:auto bf16:auto fp16:host
# fp16:host:train.channels_last=false fp16:host:teacher.freeze=true fp16:host:teacher.overlap=true
# fp16:host:teacher.freeze=true,teacher.overlap=true"), CACHE (1: also the fp16:host step
# reading a teacher cache instead of running the teacher), REFERENCE (1: also
# the reference), TRACE (1: a Chrome trace of 3 more steps of every run, lgd's and the
# reference's, into traces/ beside OUT).
# One change switched at a time (the notes table's before/after), for example:
#   VARIANTS="fp16:host fp16:host:train.channels_last=false fp16:host:teacher.freeze=true
#             fp16:host:teacher.overlap=true fp16:host:train.deterministic=true fp16:host:train.nonfinite_check=step fp16:device"
#   TEACHERS=rn50 REFERENCE=0
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-30}
WARMUP=${WARMUP:-10}
read -r -a teachers <<<"${TEACHERS:-rn50 vitb32}"
read -r -a archs <<<"${ARCHS:-resnet18 mobilenet_v2}"
read -r -a variants <<<"${VARIANTS:-fp16:auto bf16:auto fp16:host fp16:host:train.channels_last=false fp16:host:teacher.freeze=true fp16:host:teacher.overlap=true fp16:host:teacher.freeze=true,teacher.overlap=true}"
out=${1:-runs/bench/gpu_step.jsonl}
source scripts/bench/gpu_common.sh
mkdir -p "$(dirname "$out")"
traces=""
if [ "${TRACE:-0}" = 1 ]; then traces="$(dirname "$out")/traces"; mkdir -p "$traces"; fi
echo "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo unknown);" \
     "$("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())')"
for t in "${teachers[@]}"; do
  bundle=$(bench_teacher "$t")
  for arch in "${archs[@]}"; do
    # fp16 and bf16 with the colour jitter, grayscale and blur in the step (data.photometric
    # auto on CUDA), and fp16 without them (in the loader), the reference's synthetic step,
    # in channels_last and contiguous.
    for i in "${!variants[@]}"; do
      IFS=: read -r amp photometric extra <<<"${variants[$i]}"
      sets=()
      [ -n "$traces" ] && sets+=(--trace "$traces/${t}_${arch}_lgd_$i.json")
      if [ -n "$extra" ]; then
        IFS=, read -r -a kvs <<<"$extra"
        for kv in "${kvs[@]}"; do sets+=(--set "$kv"); done
      fi
      "$LGD" --log-level warn bench train --config configs/bench/train_gpu.yaml --set teacher.bundle="$bundle" \
        --set student.arch="$arch" --set train.amp="$amp" --set data.photometric="$photometric" \
        --set bank.classnames="$classes" "${sets[@]}" --steps "$STEPS" --warmup "$WARMUP" --json |
        "$PY" -c 'import json, sys
for line in sys.stdin:
    if line.strip():
        print(json.dumps({**json.loads(line), **({"overrides": sys.argv[1]} if sys.argv[1] else {})}), flush=True)' \
          "$extra" | tee -a "$out"
    done
    # The step with the teacher's embeddings read from a teacher cache (fp16, colour work in
    # the loader): what lgd train --set teacher.cache=DIR runs; "keys": "cache" in its line.
    if [ "${CACHE:-1}" = 1 ]; then
      cache=$(bench_cache "$t" "$bundle")
      "$LGD" --log-level warn bench train --config configs/bench/train_gpu.yaml --set teacher.bundle="$bundle" \
        --set student.arch="$arch" --set train.amp=fp16 --set data.photometric=host \
        --set bank.classnames="$classes" --set teacher.cache="$cache" --steps "$STEPS" --warmup "$WARMUP" --json |
        tee -a "$out"
    fi
    if [ "${REFERENCE:-1}" = 1 ]; then
      "$PY" scripts/bench/reference_step.py --teacher "$bundle" --arch "$arch" --batch 256 --classes 1000 \
        --device cuda --amp fp16 --vsb loop --steps "$STEPS" --warmup "$WARMUP" --flops \
        ${traces:+--trace "$traces/${t}_${arch}_reference.json"} | tee -a "$out"
    fi
  done
done
