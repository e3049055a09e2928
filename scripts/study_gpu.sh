#!/usr/bin/env bash
# Run (or continue) `anatlearn study` on a GPU machine for a bounded time, then pack what it finished.
# Usage: STUDY_SECONDS=450 WORKERS=14 OUT=packed scripts/study_gpu.sh [STUDY_DIR]
# The cells run in WORKERS parallel processes sharing the GPU. Measured on an H200 (docs/study.md): 14
# workers ran the study's width-0.25 cells only ~2x faster than one (time-slicing between the processes'
# CUDA contexts; NVIDIA MPS might do better, untried). A stopped study continues with the same command; the
# packed archive holds the evaluations, tables, figures and logs, not the checkpoints or cohorts.
set -uo pipefail
STUDY=${1:-study-out}; OUT=${OUT:-packed}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if ls .whl/*.whl >/dev/null 2>&1; then  # pure-Python wheels missing on the GPU image
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
timeout "${STUDY_SECONDS:-3600}" python3 -m anatlearn study --out "$STUDY" --grid "${GRID:-full}" --device cuda \
  --workers "${WORKERS:-8}" > "$OUT/study.log" 2>&1
echo "study exit status $? (124 = stopped by the time limit; re-run to continue)" | tee -a "$OUT/study.log"
python3 -m anatlearn study --out "$STUDY" --grid "${GRID:-full}" --aggregate-only >> "$OUT/study.log" 2>&1
tar czf "$OUT/study-results.tgz" --exclude='*.pt' --exclude='*.safetensors' --exclude='*.npy' \
  --exclude='*.nii.gz' --exclude="$(basename "$STUDY")/data" -C "$(dirname "$STUDY")" "$(basename "$STUDY")"
ls -la "$OUT"
