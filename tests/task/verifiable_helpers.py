"""Helpers of the verifiable-task tests: a tiny tokenizer with a chat template, and tasks
composed through the config as a run composes them."""

from __future__ import annotations

from pathlib import Path

from rft.errors import instantiate
from tests.conftest import compose_cfg

# A ChatML-like template, as SmolLM2's (without its default system prompt)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def chat_tokenizer(folder: Path) -> Path:
    """The GPT-2 tokenizer of model=tiny, saved with a chat template into ``folder``."""
    from rft.model.load import _tiny_tokenizer

    tok = _tiny_tokenizer(None)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    return folder


def build(task: str, *overrides: str):
    return instantiate(compose_cfg(f"task={task}", "model=tiny", *overrides).task, _convert_="none")
