#!/usr/bin/env bash
# A sweep on a SLURM GPU cluster, one job per run (docs/slurm.md). Arguments are Hydra overrides:
#   launchers/slurm_sweep.sh task=imdb alg=ppo alg.lr=1e-6,1e-5 seed=0,1,2 hydra.launcher.partition=a100
cd "$(dirname "$0")/.." && exec python run.py --multirun hardware=slurm_gpu "$@"
