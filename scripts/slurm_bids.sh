#!/usr/bin/env bash
# Run the anatlearn BIDS App on a cluster: one SLURM array task per participant (the participant level:
# prep with its QC gate, then embed; one ITK thread, so reruns are bit-identical), then one group job that
# writes the feature table, the QC summary and the QC page (docs/bids.md, docs/scale.md).
#
# Usage: scripts/slurm_bids.sh BIDS_DIR OUTPUT_DIR WEIGHTS [extra participant-level options, e.g. --work-dir /scratch/w]
#   Re-running the same command re-submits everything; every finished scan is skipped (--overwrite redoes it).
# Sizing: a VBM scan takes ~330 s of CPU on one core at the default 1 mm template and peaks at ~3 GiB
# (docs/scale.md); embedding one scan on a CPU adds a few seconds.
set -euo pipefail
BIDS=${1:?BIDS directory}; OUT=${2:?output directory}; WEIGHTS=${3:?weights}; shift 3
mkdir -p "$OUT/slurm-logs"
# the participants, one per line, without "sub-" (the BIDS-Apps convention for --participant-label)
LIST="$OUT/slurm-logs/participants.txt"
find "$BIDS" -mindepth 1 -maxdepth 1 -type d -name 'sub-*' -printf '%f\n' | sed 's/^sub-//' | sort > "$LIST"
N=$(wc -l < "$LIST")
[ "$N" -gt 0 ] || { echo "no sub-* folders in $BIDS" >&2; exit 2; }
ARRAY=$(sbatch --parsable --job-name=anatlearn-bids --array="1-$N" --cpus-per-task=1 --mem=4G --time=02:00:00 \
  --output="$OUT/slurm-logs/participant-%A_%a.out" \
  --wrap="anatlearn bids '$BIDS' '$OUT' participant --participant-label \$(sed -n \"\${SLURM_ARRAY_TASK_ID}p\" '$LIST') --weights '$WEIGHTS' $*")
# afterany: the group level runs even when some participants failed, so its QC page shows them first
sbatch --job-name=anatlearn-bids-group --dependency="afterany:$ARRAY" --cpus-per-task=1 --mem=4G --time=01:00:00 \
  --output="$OUT/slurm-logs/group-%j.out" --wrap="anatlearn bids '$BIDS' '$OUT' group"
echo "submitted array $ARRAY ($N participants) and the group job; QC page: $OUT/group/qc.html"
