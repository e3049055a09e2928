#!/usr/bin/env bash
# Copy a running or stopped study's finished evaluations (small JSON files, no checkpoints) into a
# directory under docs/ so that they can be committed as they land: a session that stops loses no
# finished evaluation, and `anatlearn study --out DIR --aggregate-only` on a copy rebuilds the tables.
#   scripts/study_snapshot.sh study-out docs/study-run2
set -euo pipefail
src=${1:?usage: study_snapshot.sh STUDY_DIR DEST_DIR}
dest=${2:?usage: study_snapshot.sh STUDY_DIR DEST_DIR}
[ -f "$src/study.json" ] || { echo "study_snapshot.sh: $src/study.json not found (not a study directory)" >&2; exit 2; }
mkdir -p "$dest"
cp "$src/study.json" "$dest/study.json"
[ -f "$src/progress.json" ] && cp "$src/progress.json" "$dest/progress.json"
n=0
for f in "$src"/cells/*/seed-*/eval/budget-*.json; do
  [ -e "$f" ] || continue
  rel=${f#"$src"/cells/}
  mkdir -p "$dest/$(dirname "${rel%/eval/*}")/$(basename "${rel%/eval/*}")"
  cp "$f" "$dest/${rel%/eval/*}/$(basename "$f")"
  n=$((n + 1))
done
echo "study_snapshot.sh: $n evaluation(s) copied to $dest"
