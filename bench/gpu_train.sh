#!/usr/bin/env bash
# The one-command GPU training run for a lent GPU machine (repo copied, no internet):
#   here:  bash bench/gpu_prepare.sh                  # photos + wheels into bench/out/gpu_payload (carry it)
#   there: bash bench/gpu_train.sh [--minutes 7] [--steps N] [--photos DIR]
#   CPU:   OUT=/tmp/smoke bash bench/gpu_train.sh --smoke [--photos DIR]   # every stage, tiny, ~2 min
# Stages: install the carried wheels (skipped when hydra, omegaconf and albumentations import), print the GPU,
# fine-tune the shipped weights with conf/experiment/default_model_stage2.yaml's recipe (plain L1, Adam 5e-4,
# 100-step warm-up) at 256², batch 8 (bf16-mixed, trainer=gpu, 8 loader workers) for --minutes of wall time, the
# learning rate decayed to ~0 over those minutes (callbacks.cpu_budget.max_wall_seconds with decay=cosine, so the
# run ends decayed whatever its step rate turns out to be), export last.ckpt as a generator file, evaluate it on
# the test split beside the shipped model and the harmonic fill, write summary.md. The whole run takes about
# --minutes + 2: keep it inside the 10-minute command. --steps N caps the steps as well (default: no cap).
# $OUT gets gpu_train.log, sa_unet_gpu.pt, summary.md, test_table.md and train_metrics.csv; run folders
# (checkpoints, evaluation samples) stay in $WORK (default: a new temporary folder).
set -u -o pipefail
: "${OUT:?set OUT to the folder for the results}"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PAYLOAD=bench/out/gpu_payload
PY=${PYTHON:-python3}
IMPORTS="import hydra, omegaconf, albumentations, hydra_plugins.hydra_colorlog"
smoke=0 minutes=7 steps="" photos=""
COMMAND="bash bench/gpu_train.sh $*"
usage="accepted: --smoke, --minutes N, --steps N, --photos DIR"
while [ $# -gt 0 ]; do
    case $1 in
        --smoke) smoke=1; shift ;;
        --minutes|--steps|--photos)
            [ $# -ge 2 ] || { echo "gpu_train.sh: $1 needs a value ($usage)" >&2; exit 2; }
            declare "${1#--}=$2"; shift 2 ;;
        *) echo "gpu_train.sh: unknown option $1 ($usage)" >&2; exit 2 ;;
    esac
done
for option in minutes steps; do
    value=${!option}
    if [ -n "$value" ] && ! [[ $value =~ ^[1-9][0-9]*$ ]]; then
        echo "gpu_train.sh: --$option must be a whole number above 0, got '$value'" >&2
        exit 2
    fi
done
if [ -n "$photos" ] && [ ! -d "$photos" ]; then
    echo "gpu_train.sh: --photos $photos is not a folder (give a folder of photos)" >&2
    exit 2
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=${WORK:-$(mktemp -d)}
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH} WANDB_MODE=offline PYTHONUNBUFFERED=1

die() {
    echo "gpu_train.sh: $*" >&2
    exit 1
}

