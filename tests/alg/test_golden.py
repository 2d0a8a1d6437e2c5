"""Behaviour is pinned: every ``alg=`` option's golden tiny run (tests/alg/golden.py) ends with
the metrics, per-iteration records and evaluation samples recorded in tests/alg/golden.json.

A refactor must keep them; a change meant to alter the numbers records the table again
(``python -m tests.alg.golden --record``) and says why in its commit."""

from __future__ import annotations

import json

import pytest

from tests.alg.golden import CASES, GOLDEN, differences, library_versions, run_case

TABLE = json.loads(GOLDEN.read_text())

# Relative tolerance: CI may run on a CPU whose kernels round sums differently; a behaviour
# change moves these numbers by far more (a sampled token, a loss term, a step).
REL = 1e-4


@pytest.mark.parametrize("alg", list(CASES))
def test_golden_run_is_unchanged(alg, tmp_path):
    recorded = TABLE["_versions"]
    if library_versions() != recorded:
        pytest.skip(f"golden table recorded with {recorded}, installed {library_versions()}")
    diffs = differences(TABLE[alg], run_case(alg, tmp_path), rel=REL)
    assert not diffs, f"alg={alg}: {len(diffs)} differences from tests/alg/golden.json:\n" + (
        "\n".join(diffs[:30])
    )


def test_every_alg_option_has_a_golden_case():
    from tests.conftest import CONF

    options = sorted(p.stem for p in (CONF / "alg").glob("*.yaml"))
    assert sorted(CASES) == options
    assert set(CASES) <= set(TABLE)
