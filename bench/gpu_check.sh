#!/usr/bin/env bash
# The one command for a lent GPU machine (repo copied, packages installed, no internet): `bash bench/gpu_check.sh`.
# Installs nothing. Prints the GPU, runs bench/bench_gpu_step.py under a 420 s cap (it writes its .md/.json into
# $OUT after each part, so a run cut short still returns what it measured), keeps its log, and copies the
# docs/benchmarks.md section it wrote (gpu_step) into $OUT, since the machine's checkout does not come back.
# Needs torch, numpy, PyYAML and opencv only (the inpainting package is imported from this checkout); the loader
# part also needs hydra-core, omegaconf and albumentations and is skipped, with a logged reason, where they are
# missing (carry them as wheels to measure it).
set -u
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt"
timeout -k 15 420 python -u bench/bench_gpu_step.py --device cuda --out "$OUT" --write-docs 2>&1 \
    | tee "$OUT/bench_gpu_step.log"
status=${PIPESTATUS[0]}
sed -n '/<!-- bench:gpu_step -->/,/<!-- \/bench:gpu_step -->/p' docs/benchmarks.md > "$OUT/benchmarks_gpu_step.md"
echo "bench_gpu_step exit status: $status"
exit "$status"
