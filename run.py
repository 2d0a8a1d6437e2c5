"""rft's command line: compose an experiment from config groups and train it.

python run.py task=imdb alg=ppo
python run.py --multirun task=imdb alg=ppo alg.lr=1e-6,1e-5
python run.py --help                  # groups, options and the composed config
rft explain alg=ppo                   # every knob: value, help, the file that set it
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import rft  # noqa: F401  (registers the config schemas)
from rft import door


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from rft.train import train

    with door.task(cfg):  # a user error: logged to run.log, raised as one RFTError
        metrics = train(cfg)
    # The return value is what Hydra sweepers optimise.
    return metrics.get("test/reward_mean")


if __name__ == "__main__":
    # every error a user can cause, composing or running: `rft: error: <one line>`, exit code 2
    door.cli(main)
