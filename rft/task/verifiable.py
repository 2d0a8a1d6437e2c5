"""What the verifiable tasks share: a program checks each completion (rft/reward/verify.py,
rft/reward/code.py), and the prompt asks for the answer in a form that program reads.

- **Prompts.** ``chat_template``: ``auto`` formats each prompt with the chat template of the
  run's tokenizer (``task.model`` is the run's ``model`` config, interpolated) when it has
  one, ``on`` requires one, ``off`` never uses one. Chat prompts are one user message, the
  question followed by the instruction (after an optional ``system_prompt``), ending with the
  template's generation prompt; plain prompts fill ``prompt_template`` (``{question}`` and
  ``{instruction}``, replaced literally, so code with braces stays intact).
- **Gold.** Each example's ``references`` is ``[Gold(answer, entry)]`` (what a verifier
  reads: the answer string and, where its checker needs them, the generator's entry or the
  code problem); ``reference`` is the SFT target, the solution written in the asked format.
- **Evaluation.** ``verifiable = True`` and ``verifier()`` (the task's own check, binary)
  make rft.eval report pass@1, pass@k for ``pass_k``, maj@k and the format-error share beside
  the reward (rft/eval/verifiable.py), whatever reward trains.
"""

from __future__ import annotations

import logging

from rft.config import choice
from rft.errors import ConfigError
from rft.task.base import Task

log = logging.getLogger(__name__)


def fill(template: str, question: str, instruction: str) -> str:
    """``template`` with ``{question}`` and ``{instruction}`` replaced (no other brace is
    special).

    >>> fill("Q: {question} ({instruction}) {x}", "1+1?", "be brief")
    'Q: 1+1? (be brief) {x}'
    """
    return template.replace("{instruction}", instruction).replace("{question}", question)


class VerifiableTask(Task):
    """Base of the tasks whose answers a program checks (see the module docstring)."""

    verifiable = True
    default_instruction = ""

    def __init__(self, cfg):
        super().__init__(cfg)
        self._verifier = None
        instruction = cfg.get("instruction")
        self.instruction = self.default_instruction if instruction is None else instruction
        self.pass_k = [int(k) for k in cfg.get("pass_k") or [1]]
        if any(k < 1 for k in self.pass_k):
            raise ConfigError(f"task.pass_k={self.pass_k}: every k must be ≥ 1.")
        self.tokenizer = self._chat_tokenizer(choice(cfg.get("chat_template", "auto")))

    def _chat_tokenizer(self, mode: str):
        """The tokenizer whose chat template formats prompts, or None for plain prompts."""
        if mode == "off":
            return None
        model = self.cfg.get("model")
        if model is None:
            if mode == "on":
                raise ConfigError(
                    "task.chat_template=on but task.model is null: the task needs the model "
                    "config to load its tokenizer's chat template (task.model=${model})."
                )
            return None
        from rft.model.load import load_tokenizer

        tok = load_tokenizer(model)
        if getattr(tok, "chat_template", None):
            return tok
        if mode == "on":
            raise ConfigError(
                f"task.chat_template=on but the tokenizer of model={model.get('name')} has no "
                "chat template. Use task.chat_template=auto (plain prompts for such a model) "
                "or off."
            )
        return None

    @property
    def chat(self) -> bool:
        return self.tokenizer is not None

    def make_prompt(self, question: str) -> str:
        """The prompt text for ``question`` (module docstring)."""
        if not self.chat:
            return fill(self.cfg.prompt_template, question, self.instruction)
        user = f"{question}\n\n{self.instruction}" if self.instruction else question
        messages = [{"role": "user", "content": user}]
        if self.cfg.get("system_prompt"):
            messages.insert(0, {"role": "system", "content": self.cfg.system_prompt})
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def verifier(self):
        """The task's own check (a binary rft.reward.verify.Verifier), built once."""
        if self._verifier is None:
            self._verifier = self.build_verifier()
        return self._verifier

    def build_verifier(self):
        raise NotImplementedError
