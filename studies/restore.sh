#!/usr/bin/env bash
# The inverse of studies/snapshot.sh: rebuild a study directory from a committed snapshot so that
# `anatlearn study --out STUDY_DIR` continues it on a fresh checkout (the study directory is not tracked,
# a new machine starts without it). Every committed evaluation is put back where the runner looks for it
# (cells/<name>/seed-<s>/eval/budget-NNNN.json), so those budgets are skipped; the cells with a budget left
# retrain from epoch 0 (their checkpoints were not committed): on the same CPU and thread count that is the
# run they would have continued (the resume is exact), on another CPU an independent run of the same
# protocol (python -m studies.reproduce measures which). studies/snapshot.sh uses it to rebuild its tables.
# Refuses to write into an existing study directory.
#   studies/restore.sh docs/study-run2 study-out
set -euo pipefail
snap=${1:?usage: studies/restore.sh SNAPSHOT_DIR STUDY_DIR}
out=${2:?usage: studies/restore.sh SNAPSHOT_DIR STUDY_DIR}
[ -f "$snap/study.json" ] || { echo "studies/restore.sh: $snap/study.json not found (not a snapshot)" >&2; exit 2; }
[ -e "$out/study.json" ] && { echo "studies/restore.sh: $out already holds a study; choose an empty directory" >&2; exit 2; }
mkdir -p "$out/cells"
cp "$snap/study.json" "$out/study.json"
n=0
for f in "$snap"/*/seed-*/budget-*.json; do
  [ -e "$f" ] || continue
  cell=${f#"$snap"/}
  mkdir -p "$out/cells/$(dirname "$cell")/eval"
  cp "$f" "$out/cells/$(dirname "$cell")/eval/"
  n=$((n + 1))
done
echo "studies/restore.sh: $n evaluation(s) restored into $out; continue with: anatlearn study --out $out"
