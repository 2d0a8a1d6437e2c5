"""VADER lexicon sentiment (Hutto & Gilbert 2014): fully offline, no model weights.

reward = (compound + 1) / 2 in [0, 1], the same range as a classifier's P(positive).
"""

from __future__ import annotations

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


class VaderReward:
    """VADER compound sentiment of the completion, mapped to [0, 1].

    >>> r = VaderReward(); s = r(["p"], ["a wonderful, great film"], [None]); s[0] > 0.5
    True
    """

    def __init__(self, include_prompt: bool = False):
        self.include_prompt = include_prompt
        self.analyzer = SentimentIntensityAnalyzer()

    def __call__(self, prompts: list[str], completions: list[str], references=None) -> list[float]:
        texts = (
            [p + c for p, c in zip(prompts, completions)] if self.include_prompt else completions
        )
        return [(self.analyzer.polarity_scores(t)["compound"] + 1.0) / 2.0 for t in texts]
