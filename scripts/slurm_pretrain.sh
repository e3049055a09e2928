#!/usr/bin/env bash
# Multi-node AnatCL pretraining with torchrun under SLURM (one task per node, all GPUs of each node).
# Usage: sbatch scripts/slurm_pretrain.sh DATA_DIR RUN_DIR [extra anatlearn pretrain options]
#SBATCH --job-name=anatcl
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
set -euo pipefail
DATA=${1:?data directory}; OUT=${2:?run directory}; shift 2
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun \
  --nnodes "$SLURM_NNODES" --nproc-per-node "$SLURM_GPUS_PER_NODE" \
  --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d --rdzv-endpoint "$HEAD:29500" \
  -m anatlearn pretrain --data "$DATA" --out "$OUT" --config anatcl-openbhb "$@"
