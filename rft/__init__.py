"""rft: reinforcement finetuning of language models (SFT, PPO, A-LoL, guide-policy RL,
vanishing-gradient diagnostics), composed with Hydra and run with PyTorch Lightning."""

from omegaconf import OmegaConf

from rft import config as _config  # noqa: F401  (registers the config schemas)
from rft.alg import schemas as _alg_schemas
from rft.help import groups_help as _groups_help

_alg_schemas.register()
# `python run.py --help` lists the real choices of each group (conf/config.yaml's template)
OmegaConf.register_new_resolver("rft_groups", _groups_help, replace=True)

__version__ = "0.1.0"
