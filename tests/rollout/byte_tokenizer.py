"""A small byte-level BPE tokenizer built in code (no network): a guide tokenizer that differs
from the policy's GPT-2 one, for cross-tokenizer tests."""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "the film was good bad great awful lovely boring fun dull story actor plot scene",
    "music ending long short happy sad review this movie is a great film with a good story",
] * 20


def build_byte_tokenizer(folder: Path) -> Path:
    """Train a 300-token byte-level BPE on a tiny corpus and save_pretrained it into ``folder``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS,
        vocab_size=300,
        min_frequency=1,
        special_tokens=["<|eos|>", "<|pad|>"],
        show_progress=False,
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        bos_token="<|eos|>",
    )
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    return folder
