"""A wrong value for any knob of any schema ends cleanly: one ConfigError / DataError (or an
OmegaConf / Hydra error while composing, which run.py prints as one line too), or a run that
finishes; never another exception (property-based, hypothesis).

The knobs and their wrong values come from the schemas (tests/integration/wrong_values.py: wrong
types, negative and zero counts, NaN and infinities, empty strings, values outside an Enum,
paths that do not exist or cannot be written). Each example runs in-process through
rft.train.train on its family's smallest budget (about a second on the tiny model).

CI draws a fixed, small set (``derandomize``); ``HYPOTHESIS_PROFILE=thorough`` draws hundreds.
``python -m tests.integration.wrong_values`` runs every case once and prints the unclean ones.
Cases whose check belongs in a file being refactored (rft/alg/*, rft/train.py) are listed in
``wrong_values.KNOWN`` and run here as strict xfails: adding the check makes them pass, and
the list entry must then go.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rft.train import train
from tests.conftest import compose_cfg
from tests.integration.wrong_values import (
    FAMILIES,
    KNOWN,
    base_overrides,
    cases,
    data,
    outcome,
)

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
CASES = [c for c in cases() if c not in KNOWN]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return data(tmp_path_factory.mktemp("data"))


def run_case(files, run_dir, family: str, override: str) -> str:
    exc = None
    try:
        cfg = compose_cfg(*base_overrides(family, files), override)
        train(cfg, run_dir=run_dir)
    except Exception as e:  # noqa: BLE001 - classified below
        exc = e
    return outcome(exc)


@settings(
    max_examples=400 if THOROUGH else 30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=st.sampled_from(CASES))
def test_a_wrong_value_for_any_knob_ends_cleanly(files, tmp_path_factory, case):
    family, override = case
    got = run_case(files, tmp_path_factory.mktemp("run"), family, override)
    assert not got.startswith("bad"), f"{family}: {override} -> {got}"


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=why), id=f"{c[0]}:{c[1]}")
        for c, why in KNOWN.items()
    ]
    or [pytest.param(None, marks=pytest.mark.skip(reason="no known unclean case"))],
)
def test_known_unclean_cases_still_fail(files, tmp_path, case):
    """Each entry of wrong_values.KNOWN: a check for the lead to add (it xfails until then)."""
    family, override = case
    got = run_case(files, tmp_path / "run", family, override)
    assert not got.startswith("bad"), f"{family}: {override} -> {got}"


# the families whose base differs in more than the reward (those share ppo's base); all of
# them with HYPOTHESIS_PROFILE=thorough
BASES = ("ppo", "grpo", "a_lol", "dpo", "imdb", "commongen")


@pytest.mark.parametrize("family", list(FAMILIES) if THOROUGH else BASES)
def test_the_bases_run_cleanly(files, tmp_path, family):
    """The premise: each family's base config trains (a broken base would make every example
    drawn from it a trivially clean error)."""
    assert run_case(files, tmp_path / family, family, "seed=1") == "clean"
