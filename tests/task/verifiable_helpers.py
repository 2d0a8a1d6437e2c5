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


ANSWER_WORDS = ["<eos>", "<answer>", "</answer>", *[str(d) for d in range(10)], "so", "is", "the"]


def answer_tokenizer(folder: Path) -> Path:
    """A word-level tokenizer over the answer tags, the digits and three filler words (as
    tests/learning/words.py builds its own): a random tiny policy over it gives an answer in
    the <answer> format about one time in ten, so the format and correctness rewards are
    dense enough to learn from in a few iterations. Unknown prompt words map to <eos>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(
        models.WordLevel({w: i for i, w in enumerate(ANSWER_WORDS)}, unk_token="<eos>")
    )
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with single spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<eos>", pad_token="<eos>", bos_token="<eos>"
    )
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    return folder
