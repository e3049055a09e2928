#!/usr/bin/env bash
# GPU checks in one go (what benchmarks/RESULTS.md's GPU section reports). Run from the repository root on a
# machine with a CUDA GPU whose python3 already has torch; wheels of missing pure-Python packages may be put in
# .whl/ beforehand (no network needed). Writes into ${OUT:-gpu-out}.
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.txt"
echo "== 1. AMP pretraining step (images/s, utilisation, memory)"
timeout 300 python3 benchmarks/bench_gpu.py --out "$OUT/gpu_step.md" --json "$OUT/gpu_step.json" ${GPU_QUICK:+--quick}
echo "== 2. DDP over NCCL (torchrun, one process per GPU)"
NG=$(nvidia-smi -L | wc -l)
timeout 120 python3 -m torch.distributed.run --standalone --nproc_per_node="$NG" benchmarks/bench_gpu.py --ddp \
  --out "$OUT/gpu_ddp.json" ${GPU_QUICK:+--quick}
echo "== 3. End to end: anatlearn pretrain on GPU (loader included), AMP auto"
# E2E_N subjects at 121x145x121 (about two thirds train, batch 32), E2E_EPOCHS epochs, for each loader size in
# E2E_WORKERS. The training loop builds its DataLoader per epoch (exact resume mid-epoch), so each epoch's first
# step carries the workers' start-up; the report gives that step apart from the steady steps after it.
D=/tmp/cohort; N=${E2E_N:-160}
/usr/bin/time -f "synth of $N subjects: %e s" timeout 300 python3 -m anatlearn synth --out "$D" -n "$N" \
  --shape 121 145 121 --seed 0 > "$OUT/synth.log" 2>&1; tail -2 "$OUT/synth.log"
for nw in ${E2E_WORKERS:-8 14}; do
  rm -rf /tmp/run-e2e
  timeout 240 python3 -m anatlearn pretrain --data "$D" --method anatcl-global --out /tmp/run-e2e \
    --epochs "${E2E_EPOCHS:-3}" --batch-size 32 --width 1 --num-workers "$nw" > "$OUT/e2e-$nw.log" 2>&1
  echo "rc=$? (num_workers=$nw)"; tail -2 "$OUT/e2e-$nw.log"
  NW=$nw python3 - <<'PY' | tee -a "$OUT/gpu_e2e.txt"
import os
import pandas as pd
m = pd.read_csv("/tmp/run-e2e/metrics.csv")
first = m.groupby("epoch").head(1)
steady = m.drop(first.index)
print(f"num_workers={os.environ['NW']}: {len(m)} steps over {m.epoch.nunique()} epochs; subjects/s (2 views each): "
      f"steady steps median {steady.samples_per_s.median():.1f} (n={len(steady)}), "
      f"first step of an epoch median {first.samples_per_s.median():.1f}")
PY
done