stages() {
    echo "[install]"
    if "$PY" -c "$IMPORTS" 2>/dev/null; then
        echo "skipped: hydra, omegaconf, albumentations and hydra's colorlog plugin import already"
    else
        [ -f "$PAYLOAD/wheels/requirements.txt" ] \
            || die "$PAYLOAD/wheels/requirements.txt missing: run bash bench/gpu_prepare.sh before, carry $PAYLOAD"
        PIP_BREAK_SYSTEM_PACKAGES=1 "$PY" -m pip install -q --no-index --find-links "$PAYLOAD/wheels" \
            -r "$PAYLOAD/wheels/requirements.txt" || die "pip could not install the carried wheels (see above)"
        "$PY" -c "$IMPORTS" || die "installed the carried wheels, but $IMPORTS still fails (see above)"
        echo "installed from $PAYLOAD/wheels: $(tr '\n' ' ' <"$PAYLOAD/wheels/requirements.txt")and their needs"
    fi

    echo "[device]"
    if [ "$smoke" = 1 ]; then
        card="CPU (--smoke)"
        device=cpu
    else
        nvidia-smi || die "nvidia-smi failed: no GPU here (use --smoke on a CPU machine)"
        card=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)
        device=cuda
    fi
    echo "card: $card"

    echo "[photos]"
    if [ "$smoke" = 1 ]; then
        source=${photos:-$PAYLOAD/photos}
        [ -d "$source" ] || die "--photos $source is not a folder (give --photos DIR, a folder of photos)"
        root=$WORK/photos  # 3 photos: 1 train, 1 val, 1 test
        "$PY" bench/gpu_payload.py photos "$source" "$root" --short-side 96 --limit 3 || die "photos failed"
    else
        root=${photos:-$PAYLOAD/photos}
        [ -d "$root" ] || die "--photos $root is not a folder: run bash bench/gpu_prepare.sh, carry $PAYLOAD"
    fi
    echo "photos: $root"

    if [ "$smoke" = 1 ]; then
        size=64
        steps=${steps:-4}
        overrides=(
            data.image_size=64 "data.train_short_side=[64,96]" trainer=cpu trainer.precision=32-true
            data.batch_size=2 data.num_workers=0 data.persistent_workers=false trainer.num_sanity_val_steps=0
            trainer.log_every_n_steps=1 trainer.val_check_interval=2
        )
        eval_overrides=("mask_sets=[thick]" masks_per_image=1 workers=1 fid=false lpips=false)
    else
        size=256
        steps=${steps:-1000000}  # never reached unless given: the wall budget ends the run
        overrides=(
            data.image_size=256 "data.train_short_side=[256,1024]" trainer=gpu trainer.precision=bf16-mixed
            data.batch_size=8 data.num_workers=8 data.persistent_workers=true data.pin_memory=true
            trainer.log_every_n_steps=50 trainer.val_check_interval=500 callbacks.last_checkpoint.every_n_train_steps=500
            callbacks.cpu_budget.warmup_steps=100
        )
        eval_overrides=()
    fi
    # the rate decays over the wall budget; Lightning's max_time, 2 minutes later, is only a safety net
    safety=$((minutes + 2))
    max_time=$(printf "%02d:%02d:%02d:00" $((safety / 1440)) $((safety / 60 % 24)) $((safety % 60)))
    overrides+=(
        trainer.max_steps="$steps" scheduler=constant callbacks.cpu_budget.decay=cosine
        callbacks.cpu_budget.max_wall_seconds=$((minutes * 60)) +trainer.max_time="$max_time"
    )

    echo "[train] $minutes min (the rate decays over them) or $steps steps, run folder $WORK/train"
    start=$(date +%s)
    timeout -k 30 $((minutes * 60 + 240)) "$PY" -m inpainting.train experiment=default_model_stage2 init_from=default \
        data.root="$root" "${overrides[@]}" logger=csv test=false hydra.run.dir="$WORK/train" \
        || die "training failed (exit $?)"
    train_seconds=$(($(date +%s) - start))
    ckpt=$WORK/train/checkpoints/last.ckpt
    [ -f "$ckpt" ] || die "training wrote no $ckpt"
    cp "$WORK/train/csv/metrics.csv" "$OUT/train_metrics.csv" || echo "no training metrics.csv to copy"

    echo "[export]"
    timeout -k 15 300 "$PY" -m inpainting.export ckpt_path="$ckpt" format=generator \
        output="$OUT/sa_unet_gpu.pt" hydra.run.dir="$WORK/export" || die "export failed (exit $?)"

    echo "[evaluate] test split at ${size}²"
    timeout -k 15 420 "$PY" -m inpainting.evaluate data=folder data.root="$root" data.test_fraction=0.25 \
        data.val_fraction=0.1 split=test data.image_size=$size "methods=[harmonic,default,gpu@ckpt:$OUT/sa_unet_gpu.pt]" \
        vgg_weights=null device=$device "${eval_overrides[@]}" hydra.run.dir="$WORK/eval" \
        || die "evaluation failed (exit $?)"
    cp "$WORK/eval/summary.md" "$OUT/test_table.md" || die "evaluation wrote no summary.md"

    echo "[summary]"
    "$PY" bench/gpu_payload.py summary --out "$OUT" --generator "$OUT/sa_unet_gpu.pt" \
        --eval-summary "$OUT/test_table.md" --card "$card" --planned-steps "$steps" --minutes "$minutes" \
        --train-seconds "$train_seconds" --command "$COMMAND" \
        --overrides "${overrides[*]}" || die "summary failed"
}

stages 2>&1 | tee "$OUT/gpu_train.log"
exit "${PIPESTATUS[0]}"
