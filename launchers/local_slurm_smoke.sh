#!/usr/bin/env bash
# Two tiny training jobs through the real sbatch path of a local cluster
# (sudo scripts/local_slurm/start.sh first; IMDB data via RFT_DATA_DIR, as experiment=debug needs);
# about a minute. Extra arguments are Hydra overrides.
cd "$(dirname "$0")/.." && exec python run.py --multirun hardware=slurm_cpu experiment=debug \
  hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=2 hydra.launcher.timeout_min=10 \
  alg.lr=1e-5,1e-4 "$@"
