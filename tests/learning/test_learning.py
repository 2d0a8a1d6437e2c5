"""Learning tests: every training family must move its objective on a task built for it, and a
sign-flipped control through the same code path must not.

The task (tests/learning/words.py): a tiny GPT-2 over a 16-word vocabulary, the reward R = share
of GOOD words in the completion (a random policy scores ≈ 0.5), 8-token completions, 32 test
prompts evaluated with the fixed eval seed. The control rewards 1 - R (``+reward.flip=true``):
a correct algorithm then makes GOOD words rarer, so the good share must fall. A flipped
advantage sign, an A-LoL variant mapped to plain NLL or a loss that ignores its weights all fail
here; the end-to-end tests elsewhere only check that parameters changed.

Margins were set from 3 seeds per setting (numbers in each test's comment); the assertions use
seed 0 only and sit several seed-to-seed spreads away from both the untrained policy and the
control. All learning tests together take about 3 minutes on one thread.
"""

from __future__ import annotations

import pytest

from rft.model.load import load_model
from rft.train import train
from tests.conftest import compose_cfg
from tests.learning.words import reference_nll, word_overrides

ALOL_VARIANTS = ["wbc", "r_gold", "r_lol", "a_lol", "a_lol_ref_free", "a_lol_seq", "a_lol_kl"]
GUIDED = ["ppo_pp", "aggrevated", "lols", "dlols"]


PPO_LEARN = (
    "alg.n_iterations=6",
    "alg.rollout_prompts=16",
    "alg.minibatch_size=8",
    "alg.eval_every=0",
    "alg.lr=3e-3",
    "alg.score_batch_size=16",
)
OFFLINE_LEARN = (
    "alg.max_steps=24",
    "alg.batch_size=8",
    "alg.eval_every=0",
    "alg.lr=3e-3",
    "alg.n_train_pairs=-1",
    "alg.score_batch_size=32",
    "alg.value.n_prompts=16",
    "alg.value.epochs=2",
    "alg.value.batch_size=8",
    "eval.before_training=false",
)
# The untrained policy's good share on the test prompts (fixed eval seed): 0.512.
INIT_GOOD = 0.512


def good_share_after(words, tmp_path, alg: str, *extra: str, flip: bool = False) -> float:
    """Train, then the GOOD share of the test samples (1 - the logged reward when flipped)."""
    over = word_overrides(words, None, f"alg={alg}", *extra)
    if flip:
        over.append("+reward.flip=true")
    m = train(compose_cfg(*over), run_dir=tmp_path / ("flip" if flip else "run"))
    return 1.0 - m["test/reward_mean"] if flip else m["test/reward_mean"]


# ----------------------------------------------------------------------------- PPO, guided
# Good share (seeds 0/1/2; flipped control in brackets), untrained ≈ 0.5:
#   ppo (6 iterations)      0.746 0.738 0.812  [0.285 0.199 0.324]
#   ppo_pp (12 iterations)  0.812 0.707 0.750  [0.195 0.180 0.223]
#   aggrevated              0.688 0.672 0.695  [0.277 0.344 0.254]
#   lols                    0.805 0.734 0.809  [0.242 0.191 0.258]
#   dlols                   0.820 0.766 0.695  [0.285 0.250 0.285]
@pytest.mark.parametrize("alg", ["ppo"])
def test_ppo_learns_and_flipped_reward_unlearns(words, tmp_path, alg):
    good = good_share_after(words, tmp_path, alg, *PPO_LEARN)
    flipped = good_share_after(words, tmp_path, alg, *PPO_LEARN, flip=True)
    assert good > INIT_GOOD + 0.15, good
    assert flipped < INIT_GOOD - 0.12, flipped


@pytest.mark.parametrize("alg", GUIDED)
def test_guided_learns_and_flipped_reward_unlearns(words, tmp_path, alg):
    extra = (*PPO_LEARN, "alg.n_iterations=12")
    good = good_share_after(words, tmp_path, alg, *extra)
    flipped = good_share_after(words, tmp_path, alg, *extra, flip=True)
    assert good > INIT_GOOD + 0.12, good
    assert flipped < INIT_GOOD - 0.12, flipped


# ----------------------------------------------------------------------------- A2C, TRPO
# Good share (seeds 0/1/2; flipped control in brackets), untrained ≈ 0.5, PPO_LEARN's rollouts:
#   a2c, lr 1e-3, 6 iterations (6 optimizer steps)     0.754 0.805 0.816  [0.270 0.285 0.266]
#     (lr 3e-3: 0.637 0.797 0.789 [0.488 0.160 0.172]: RMSprop's first steps are ≈ 10 × lr)
#   trpo, max_kl 0.05, 10 iterations                    0.711 0.684 0.672  [0.273 0.328 0.359]
#     (max_kl 0.01, 6 iterations: 0.559 0.613 0.590 [0.480 0.449 0.449]: too little KL budget)
A2C_LEARN = (*PPO_LEARN, "alg.lr=1e-3")
TRPO_LEARN = (
    *PPO_LEARN,
    "alg.n_iterations=10",
    "alg.max_kl=0.05",
    "alg.micro_batch_size=16",
)


