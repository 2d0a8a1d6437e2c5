"""Shared by the metric and reward tests: WordNet (METEOR) where it is installed."""

from __future__ import annotations

import pytest

from rft.metrics import MetricUnavailable


@pytest.fixture(scope="session")
def wordnet_reader():
    """nltk's WordNet from rft's data folder; the test skips (with the fix) where it is absent,
    as data-dependent tests here do (CI builds it: make install runs scripts/setup_wordnet.py)."""
    from rft.metrics import wordnet

    try:
        return wordnet.load()
    except MetricUnavailable as e:
        pytest.skip(str(e))
