#!/usr/bin/env bash
# Prepare a large cohort with a SLURM job array: one task per CPU slot, each task a deterministic 1/N of the
# subjects (anatlearn reads SLURM_ARRAY_TASK_ID/_MIN/_COUNT, so --array=0-N-1 and --array=1-N both work),
# then one merge job that writes participants.tsv, qc.tsv and qc.html and lists failed or missing subjects.
#
# Usage: scripts/slurm_prep.sh BIDS_DIR OUT_DIR [TASKS] [extra anatlearn prep options, e.g. --modality quasiraw]
#   Submits the array and the merge (which starts when every task has ended, successfully or not).
#   Re-running the same command re-submits everything; finished subjects are skipped by every task.
# Sizing (docs/scale.md): a VBM subject takes ~332 s of CPU on one core at the default 1 mm template and
# peaks at ~3 GiB (measured); 50,000 subjects ~4,600 core-hours, e.g. 1000 tasks of 50 subjects, ~5 h each.
set -euo pipefail
BIDS=${1:?BIDS directory}; OUT=${2:?output directory}; TASKS=${3:-100}; shift $(( $# < 3 ? $# : 3 ))
mkdir -p "$OUT/slurm-logs"
ARRAY=$(sbatch --parsable --job-name=anatlearn-prep --array="0-$((TASKS - 1))" \
  --cpus-per-task=1 --mem=4G --time=24:00:00 --output="$OUT/slurm-logs/prep-%A_%a.out" \
  --wrap="anatlearn prep --bids '$BIDS' --out '$OUT' --jobs 1 --threads 1 $*")
# afterany: merge even when some tasks failed or timed out, so the QC page lists what is missing
sbatch --job-name=anatlearn-prep-merge --dependency="afterany:$ARRAY" --cpus-per-task=1 --mem=4G \
  --time=01:00:00 --output="$OUT/slurm-logs/merge-%j.out" \
  --wrap="anatlearn prep --bids '$BIDS' --out '$OUT' --merge $*"
echo "submitted array $ARRAY ($TASKS tasks) and its merge; QC page: $OUT/qc.html"
