#!/usr/bin/env bash
# Copy a running or stopped study's finished evaluations (small JSON files, no checkpoints) into a
# directory under docs/ so that they can be committed as they land: a session that stops loses no
# finished evaluation. Then the tables and figure so far are rebuilt from the copied evaluations alone
# (`anatlearn study --aggregate-only` on a temporary study directory) into DEST/summary.md and DEST/results/,
# and every table of the write-up into DEST/tables.md (studies/tables.py); NO_AGGREGATE=1 skips that.
#   studies/snapshot.sh study-out docs/study-run2
set -euo pipefail
src=${1:?usage: studies/snapshot.sh STUDY_DIR DEST_DIR}
dest=${2:?usage: studies/snapshot.sh STUDY_DIR DEST_DIR}
[ -f "$src/study.json" ] || { echo "studies/snapshot.sh: $src/study.json not found (not a study directory)" >&2; exit 2; }
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
echo "studies/snapshot.sh: $n evaluation(s) copied to $dest"
[ -n "${NO_AGGREGATE:-}" ] && exit 0
anatlearn=${ANATLEARN:-$(command -v anatlearn || echo .venv/bin/anatlearn)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
work="$tmp/$(basename "$src")"  # the summary names the study directory by its basename
bash "$(dirname "$0")/restore.sh" "$dest" "$work" > /dev/null
"$anatlearn" study --out "$work" --aggregate-only > /dev/null
rm -rf "$dest/results"
cp -r "$work/results" "$dest/results"
cp "$work/summary.md" "$dest/summary.md"
python=${PYTHON:-$(dirname "$anatlearn")/python}
root=$(cd "$(dirname "$0")/.." && pwd)  # the repository, where the studies package is
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$python" -m studies.tables "$dest/results" > "$tmp/tables.md"
mv "$tmp/tables.md" "$dest/tables.md"
echo "studies/snapshot.sh: tables so far in $dest/summary.md, $dest/tables.md and $dest/results/"
