#!/usr/bin/env bash
# LGD against its baselines on Fashion-MNIST, with the demo teacher: random-init, SEED,
# LGD VIS-only (alpha 1), LGD TEX-only (alpha 0) and LGD (alpha 0.5). Same student
# (MobileNetV2 at 32 px), same budget (configs/demo/fashion_mnist_lgd.yaml: one epoch of
# 468 steps of 128 images, zero-shot validation every 39 steps), same seeds. Each seed s
# trains with run.seed=s and evaluates with --seed s (the labelled 10% subset, the
# hold-out split, the random init). Writes docs/RESULTS.md (mean and spread per protocol,
# every seed's numbers) and docs/results/fmnist_val_zero_shot.png (validation zero-shot
# accuracy over training), and prints the table. Each student (and the random init) is also
# fine-tuned end to end on the same labelled subset (lgd eval --protocol finetune, the recipe in
# $finetune_args), a separate evaluation folder per student and seed. The methods of a seed
# share one teacher cache (lgd reinforce --dtype float32: the teacher runs once per seed, and
# each run is bit-identical to one without the cache).
#
#   scripts/compare.sh                  3 seeds (about an hour on 2 cores; builds lgd first)
#   LGD_COMPARE_SEEDS="0 1 2 3 4"       other seeds
#   LGD_COMPARE=tiny scripts/compare.sh every step at a tiny budget (the test suite runs this)
#   LGD=path/to/lgd                     use that lgd: no set-up, no build
#   LGD_COMPARE_OUT=DIR                 runs and evaluations (default runs/compare); a run or
#                                       evaluation whose results exist there is reused, so an
#                                       interrupted comparison continues; delete DIR to redo it
#   LGD_COMPARE_DOCS=DIR                where RESULTS.md and results/ go (default docs)
#   LGD_PYTHON, LGD_FASHION_MNIST       as for scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${LGD_COMPARE:-full}
out=${LGD_COMPARE_OUT:-runs/compare}
docs=${LGD_COMPARE_DOCS:-docs}
source scripts/lib/demo_common.sh

case "$mode" in
  full)
    seeds=${LGD_COMPARE_SEEDS:-0 1 2}
    teacher=teachers/demo_fmnist
    teacher_args=(--epochs 2)
    train_args=(--set train.val_every_steps=39)
    eval_args=(--subset 10)
    finetune_args=(--finetune-epochs 5 --finetune-batch 256 --finetune-lr 0.05 --finetune-head-lr 0.05) ;;
  tiny)
    seeds=${LGD_COMPARE_SEEDS:-0 1}
    teacher=$out/teacher
    teacher_args=(--epochs 1 --limit 1024)
    # Trained on the 10,000 test images, so that the teacher cache is made in seconds.
    train_args=(--set train.max_steps=4 --set data.batch_size=32 --set data.split=test --set train.val_every=0
                --set train.val_every_steps=2 --set train.val_limit=1000 --set train.log_every=1)
    eval_args=(--subset 1)
    finetune_args=(--finetune-epochs 1 --finetune-batch 64 --finetune-lr 0.05 --finetune-head-lr 0.05) ;;
  *) echo "compare.sh: LGD_COMPARE=$mode (expected full or tiny)" >&2; exit 2 ;;
esac

ensure_lgd
threads=$(nproc)
mkdir -p "$out"

demo_teacher "$teacher" "the demo teacher (reused when it exists)" "${teacher_args[@]}"

# name and lgd train overrides of each trained method. SEED's queue is 4,096 keys: its
# reference 65,536 is 5% of ImageNet, and 4,096 is 7% of these 60,000 images (a queue larger
# than the data the run sees would be mostly the random keys it starts from).
methods=(seed lgd_vis lgd_tex lgd)
declare -A overrides=(
  [seed]="method.name=seed method.queue_size=4096"
  [lgd_vis]="method.name=lgd method.alpha=1"
  [lgd_tex]="method.name=lgd method.alpha=0"
  [lgd]="method.name=lgd method.alpha=0.5"
)

for s in $seeds; do
  # One teacher cache per seed serves every method: the teacher runs once over the epoch's
  # views (float32, so each run is bit-identical to one without the cache).
  cache="$out/cache_s$s"
  common=(--config configs/demo/fashion_mnist_lgd.yaml --set run.seed="$s" --set run.threads="$threads"
          --set teacher.bundle="$teacher" --set data.root="$FMNIST" "${train_args[@]}")
  for m in "${methods[@]}"; do
    run="$out/${m}_s$s"
    if [ -f "$run/student.pth" ]; then
      step "$m, seed $s: trained already ($run)"
    else
      if [ ! -f "$cache/manifest.json" ]; then
        step "seed $s: lgd reinforce (the teacher's embeddings of the epoch's views, for every method)"
        "$LGD" reinforce "${common[@]}" --views 1 --dtype float32 --out "$cache"
      fi
      step "$m, seed $s: lgd train (${overrides[$m]})"
      sets=()
      for kv in ${overrides[$m]}; do sets+=(--set "$kv"); done
      "$LGD" train "${common[@]}" --set run.output_dir="$out" --set run.name="${m}_s$s" \
        --set teacher.cache="$cache" "${sets[@]}"
    fi
    if [ ! -f "$out/eval_${m}_s$s/results.json" ]; then
      step "$m, seed $s: lgd eval (linear-fast, kNN, zero-shot)"
      "$LGD" eval --checkpoint "$run/checkpoints/last.ckpt" --protocol linear-fast,knn,zero-shot \
        --seed "$s" --threads "$threads" "${eval_args[@]}" --out "$out/eval_${m}_s$s"
    fi
    if [ ! -f "$out/finetune_${m}_s$s/results.json" ]; then
      step "$m, seed $s: lgd eval (finetune ${finetune_args[*]})"
      "$LGD" eval --checkpoint "$run/checkpoints/last.ckpt" --protocol finetune \
        --seed "$s" --threads "$threads" "${eval_args[@]}" "${finetune_args[@]}" --out "$out/finetune_${m}_s$s"
    fi
  done
  if [ ! -f "$out/eval_random_s$s/results.json" ]; then
    step "random-init, seed $s: lgd eval (linear-fast, kNN)"
    "$LGD" eval --init random --arch mobilenet_v2 --seed "$s" --format idx \
      --data "$FMNIST" --image-size 32 --protocol linear-fast,knn \
      --threads "$threads" "${eval_args[@]}" --out "$out/eval_random_s$s"
  fi
  if [ ! -f "$out/finetune_random_s$s/results.json" ]; then
    step "random-init, seed $s: lgd eval (finetune ${finetune_args[*]})"
    "$LGD" eval --init random --arch mobilenet_v2 --seed "$s" --format idx \
      --data "$FMNIST" --image-size 32 --protocol finetune \
      --threads "$threads" "${eval_args[@]}" "${finetune_args[@]}" --out "$out/finetune_random_s$s"
  fi
done

step "report: $docs/RESULTS.md"
# shellcheck disable=SC2086
"$PYTHON" scripts/compare_report.py --runs "$out" --teacher "$teacher" --docs "$docs" \
  --seeds $seeds --command "${LGD_COMPARE_COMMAND:-scripts/compare.sh}" --finetune "${finetune_args[*]}"
printf '\nDone in %d:%02d.\n' $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60))
