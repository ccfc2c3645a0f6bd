#!/usr/bin/env bash
# Does attention across frames help? sa_unet_video (experiment=video_default: window attention over the same window
# in every frame, mask-aware keys, started from the shipped image model) against the same recipe with
# model.temporal=false (same parameters, attention within each frame), trained side by side for the same wall-clock
# budget (one thread each), then both scored with the classical video methods on the same fixed, seeded clips and
# masks: real footage held out by video (TEST_VIDEOS) and synthetic-motion clips of the held-out photos.
#
#   VIDEOS=dir TEST_VIDEOS=dir PHOTOS=dir [MINUTES=60] [STEPS=300] [OUT=logs/video_ablation] bash bench/video_ablation.sh
#   STAGE=evaluate ... bash bench/video_ablation.sh     # only the evaluation of finished runs
#   PRIOR=flow ARMS=true INIT=path/to/video.pt ... bash bench/video_ablation.sh
#       # model.temporal_prior=PRIOR (true = nearest, flow, false), only the listed model.temporal arms, started
#       # from INIT (init_from: default = the shipped image model, or a generator / checkpoint file)
#
# Results: $OUT/eval_footage/summary.md and $OUT/eval_photos/summary.md (tables by hole-area bucket, paired
# differences with 95% intervals); docs/benchmarks.md "video_ablation" quotes them.
set -euo pipefail
: "${VIDEOS:?a folder of training videos}" "${TEST_VIDEOS:?a folder of held-out test videos}" "${PHOTOS:?a folder of photos}"
MINUTES=${MINUTES:-60}
STEPS=${STEPS:-300}
OUT=${OUT:-logs/video_ablation}
STAGE=${STAGE:-all}
PRIOR=${PRIOR:-true}
ARMS=${ARMS:-true false}
INIT=${INIT:-default}
export WANDB_MODE=offline OMP_NUM_THREADS=1
DATA="data.root=$VIDEOS data.test_root=$TEST_VIDEOS data.val_fraction=0.1 data.test_fraction=0.25"

if [[ $STAGE == all || $STAGE == train ]]; then
    for temporal in $ARMS; do
        name=$([[ $temporal == true ]] && echo temporal || echo per_frame)
        python -m inpainting.train experiment=video_default $DATA data.photo_root=$PHOTOS model.temporal=$temporal \
            model.temporal_prior="$PRIOR" init_from="$INIT" \
            trainer.max_steps="$STEPS" +trainer.max_time="00:$(printf %02d $((MINUTES / 60))):$(printf %02d $((MINUTES % 60))):00" \
            test=false hydra.run.dir="$OUT/$name" > "$OUT/$name.out" 2>&1 &
    done
    wait
fi

if [[ $STAGE == all || $STAGE == evaluate ]]; then
    # EXTRA_METHODS: more entries for the same paired tables, e.g. earlier arms ",old@ckpt:PATH"
    arms=""
    for temporal in $ARMS; do
        name=$([[ $temporal == true ]] && echo temporal || echo per_frame)
        arms="$arms,$name@ckpt:$OUT/$name/checkpoints/last.ckpt"
    done
    methods="[telea,harmonic,temporal_copy,flow_guided,default$arms${EXTRA_METHODS:-}]"
    common="data=video $DATA data.image_size=128 split=test masks_per_image=1 workers=1"
    # real footage: every held-out video, 24 evenly spaced 5-frame clips each
    python -m inpainting.evaluate $common data.synthetic_motion=false data.clips_per_video=24 "methods=$methods" \
        hydra.run.dir="$OUT/eval_footage" > "$OUT/eval_footage.out" 2>&1 &
    # synthetic camera motion over the held-out photos, 3 camera paths each
    python -m inpainting.evaluate $common data.synthetic_motion=true data.photo_root=$PHOTOS data.clips_per_video=3 \
        "methods=$methods" data.test_root=null hydra.run.dir="$OUT/eval_photos" > "$OUT/eval_photos.out" 2>&1 &
    wait
fi
