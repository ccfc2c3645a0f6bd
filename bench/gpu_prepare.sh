#!/usr/bin/env bash
# Run HERE (with internet) before `bash bench/gpu_train.sh` on a lent GPU machine (none there):
#   bash bench/gpu_prepare.sh [--photos DIR]     # DIR default: ../shared/data/photos beside the checkout
# Writes the ignored folder bench/out/gpu_payload: photos/ (JPEG copies at a 1024-px short side, see
# bench/gpu_payload.py) and wheels/ (hydra-core, omegaconf, antlr4-python3-runtime, hydra-colorlog, albumentations
# and what they need that the GPU image lacks, for Python 3.12 and 3.11), then prints the `carry` list and the
# size that travels (the device tool takes at most 64 MiB: working tree + carried paths).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PAYLOAD=bench/out/gpu_payload
photos=$REPO/../shared/data/photos
while [ $# -gt 0 ]; do
    case $1 in
        --photos) photos=${2:?--photos needs a folder}; shift 2 ;;
        *) echo "gpu_prepare.sh: unknown option $1 (accepted: --photos DIR)" >&2; exit 2 ;;
    esac
done
[ -d "$photos" ] || { echo "gpu_prepare.sh: --photos $photos is not a folder (give a folder of photos)" >&2; exit 2; }
PY=${PYTHON:-python}
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}

"$PY" bench/gpu_payload.py photos "$photos" "$PAYLOAD/photos" --short-side 1024 --quality 95
"$PY" bench/gpu_payload.py wheels "$PAYLOAD/wheels" --python 3.12 3.11

payload=$(du -sb "$PAYLOAD" | cut -f1)
tree=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null || true) \
    | awk '$2 == "total" {s += $1} END {print s + 0}')
total=$((payload + tree))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "carry: [\"$PAYLOAD\"]"
echo "size: payload $(mib "$payload") + working tree $(mib "$tree") = $(mib "$total") of 64 MiB"
if [ "$total" -ge $((64 * 1048576)) ]; then
    echo "gpu_prepare.sh: over 64 MiB; shrink the photos (fewer, or a smaller --short-side in this script)" >&2
    exit 1
fi
