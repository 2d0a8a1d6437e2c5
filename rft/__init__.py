"""rft: reinforcement finetuning of language models (SFT, PPO, A-LoL, guide-policy RL,
vanishing-gradient diagnostics), composed with Hydra and run with PyTorch Lightning."""

from rft import config as _config  # noqa: F401  (registers the config schemas)
from rft.alg import schemas as _alg_schemas

_alg_schemas.register()

__version__ = "0.1.0"
