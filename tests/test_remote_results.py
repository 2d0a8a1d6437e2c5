"""scripts/remote_results.py's arithmetic (issue #27's tables): the guide accounting over a
resumed run, the judge's score histogram and the agreement statistics, against hand-computed
values. The runs themselves are scheduled by hand (scripts/remote_experiments.sh)."""

from __future__ import annotations

import math

import numpy as np
import pytest


def row(it, hits, misses, requests, latency=1.0):
    return {
        "iteration": it,
        "remote/guide/cache_hits": hits,
        "remote/guide/cache_misses": misses,
        "remote/guide/requests": requests,
        "remote/guide/prompt_tokens": 10.0 * requests,
        "remote/guide/latency_mean_s": latency,
        "time/rollout_s": 2.0 * it,
    }


def test_accounting_adds_each_process_of_a_resumed_run_once():
    """The counters are per-process totals: a resumed process starts them again, so the run's
    total is the last row of each process, not the sum of every row (nor the last row)."""
    from scripts.remote_results import accounting

    rows = [
        row(1, 0, 4, 4),
        row(2, 0, 9, 9),  # process 1 ends: 9 requests
        row(2, 5, 0, 0, latency=3.0),  # process 2 replays iteration 2 from the cache
        row(3, 5, 6, 6),  # ...and ends with 6 new requests
    ]
    acc = accounting(rows)
    assert acc["processes"] == 2
    assert acc["requests"] == 9 + 6
    assert acc["prompt_tokens"] == 90 + 60
    assert acc["cache_hits"] == 5 and acc["cache_misses"] == 9 + 6
    assert acc["iterations"] == 3
    assert acc["latency_mean_s"] == pytest.approx(1.5)
    assert (acc["latency_min_s"], acc["latency_max_s"]) == (1.0, 3.0)
    assert acc["rollout_s_per_iteration"] == pytest.approx((2 + 4 + 4 + 6) / 4)


def test_policy_curve_reads_the_policys_own_rollouts_and_keeps_a_replayed_rows_last():
    from scripts.remote_results import policy_curve

    rows = [
        {"iteration": 0, "test_init/reward_mean": 0.5},
        {"iteration": 1, "reward/mean": 0.9, "guided/reward_policy_only": 0.2},
        {"iteration": 2, "reward/mean": 0.8, "guided/reward_policy_only": float("nan")},
        {"iteration": 3, "reward/mean": 0.7, "guided/reward_policy_only": 0.4},
        {"iteration": 3, "reward/mean": 0.6, "guided/reward_policy_only": 0.5},  # resumed
    ]
    assert policy_curve(rows, "ppo") == ([1, 2, 3], [0.9, 0.8, 0.6])
    assert policy_curve(rows, "dlols") == ([1, 3], [0.2, 0.5])  # every episode restarted in 2


def test_plot_guide_draws_what_exists_and_nothing_without_runs(tmp_path):
    import json

    from scripts.remote_results import plot_guide

    assert plot_guide(tmp_path, {"runs": {}}, tmp_path / "none.png") is None
    d = tmp_path / "guide" / "ppo_pp_remote_s0"
    d.mkdir(parents=True)
    rows = [{"iteration": i, "guided/reward_policy_only": 0.1 * i} for i in (1, 2, 3)]
    (d / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = {"runs": {"ppo_pp_remote_s0": {"mean": 0.7, "se": 0.02}}, "init": {"mean": 0.6}}
    assert plot_guide(tmp_path, res, tmp_path / "g.png") == tmp_path / "g.png"
    assert (tmp_path / "g.png").stat().st_size > 10_000


def test_hist_counts_scores_in_order_and_unparsable_last():
    from scripts.remote_results import hist

    assert hist([3.0, None, 10.0, 3.0, 0.0]) == {"0": 1, "3": 2, "10": 1, "unparsable": 1}
    # logprob-weighted scores are counted at the nearest integer
    assert hist([2.6, 3.4, 0.2]) == {"0": 1, "3": 2}
    assert list(hist([None, 2.0])) == ["2", "unparsable"]


def test_correlations_by_hand():
    from scripts.remote_results import correlations

    a = np.array([0.1, 0.4, 0.6, 0.9, np.nan])
    b = np.array([0.2, 0.7, 0.3, 0.8, 0.5])
    c = correlations(a, b)
    assert c["n"] == 4  # the nan pair is dropped
    # Pearson of (.1,.4,.6,.9) and (.2,.7,.3,.8): means .5 and .5; deviations (-.4,-.1,.1,.4), (-.3,.2,-.2,.3)
    num = 0.12 - 0.02 - 0.02 + 0.12
    den = math.sqrt((0.16 + 0.01 + 0.01 + 0.16) * (0.09 + 0.04 + 0.04 + 0.09))
    assert c["pearson"] == pytest.approx(num / den)
    # ranks (1,2,3,4) and (1,3,2,4): Spearman = 1 - 6 * 2 / (4 * 15)
    assert c["spearman"] == pytest.approx(1 - 6 * 2 / 60)
    # labels at 0.5: a = (0,0,1,1), b = (0,1,0,1) -> agree on 2 of 4
    assert c["agree_at_0.5"] == 0.5
    assert c["positive_share"] == [0.5, 0.5]
    # at the medians (a: .5, b: .5): the same labels here
    assert c["agree_at_median"] == 0.5


def test_correlations_of_a_constant_scorer_are_nan_not_an_error():
    from scripts.remote_results import correlations

    c = correlations(np.array([0.5, 0.5, 0.5]), np.array([0.1, 0.2, 0.3]))
    assert c["n"] == 3 and math.isnan(c["pearson"]) and math.isnan(c["spearman"])


def test_per_prompt_means_each_prompts_samples():
    from scripts.remote_results import per_prompt

    assert per_prompt([1, 0, 0.5, 0.5, 0, 0], 2).tolist() == [0.5, 0.5, 0.0]
