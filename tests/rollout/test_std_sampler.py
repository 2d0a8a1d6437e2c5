"""StdAwareSampler (rft/rollout/std_sampler.py): draws ∝ max(std estimate, floor) without
replacement, the prior of unseen prompts, the momentum update by hand, a checkpoint round trip
that draws identically, and seeding from a mode=extract folder (and that folder's errors)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from rft.errors import DataError
from rft.rollout.std_sampler import EXTRACT_INDEX_FILE, StdAwareSampler

STDS = [0.0, 0.01, 0.1, 0.2, 0.4, 0.8]
FLOOR = 0.05
WEIGHTS = np.maximum(STDS, FLOOR)  # [0.05, 0.05, 0.1, 0.2, 0.4, 0.8]


def seeded(stds=STDS, floor=FLOOR, **kw) -> StdAwareSampler:
    s = StdAwareSampler(len(stds), floor, **kw)
    s.update(range(len(stds)), stds)
    return s


def chi_square(counts: np.ndarray, p: np.ndarray) -> float:
    expected = counts.sum() * p
    return float(((counts - expected) ** 2 / expected).sum())


def test_first_pick_frequencies_follow_max_std_floor():
    """The first index of a draw is a categorical draw ∝ max(std, floor). 5 degrees of freedom:
    the 99.9% quantile of χ² is 20.5; against uniform p the statistic is in the thousands."""
    s = seeded()
    p = WEIGHTS / WEIGHTS.sum()
    np.testing.assert_allclose(s.probabilities(), p, rtol=1e-12)
    rng = np.random.default_rng(0)
    first = np.array([s.draw(rng, 1)[0] for _ in range(20_000)])
    counts = np.bincount(first, minlength=len(STDS))
    assert chi_square(counts, p) < 20.5, counts
    assert chi_square(counts, np.full(len(STDS), 1 / len(STDS))) > 1_000, counts


def test_batch_inclusion_matches_sampling_without_replacement():
    """A batch of 3 distinct prompts: each prompt's inclusion frequency equals the exact
    probability of sequential sampling without replacement ∝ w (enumerated over all ordered
    triples), which is what Gumbel-top-k is."""
    s = seeded()
    w = WEIGHTS
    exact = np.zeros(len(w))
    for a, b, c in itertools.permutations(range(len(w)), 3):
        pr = w[a] / w.sum() * w[b] / (w.sum() - w[a]) * w[c] / (w.sum() - w[a] - w[b])
        exact[[a, b, c]] += pr
    assert exact.sum() == pytest.approx(3.0)
    rng = np.random.default_rng(1)
    M = 20_000
    counts = np.zeros(len(w))
    for _ in range(M):
        d = s.draw(rng, 3)
        assert len(set(d.tolist())) == 3
        counts[d] += 1
    # each inclusion count is binomial(M, exact_i): within 4 standard deviations
    sd = np.sqrt(M * exact * (1 - exact))
    assert np.all(np.abs(counts - M * exact) < 4 * sd), (counts / M, exact)
    assert np.abs(counts / M - 0.5).max() > 0.3  # uniform inclusion would be 0.5 for every prompt


def test_draws_are_distinct_avoid_exclude_and_are_deterministic():
    s = StdAwareSampler(50, 0.02)
    s.update(range(0, 50, 2), np.linspace(0, 1, 25))
    exclude = list(range(10))
    d = s.draw(np.random.default_rng(3), 20, exclude=exclude)
    assert d.dtype == np.int64 and len(d) == 20 and len(set(d.tolist())) == 20
    assert not set(d.tolist()) & set(exclude)
    assert d.tolist() == s.draw(np.random.default_rng(3), 20, exclude=exclude).tolist()
    everything = s.draw(np.random.default_rng(4), 40, exclude=exclude)  # exactly what is left
    assert sorted(everything.tolist()) == list(range(10, 50))
    assert len(s.draw(np.random.default_rng(4), 0)) == 0
    with pytest.raises(ValueError, match="cannot draw 41 distinct prompts: 40 of 50"):
        s.draw(np.random.default_rng(4), 41, exclude=exclude)
    with pytest.raises(IndexError, match="exclude"):
        s.draw(np.random.default_rng(4), 1, exclude=[50])


def test_floor_keeps_a_zero_std_prompt_drawable():
    s = StdAwareSampler(4, 0.1)
    s.update([0, 1, 2, 3], [0.0, 1.0, 1.0, 1.0])
    assert s.probabilities()[0] == pytest.approx(0.1 / 3.1)
    rng = np.random.default_rng(5)
    assert any(0 in s.draw(rng, 1) for _ in range(500))  # expected ~16 times
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="floor"):
            StdAwareSampler(4, bad)


def test_prior_of_unseen_prompts():
    # nothing seen: every weight 1.0, a uniform first draw (prior None)
    s = StdAwareSampler(5, 0.02)
    np.testing.assert_allclose(s.probabilities(), np.full(5, 0.2))
    # prior None: unseen prompts at the mean estimate of the seen ones
    s.update([0, 1], [0.2, 0.6])
    np.testing.assert_allclose(s.weights(), [0.2, 0.6, 0.4, 0.4, 0.4])
    # a given prior, floored like any estimate
    p = StdAwareSampler(5, 0.02, prior=0.3)
    p.update([0, 1], [0.2, 0.6])
    np.testing.assert_allclose(p.weights(), [0.2, 0.6, 0.3, 0.3, 0.3])
    z = StdAwareSampler(3, 0.02, prior=0.0)
    z.update([0], [0.5])
    np.testing.assert_allclose(z.weights(), [0.5, 0.02, 0.02])
    with pytest.raises(ValueError, match="prior"):
        StdAwareSampler(3, 0.02, prior=-1.0)


def test_momentum_update_by_hand():
    s = StdAwareSampler(4, 0.02, momentum=0.75)
    s.update([2], [0.4])
    assert s.estimates[2] == 0.4  # never seen: the observation itself, not 0.25 · 0.4
    s.update([2], [0.0])
    assert s.estimates[2] == pytest.approx(0.75 * 0.4)
    s.update([2, 2, 1], [1.0, 0.0, 0.8])  # twice in one update: in order
    assert s.estimates[2] == pytest.approx(0.75 * (0.75 * 0.3 + 0.25 * 1.0))
    assert s.estimates[1] == 0.8
    assert s.seen.tolist() == [False, True, True, False]
    with pytest.raises(ValueError, match="not finite"):
        s.update([0], [float("nan")])
    with pytest.raises(ValueError, match="2 indices and 1 stds"):
        s.update([0, 1], [0.1])
    with pytest.raises(ValueError, match="momentum"):
        StdAwareSampler(4, 0.02, momentum=1.0)


def test_stats():
    s = StdAwareSampler(4, 0.1)
    st = s.stats()
    assert st["sampler/seen_share"] == 0.0 and st["sampler/std_estimate_mean"] == 0.0
    assert st["sampler/effective_prompts"] == pytest.approx(4.0)
    assert st["sampler/p_max_over_uniform"] == pytest.approx(1.0)
    s.update([0, 1], [0.0, 0.6])  # weights [0.1, 0.6, 0.3, 0.3], p = [0.1, 0.6, 0.3, 0.3] / 1.3
    st = s.stats()
    p = np.array([0.1, 0.6, 0.3, 0.3]) / 1.3
    assert st["sampler/seen_share"] == 0.5
    assert st["sampler/std_estimate_mean"] == pytest.approx(0.3)
    assert st["sampler/floored_share"] == 0.5
    assert st["sampler/effective_prompts"] == pytest.approx(1 / (p**2).sum())
    assert st["sampler/p_max_over_uniform"] == pytest.approx(4 * 0.6 / 1.3)


def test_state_round_trip_gives_identical_next_draws():
    a = StdAwareSampler(30, 0.05, momentum=0.5)
    rng = np.random.default_rng(7)
    for _ in range(3):
        idx = a.draw(rng, 8)
        a.update(idx, rng.random(8))
    state = json.loads(json.dumps(a.state_dict()))  # plain lists and numbers only
    b = StdAwareSampler(30, 0.05, momentum=0.5)
    b.load_state_dict(state)
    for it in range(3):  # the next draws and updates agree, not just the first
        da = a.draw(np.random.default_rng([7, it]), 8)
        db = b.draw(np.random.default_rng([7, it]), 8)
        assert da.tolist() == db.tolist()
        a.update(da, [0.1 * it] * 8)
        b.update(db, [0.1 * it] * 8)
    np.testing.assert_array_equal(a.estimates, b.estimates)
    with pytest.raises(ValueError, match="train set changed"):
        StdAwareSampler(31, 0.05).load_state_dict(state)


# ------------------------------------------------------------------------------ extract
def write_extract(folder, R, indices, split="train", split_size=10):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "rewards.npy", np.asarray(R, dtype=np.float32))
    meta = {"split": split, "split_size": split_size, "indices": indices}
    (folder / EXTRACT_INDEX_FILE).write_text(json.dumps(meta))
    return folder


R3 = [[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.25, 0.5, 0.75, 1.0]]


def test_seed_from_extract_sets_the_std_of_the_sampled_train_prompts(tmp_path):
    folder = write_extract(tmp_path / "ex", R3, [1, 4, 7])
    s = StdAwareSampler(10, 0.02)
    assert s.seed_from_extract(folder) == 3
    expected = np.asarray(R3).std(axis=1)  # population std: [0, 0.5, 0.2795]
    np.testing.assert_allclose(s.estimates[[1, 4, 7]], expected, rtol=1e-6)
    assert s.seen.tolist() == [i in (1, 4, 7) for i in range(10)]
    # prior None: the 7 unseen prompts sit at the mean of the three estimates
    np.testing.assert_allclose(s.weights()[0], expected.mean(), rtol=1e-6)
    t = StdAwareSampler(10, 0.02)
    assert t.seed_from_extract(str(folder / "rewards.npy")) == 3  # the file itself also works
    np.testing.assert_array_equal(s.estimates, t.estimates)


def test_seed_from_extract_errors_name_the_file_and_the_fix(tmp_path):
    s = StdAwareSampler(10, 0.02)
    with pytest.raises(DataError, match=r"nowhere.*not found.*mode=extract run"):
        s.seed_from_extract(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty/rewards.npy not found"):
        s.seed_from_extract(tmp_path / "empty")
    legacy = write_extract(tmp_path / "legacy", R3, [1, 4, 7])
    (legacy / EXTRACT_INDEX_FILE).unlink()
    with pytest.raises(DataError, match=r"prompt_indices.json not found.*diag.split=train"):
        s.seed_from_extract(legacy)
    with pytest.raises(DataError, match=r"sampled the 'val' split.*diag.split=train"):
        s.seed_from_extract(write_extract(tmp_path / "val", R3, [1, 4, 7], split="val"))
    with pytest.raises(DataError, match=r"train set of 12 prompts, this run has 10"):
        s.seed_from_extract(write_extract(tmp_path / "other", R3, [1, 4, 7], split_size=12))
    with pytest.raises(DataError, match=r"2 indices for the 3 rows"):
        s.seed_from_extract(write_extract(tmp_path / "rows", R3, [1, 4]))
    with pytest.raises(DataError, match=r"distinct and in \[0, 10\)"):
        s.seed_from_extract(write_extract(tmp_path / "range", R3, [1, 4, 10]))
    with pytest.raises(DataError, match=r"K >= 2"):
        s.seed_from_extract(write_extract(tmp_path / "k1", [[0.5], [1.0]], [1, 4]))
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "rewards.npy").write_text("not numpy")
    with pytest.raises(DataError, match=r"junk/rewards.npy: not a reward matrix"):
        s.seed_from_extract(junk)
    bad_meta = write_extract(tmp_path / "meta", R3, [1, 4, 7])
    (bad_meta / EXTRACT_INDEX_FILE).write_text('{"indices": [1, 4, 7]}')
    with pytest.raises(DataError, match=r"not the index file of a mode=extract run"):
        s.seed_from_extract(bad_meta)
    assert not s.seen.any()  # nothing half-applied by a refused file


def test_extract_records_the_train_index_of_each_row(prompts_file, tmp_path):
    """mode=extract's prompt_indices.json: row r of rewards.npy / samples.jsonl is train prompt
    indices[r], and the sampler seeds from the real folder."""
    from rft.errors import instantiate
    from rft.train import train
    from tests.conftest import compose_cfg, tiny_overrides

    cfg = compose_cfg(
        *tiny_overrides(prompts_file),
        "mode=extract",
        "diag.n_prompts=5",
        "diag.k_samples=3",
        "diag.batch_prompts=5",
    )
    train(cfg, run_dir=tmp_path / "ex")
    meta = json.loads((tmp_path / "ex" / EXTRACT_INDEX_FILE).read_text())
    task = instantiate(cfg.task, _convert_="none")
    assert meta["split"] == "train" and meta["split_size"] == len(task.train)
    rows = [json.loads(x) for x in (tmp_path / "ex" / "samples.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == [task.train[i].prompt for i in meta["indices"]]
    s = StdAwareSampler(len(task.train), 0.02)
    assert s.seed_from_extract(tmp_path / "ex") == 5
    np.testing.assert_allclose(s.estimates[meta["indices"]], [r["std"] for r in rows], rtol=1e-6)


# ----------------------------------------------------------- statistic="learnability": p(1-p)
def test_learnability_weighs_by_pass_rate_variance_by_hand():
    """Binary rewards, G = 4: pass rates 0, 1/4, 1/2, 1 give p(1-p) = 0, 3/16, 1/4, 0; the
    population std of the same groups is sqrt(p(1-p)), so std² gives the same estimates."""
    rates = [0.0, 0.25, 0.5, 1.0]
    groups = [[1.0] * int(4 * p) + [0.0] * (4 - int(4 * p)) for p in rates]
    stds = [float(np.std(g)) for g in groups]  # ddof=0, as the training loop computes
    by_rate = StdAwareSampler(4, 0.01, statistic="learnability")
    by_rate.update(range(4), stds, pass_rates=rates)
    by_std = StdAwareSampler(4, 0.01, statistic="learnability")
    by_std.update(range(4), stds)
    expected = [0.0, 3 / 16, 1 / 4, 0.0]
    np.testing.assert_allclose(by_rate.estimates, expected, atol=1e-12)
    np.testing.assert_allclose(by_std.estimates, expected, atol=1e-12)
    w = np.maximum(expected, 0.01)
    np.testing.assert_allclose(by_rate.probabilities(), w / w.sum(), rtol=1e-12)
    # p(1-p) concentrates the draw on the frontier more than the std does
    std_mode = seeded(stds, 0.01)
    assert by_rate.probabilities()[2] > std_mode.probabilities()[2]


def test_learnability_with_pass_rates_ignores_a_format_bonus_in_the_std():
    """With a reward of correct + 0.1·format, the std mixes both; the pass rates give p(1-p)
    of the correctness alone."""
    s = StdAwareSampler(2, 0.01, statistic="learnability")
    s.update([0, 1], [0.3, 0.05], pass_rates=[0.5, 0.0])
    np.testing.assert_allclose(s.estimates, [0.25, 0.0])
    assert s.stats()["sampler/learnability_estimate_mean"] == pytest.approx(0.125)


def test_learnability_momentum_and_extract_seed_use_the_variance(tmp_path):
    s = StdAwareSampler(3, 0.01, momentum=0.5, statistic="learnability")
    s.update([0], [0.5])  # 0.25
    s.update([0], [0.0])  # 0.5·0.25 + 0.5·0
    assert s.estimates[0] == pytest.approx(0.125)
    R = np.array([[1, 0, 1, 0], [1, 1, 1, 1]], dtype=float)
    np.save(tmp_path / "rewards.npy", R)
    (tmp_path / EXTRACT_INDEX_FILE).write_text(
        json.dumps({"split": "train", "split_size": 3, "indices": [1, 2]})
    )
    s.seed_from_extract(tmp_path)
    np.testing.assert_allclose(s.estimates[1:], [0.25, 0.0])


def test_learnability_state_does_not_load_into_a_std_sampler():
    s = StdAwareSampler(3, 0.01, statistic="learnability")
    s.update([0], [0.5])
    with pytest.raises(ValueError, match="estimates 'learnability', this sampler weighs by 'std'"):
        StdAwareSampler(3, 0.01).load_state_dict(s.state_dict())
    restored = StdAwareSampler(3, 0.01, statistic="learnability")
    restored.load_state_dict(s.state_dict())
    assert restored.estimates[0] == 0.25
    old = {k: v for k, v in StdAwareSampler(3, 0.01).state_dict().items() if k != "statistic"}
    StdAwareSampler(3, 0.01).load_state_dict(old)  # a state saved before the option: std


@pytest.mark.parametrize(
    "kw,update,message",
    [
        ({"statistic": "variance"}, None, "statistic='variance': choose one of"),
        ({}, ([0], [0.1], [0.5]), "pass_rates are for statistic='learnability'"),
        ({"statistic": "learnability"}, ([0], [0.1], [1.5]), r"pass rates must be in \[0, 1\]"),
    ],
)
def test_learnability_bad_inputs(kw, update, message):
    with pytest.raises(ValueError, match=message):
        s = StdAwareSampler(2, 0.01, **kw)
        s.update(*update)