@pytest.mark.parametrize(
    "alg, extra, margin", [("a2c", A2C_LEARN, 0.15), ("trpo", TRPO_LEARN, 0.12)]
)
def test_a2c_and_trpo_learn_and_flipped_reward_unlearns(words, tmp_path, alg, extra, margin):
    good = good_share_after(words, tmp_path, alg, *extra)
    flipped = good_share_after(words, tmp_path, alg, *extra, flip=True)
    assert good > INIT_GOOD + margin, good
    assert flipped < INIT_GOOD - margin, flipped


# ----------------------------------------------------------------------------- group family
GROUP_LEARN = (
    "alg.n_iterations=6",
    "alg.rollout_prompts=8",
    "alg.samples_per_prompt=4",
    "alg.minibatch_size=8",
    "alg.micro_batch_size=8",
    "alg.eval_every=0",
    "alg.lr=3e-3",
    "alg.score_batch_size=32",
)


# Good share after 6 batches of 8 prompts × G = 4 (seeds 0/1/2; flipped control in brackets):
#   grpo          0.883 0.863 0.895  [0.137 0.078 0.117]
#   dr_grpo       0.879 0.895 0.867  [0.125 0.078 0.094]
#   dapo          0.906 0.879 0.852  [0.098 0.078 0.109]
#   rloo          0.883 0.848 0.902  [0.125 0.059 0.129]
#   reinforce_pp  0.945 0.887 0.898  [0.062 0.047 0.105]
#   gspo          0.879 0.914 0.863  [0.121 0.094 0.160]
@pytest.mark.parametrize("alg", ["grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp", "gspo"])
def test_group_family_learns_and_flipped_reward_unlearns(words, tmp_path, alg):
    good = good_share_after(words, tmp_path, alg, *GROUP_LEARN)
    flipped = good_share_after(words, tmp_path, alg, *GROUP_LEARN, flip=True)
    assert good > INIT_GOOD + 0.25, good
    assert flipped < INIT_GOOD - 0.25, flipped


# ----------------------------------------------------------------------------- A-LoL family
# Good share after 24 steps on pairs whose references hold a random share of good words
# (seeds 0/1/2; flipped control in brackets). The A-LoL variants run fewer steps (the budget
# scales with the share of A > 0) and learn slower than the reward-weighted baselines:
#   nll             0.520 0.500 0.551
#   wbc             0.680 0.730 0.711  [0.336 0.355 0.336]
#   r_gold          0.703 0.785 0.770  [0.238 0.285 0.312]
#   r_lol           0.691 0.730 0.758  [0.348 0.359 0.332]
#   a_lol           0.590 0.676 0.734  [0.289 0.211 0.297]
#   a_lol_ref_free  0.602 0.660 0.723  [0.309 0.215 0.340]
#   a_lol_seq       0.656 0.750 0.750  [0.316 0.156 0.168]
#   a_lol_kl        0.660 0.707 0.750  [0.344 0.234 0.293]
@pytest.fixture(scope="module")
def nll_good(words, tmp_path_factory) -> float:
    return good_share_after(words, tmp_path_factory.mktemp("nll"), "nll", *OFFLINE_LEARN)


def test_nll_clones_the_data_and_does_not_prefer_good_pairs(nll_good):
    # behaviour cloning of data whose good share averages 0.5 stays near 0.5
    assert abs(nll_good - 0.5) < 0.06, nll_good


@pytest.mark.parametrize("alg", ALOL_VARIANTS)
def test_reward_weighted_variant_beats_nll_and_flipped_reward_loses(words, tmp_path, alg, nll_good):
    good = good_share_after(words, tmp_path, alg, *OFFLINE_LEARN)
    flipped = good_share_after(words, tmp_path, alg, *OFFLINE_LEARN, flip=True)
    assert good > nll_good + 0.05, (good, nll_good)
    # the flipped control ends below the untrained policy and far below the correct run (a
    # variant that ignored its weights would give both the nll result, ≈ 0.5)
    assert flipped < INIT_GOOD - 0.1 and good - flipped > 0.2, (good, flipped)


# ----------------------------------------------------------------------------- SFT
# Held-out NLL (per token) of mostly-good references, seeds 0/1/2: untrained 2.833; after 12
# SFT steps on mostly-good data 2.558 2.559 2.544; on mostly-bad data (the control) 4.027 3.962
# 4.041.
@pytest.mark.parametrize("data,falls", [("sft_good", True), ("sft_bad", False)])
def test_sft_lowers_heldout_nll_of_its_own_distribution(words, tmp_path, data, falls):
    over = word_overrides(
        words,
        words[data],
        "alg=sft",
        "alg.max_steps=12",
        "alg.batch_size=8",
        "alg.eval_every=0",
        "alg.lr=3e-3",
        "eval.before_training=false",
    )
    cfg = compose_cfg(*over)
    before = reference_nll(load_model(cfg.model)[0], words["tok"], words["heldout"])
    train(cfg, run_dir=tmp_path / "run")
    after = reference_nll(tmp_path / "run" / "policy", words["tok"], words["heldout"])
    if falls:
        assert after < before - 0.2, (before, after)
    else:
        assert after > before + 0.5, (before, after)
