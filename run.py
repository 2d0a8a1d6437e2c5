"""rft's command line: compose an experiment from config groups and train it.

python run.py task=imdb alg=ppo
python run.py --multirun task=imdb alg=ppo alg.lr=1e-6,1e-5
python run.py --help                  # groups, options and the composed config
rft explain alg=ppo                   # every knob: value, help, the file that set it
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

import rft  # noqa: F401  (registers the config schemas)
from rft.alg.schemas import check_renamed
from rft.errors import RFTError

log = logging.getLogger("rft")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from rft.train import train

    try:
        metrics = train(cfg)
    except RFTError as e:
        # One clear message, no library traceback: the message names the key/file and the fix.
        log.error("%s", e)
        fail(e)
    # The return value is what Hydra sweepers optimise.
    return metrics.get("test/reward_mean")


def fail(e: RFTError) -> None:
    print(f"\nrft: error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    try:
        check_renamed(sys.argv[1:])  # an old key name: one line naming the new one
    except RFTError as e:
        fail(e)
    main()
