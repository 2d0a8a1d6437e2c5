"""The reward tests share the metric tests' fixtures (WordNet where it is installed)."""

from tests.metrics.conftest import wordnet_reader  # noqa: F401
