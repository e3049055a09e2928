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
D=/tmp/cohort; python3 -m anatlearn synth "$D" -n 96 --shape 121 145 121 --seed 0 >/dev/null 2>&1 \
  || python3 -m anatlearn synth "$D" -n 96 --shape 121 145 121 --seed 0
for nw in 8; do
  timeout 240 python3 -m anatlearn pretrain --data "$D" --method anatcl-global --out /tmp/run-e2e --epochs 2 \
    --batch-size 32 --width 1 --num-workers $nw > "$OUT/e2e.log" 2>&1
  echo "rc=$? (num_workers=$nw)"; tail -3 "$OUT/e2e.log"
  python3 - <<'PY' | tee "$OUT/gpu_e2e.txt"
import pandas as pd
m = pd.read_csv("/tmp/run-e2e/metrics.csv")
steady = m[m.epoch == m.epoch.max()]["samples_per_s"]
print(f"end-to-end subjects/s (epoch 2 median, 2 views each, loader included): {steady.median():.1f}; "
      f"images/s {2 * steady.median():.1f}; steps {len(m)}")
PY
done
