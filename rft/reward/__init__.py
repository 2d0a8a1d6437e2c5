"""Rewards: callables ``(prompts, completions, references) -> one float per completion``.

Hydra's ``_target_`` is the registry: a reward is one importable callable plus one YAML file.
``build_reward`` wraps whatever the config names in ``CheckedReward``, which scores in batches
and turns a wrong count or a NaN into one clear error.
"""

from rft.reward.base import CheckedReward, build_reward

__all__ = ["CheckedReward", "build_reward"]
