"""Small reference rewards, also handy as templates for your own."""

from __future__ import annotations


def length_reward(
    prompts: list[str], completions: list[str], references=None, target_words: int = 30
) -> list[float]:
    """1 at ``target_words`` words, falling linearly to 0 at twice that or at none.

    >>> length_reward(["p", "p"], ["a b c", ""], [None, None], target_words=3)
    [1.0, 0.0]
    """
    return [max(0.0, 1.0 - abs(len(c.split()) - target_words) / target_words) for c in completions]
