#!/usr/bin/env bash
# Embed a large prepared cohort with torchrun under SLURM: one task per node, one process per GPU; each
# rank embeds a disjoint share of fixed 64-subject chunks into OUT.parts/ and rank 0 writes the one table.
# OUT must be on a filesystem every node sees. If the job is killed (time limit, pre-emption), submit the
# same command again: chunks already written are skipped; other weights or options into the same OUT are
# refused (OUT.parts/fingerprint.json).
# Usage: sbatch scripts/slurm_embed.sh WEIGHTS DATA_DIR OUT.parquet [extra anatlearn embed options]
#   CPU-only nodes: set --gpus-per-node=0 and NPROC (e.g. 2 processes per node); --device auto picks the CPU there.
#SBATCH --job-name=anatlearn-embed
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=04:00:00
#SBATCH --requeue
set -euo pipefail
WEIGHTS=${1:?weights}; DATA=${2:?data directory}; OUT=${3:?output table}; shift 3
NPROC=${NPROC:-${SLURM_GPUS_PER_NODE:-1}}
DEVICE=$([ "${SLURM_GPUS_PER_NODE:-0}" != "0" ] && echo cuda || echo cpu)
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun \
  --nnodes "$SLURM_NNODES" --nproc-per-node "$NPROC" \
  --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d --rdzv-endpoint "$HEAD:29500" \
  -m anatlearn embed --weights "$WEIGHTS" --data "$DATA" --out "$OUT" --device "$DEVICE" --workers 4 "$@"
