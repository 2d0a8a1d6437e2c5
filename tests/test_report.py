"""Sweep report on a hand-made multirun folder: 2 finished jobs (different alg.lr), 1 failed."""

import json
from pathlib import Path

from rft.cli import main as rft_main
from rft.report import build_report, parse_override, split_overrides


def make_job(
    root: Path, name: str, overrides: list[str], metrics=None, history=(), log=None
) -> Path:
    job = root / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / ".hydra" / "config.yaml").write_text("seed: 1\n")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if history:
        (job / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    if log is not None:
        (job / "run.log").write_text(log)
    return job


def history(n, start=0.2):
    return [{"iteration": i, "reward/mean": start + 0.1 * i, "loss/policy": 1.0} for i in range(n)]


def make_sweep(root: Path) -> Path:
    sweep = root / "multirun" / "2024-05-01" / "12-00-00"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    make_job(
        sweep, "0", ["alg.lr=1e-05", "seed=1", "task=imdb"],
        metrics={"test/reward_mean": 0.61, "test/perplexity": 30.1, "diag/low_std_share": 0.4},
        history=history(3),
    )  # fmt: skip
    make_job(
        sweep, "1", ["alg.lr=0.0001", "seed=1", "task=imdb"],
        metrics={"test/reward_mean": 0.7234567, "test/perplexity": 25.0},  # no low-std share
        history=history(3, 0.3),
    )  # fmt: skip
    make_job(
        sweep, "2", ["alg.lr=0.001", "seed=1", "task=imdb"],
        history=history(1),
        log="[2024-05-01 12:00:01][rft][INFO] - starting\n"
        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB\n\n",
    )  # fmt: skip
    return sweep


EXPECTED_TABLE = """\
| job | alg.lr | test/reward_mean | test/perplexity | diag/low_std_share | status |
|---|---|---|---|---|---|
| 0 | 1e-05 | 0.61 | 30.1 | 0.4 | ok |
| 1 | 0.0001 | 0.7235 | 25 | — | ok |
| 2 | 0.001 | — | — | — | failed |"""


def test_report_table_and_skips(tmp_path):
    sweep = make_sweep(tmp_path)
    out = tmp_path / "report"
    res = build_report(sweep, out)
    assert res["swept"] == ["alg.lr"]
    assert res["constants"] == {"seed": "1", "task": "imdb"}
    assert res["table"] == EXPECTED_TABLE
    assert res["skipped"] == [
        {
            "job": "2",
            "status": "failed",
            "reason": "no metrics.json; last log line: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
        }
    ]
    md = (out / "report.md").read_text()
    assert EXPECTED_TABLE in md and "`seed=1`, `task=imdb`" in md
    assert "- job 2 (failed): no metrics.json; last log line: RuntimeError" in md
    assert (out / "reward_curves.png").stat().st_size > 0
    assert (out / "final_vs_alg.lr.png").stat().st_size > 0


def test_running_job_is_reported_and_default_out_is_sweep(tmp_path):
    sweep = make_sweep(tmp_path)
    make_job(sweep, "10", ["alg.lr=0.01", "seed=2", "task=imdb"], history=history(4))
    res = build_report(sweep)
    assert [r["job"] for r in res["rows"]] == ["0", "1", "2", "10"]  # numeric order
    assert res["swept"] == ["alg.lr", "seed"] and res["constants"] == {"task": "imdb"}
    assert res["rows"][-1]["status"] == "running?"
    assert (
        res["skipped"][-1]["reason"] == "no metrics.json; history has 4 iterations (still running?)"
    )
    assert (sweep / "report.md").is_file()


def test_cli_report(tmp_path, capsys):
    sweep = make_sweep(tmp_path)
    assert rft_main(["report", str(sweep), "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert str(tmp_path / "o" / "report.md") in printed and EXPECTED_TABLE in printed


def test_override_parsing():
    assert parse_override("+alg.lr=1e-05") == ("alg.lr", "1e-05")
    assert parse_override("model=tiny") == ("model", "tiny")
    swept, const = split_overrides(
        [{"a": "1", "b": "x"}, {"a": "2", "b": "x"}, {"b": "x", "c": "y"}]
    )
    assert swept == ["a", "c"] and const == {"b": "x"}


def test_run_only_keys_do_not_split_settings(tmp_path):
    from rft.report import comparison_table, is_setting_key, load_sweep

    sweep = tmp_path / "family"
    for name, alg, seed, before, r in [
        ("a0", "a_lol", 0, "true", 0.7),
        ("a1", "a_lol", 1, "false", 0.8),
        ("n0", "nll", 0, "false", 0.6),
    ]:
        make_job(
            sweep,
            name,
            [
                f"alg={alg}",
                f"seed={seed}",
                f"eval.before_training={before}",
                "hardware.torch_threads=1",
            ],
            metrics={"test/reward_mean": r},
        )
    assert not is_setting_key("eval.before_training") and not is_setting_key("seed")
    assert not is_setting_key("alg.cache_dir")
    assert not is_setting_key("store.path") and not is_setting_key("store.reuse")
    assert is_setting_key("alg") and is_setting_key("alg.lr")
    jobs = load_sweep(sweep)
    table = comparison_table(jobs, ["alg", "seed", "eval.before_training"])
    rows = [
        line
        for line in table.splitlines()
        if line.startswith("| a_lol") or line.startswith("| nll")
    ]
    assert (
        len(rows) == 2 and "0.75 ± 0.05" in rows[0]
    )  # the two a_lol seeds pooled (population std)


def test_keys_only_some_jobs_set_stay_out_of_the_labels(tmp_path):
    from rft.report import comparison_table, load_sweep

    sweep = tmp_path / "guided"
    make_job(sweep, "bc", ["alg=sft", "alg.max_steps=60"], metrics={"test/reward_mean": 0.64})
    for name, alg, seed in [("p0", "ppo", 0), ("p1", "ppo", 1), ("q0", "ppo_pp", 0)]:
        make_job(
            sweep,
            name,
            [f"alg={alg}", f"seed={seed}", "model.init_from=bc", "alg.n_iterations=8"],
            metrics={"test/reward_mean": 0.7 + 0.02 * seed},
        )
    swept = ["alg", "alg.max_steps", "seed", "model.init_from", "alg.n_iterations"]
    table = comparison_table(load_sweep(sweep), swept)
    labels = [line.split(" | ")[0].lstrip("| ") for line in table.splitlines()[2:]]
    assert sorted(labels) == ["ppo", "ppo_pp", "sft"]


# ------------------------------------------------------------------------ paired comparisons
IDS = ["p0", "p1", "p2", "p3"]


def write_eval(job: Path, prefix: str, step: int, rewards, seed=7919):
    ev = job / "eval"
    ev.mkdir(exist_ok=True)
    rec = {
        "metrics": {},
        "eval": {"split": "test", "seed": seed, "samples_per_prompt": len(rewards[0])},
        "per_prompt": {"prompt_id": IDS, "reward": rewards},
    }
    (ev / f"{prefix}_{step:05d}.json").write_text(json.dumps(rec))


def make_family(root: Path) -> Path:
    """a_lol and nll, seeds 0 and 1, 4 test prompts × 2 samples; each run evaluated its own
    initial policy. Seed 0's and seed 1's initial policies score alike (fixed evaluation)."""
    sweep = root / "family"
    init = [[0.4, 0.6], [0.2, 0.2], [0.5, 0.7], [0.1, 0.3]]  # per-prompt means .5 .2 .6 .2
    final = {
        ("a_lol", 0): [[0.8, 0.6], [0.3, 0.5], [0.7, 0.7], [0.2, 0.4]],  # .7 .4 .7 .3
        ("a_lol", 1): [[0.9, 0.7], [0.4, 0.4], [0.6, 0.8], [0.3, 0.3]],  # .8 .4 .7 .3
        ("nll", 0): [[0.5, 0.5], [0.2, 0.2], [0.6, 0.6], [0.3, 0.1]],  # .5 .2 .6 .2
        ("nll", 1): [[0.6, 0.4], [0.3, 0.3], [0.5, 0.5], [0.2, 0.2]],  # .5 .3 .5 .2
    }
    for (alg, seed), rewards in final.items():
        mean = sum(sum(r) for r in rewards) / 8
        job = make_job(
            sweep,
            f"{alg}{seed}",
            [f"alg={alg}", f"seed={seed}"],
            metrics={"test/reward_mean": mean, "test/reward_mean_se": 0.05},
        )
        write_eval(job, "test_init", 0, init)
        write_eval(job, "test", 30, rewards)
        write_eval(job, "test", 10, init)  # an older test evaluation: the last one counts
    return sweep


def test_paired_differences_match_a_hand_computation(tmp_path):
    import math

    res = build_report(make_family(tmp_path), tmp_path / "out", baseline="nll")
    rows = {tuple(line.split(" | ")[:2]): line for line in res["paired"].splitlines()}
    # a_lol seed 0 vs its init: d = .2 .2 .1 .1 -> mean .15, SE = std(ddof=1)/2 = .05774/2
    se0 = math.sqrt(sum((d - 0.15) ** 2 for d in (0.2, 0.2, 0.1, 0.1)) / 3) / 2
    assert f"+0.15 ± {se0:.2g}" in rows[("| a_lol", "0")]
    # a_lol seed 0 vs nll seed 0: d = .2 .2 .1 .1 as well (nll seed 0 equals the init)
    assert rows[("| a_lol", "0")].count(f"+0.15 ± {se0:.2g}") == 2
    # a_lol seed 1 vs nll seed 1: d = .3 .1 .2 .1 -> mean .175
    d1 = (0.3, 0.1, 0.2, 0.1)
    se1 = math.sqrt(sum((d - 0.175) ** 2 for d in d1) / 3) / 2
    assert f"+0.175 ± {se1:.2g}" in rows[("| a_lol", "1")]
    # per setting: a_lol vs init, seeds averaged per prompt: (.2+.3)/2 .2 .1 (.1+.1)/2
    pooled = [0.25, 0.2, 0.1, 0.1]
    m = sum(pooled) / 4
    se = math.sqrt(sum((d - m) ** 2 for d in pooled) / 3) / 2
    setting = [ln for ln in res["paired"].splitlines() if ln.startswith("| a_lol | 2 |")]
    assert setting and f"+{m:.3g} ± {se:.2g}" in setting[0]
    # nll vs nll is no comparison: the baseline column of nll's own rows is empty
    assert rows[("| nll", "0")] == "| nll | 0 | 0.375 ± 0.05 | +0 ± 0 | — | 4 |"
    assert "## Paired differences" in res["markdown"]
    # the table shows each final reward with its standard error
    assert "± 0.05" in res["table"]


def test_pairing_flags_evaluations_that_differ(tmp_path):
    from rft.report import paired

    a = {"prompt_id": IDS, "reward": [[1.0], [0.0], [1.0], [0.0]], "eval": {"seed": 1}}
    b = {"prompt_id": IDS[::-1], "reward": [[0.0], [1.0], [0.0], [1.0]], "eval": {"seed": 2}}
    p = paired(a, b)  # b lists the same prompts in reverse: aligned by id, every d_i = 0
    assert p.n_prompts == 4 and p.diff == 0.0 and "4 shared prompts" in p.note
    assert "eval seed 1 vs 2" in p.note


def test_text_metrics_are_tabulated_and_paired_on_their_per_prompt_scores(tmp_path):
    """Two runs (ppo, ppo_pp; one seed) with a METEOR kept per prompt: the text-metric table
    lists test/meteor side by side, and `--metric test/meteor` pairs on METEOR, not the reward."""
    import math

    sweep = tmp_path / "cg"
    meteor = {
        "ppo": [[0.2, 0.4], [0.1, 0.1], [0.3, 0.5], [0.0, 0.2]],  # means .3 .1 .4 .1
        "ppo_pp": [[0.4, 0.4], [0.3, 0.1], [0.5, 0.5], [0.1, 0.1]],  # means .4 .2 .5 .1
    }
    for alg, m in meteor.items():
        mean = sum(sum(r) for r in m) / 8
        job = make_job(
            sweep,
            alg,
            [f"alg={alg}", "seed=0"],
            metrics={
                "test/reward_mean": 0.5,
                "test/meteor": mean,
                "test/meteor_se": 0.01,
                "test/bleu4": 0.05 if alg == "ppo" else 0.07,
            },
        )
        ev = job / "eval"
        ev.mkdir()
        rec = {
            "eval": {"split": "test", "seed": 7919, "samples_per_prompt": 2},
            "per_prompt": {
                "prompt_id": IDS,
                "reward": [[0.5, 0.5]] * 4,
                "metrics": {"meteor": m},
            },
        }
        (ev / "test_00008.json").write_text(json.dumps(rec))
    res = build_report(sweep, tmp_path / "out", metric="test/meteor", baseline="ppo")
    assert "test/meteor" in res["text_metrics"] and "test/bleu4" in res["text_metrics"]
    assert "## Text metrics by setting" in res["markdown"]
    line = [ln for ln in res["text_metrics"].splitlines() if ln.startswith("| ppo_pp |")][0]
    assert "0.3 ± 0.01" in line and "0.07" in line
    # METEOR differences d = .1 .1 .1 0 -> mean .075, SE = std(ddof=1) / 2
    d = (0.1, 0.1, 0.1, 0.0)
    se = math.sqrt(sum((x - 0.075) ** 2 for x in d) / 3) / 2
    row = [ln for ln in res["paired"].splitlines() if ln.startswith("| ppo_pp | 0 |")][0]
    assert f"+0.075 ± {se:.2g}" in row
    # on the reward (identical in both runs) the difference is 0
    res_r = build_report(sweep, tmp_path / "out2", baseline="ppo")
    row_r = [ln for ln in res_r["paired"].splitlines() if ln.startswith("| ppo_pp | 0 |")][0]
    assert "+0 ± 0" in row_r


def test_a_mode_evaluate_baseline_pairs_with_every_seed(tmp_path):
    """A zero-shot `mode=evaluate` job (seed 0) is the baseline of runs of any seed: it trained
    nothing and samples with eval.seed, so seed 1's run pairs with it too."""
    sweep = tmp_path / "zs"
    base = [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1], [0.0, 0.2]]  # means .1 .2 .2 .1
    runs = {
        "zeroshot": (["mode=evaluate"], base),
        "sft_s0": (["alg=sft", "seed=0"], [[0.3, 0.3], [0.2, 0.4], [0.4, 0.4], [0.1, 0.3]]),
        "sft_s1": (["alg=sft", "seed=1"], [[0.2, 0.2], [0.3, 0.3], [0.2, 0.2], [0.2, 0.2]]),
    }
    for name, (over, rewards) in runs.items():
        job = make_job(sweep, name, over, metrics={"test/reward_mean": 0.0})
        write_eval(job, "test", 1, rewards)
    res = build_report(sweep, tmp_path / "out", baseline="zeroshot")
    rows = [ln for ln in res["paired"].splitlines() if ln.startswith("| ")]
    # seed 1: d = .1 .1 0 .1 -> +0.075; seed 0: d = .2 .1 .2 .1 -> +0.15
    assert any(" | 1 | " in ln and "+0.075 ± " in ln for ln in rows), rows
    assert any(" | 0 | " in ln and "+0.15 ± " in ln for ln in rows), rows


def test_by_groups_settings_by_the_named_keys_only(tmp_path):
    # each seed's runs read their own data file: without --by every (alg, file) would be its
    # own setting and the seeds would never pool
    import pytest

    sweep = make_family(tmp_path)
    for job in sweep.iterdir():
        ov = job / ".hydra" / "overrides.yaml"
        seed = job.name[-1]
        ov.write_text(ov.read_text() + f"- alg.data_path=/data/pairs_s{seed}.jsonl\n")
    plain = build_report(sweep, tmp_path / "plain", baseline="nll")
    assert not [ln for ln in plain["paired"].splitlines() if ln.startswith("| a_lol | 2 |")]
    res = build_report(sweep, tmp_path / "by", baseline="nll", by=["alg"])
    assert res["swept"] == ["alg", "seed"] and res["details"] == ["alg.data_path"]
    pooled = [ln for ln in res["paired"].splitlines() if ln.startswith("| a_lol | 2 |")]
    assert pooled and "+0.163 ± " in pooled[0]  # (.25 + .2 + .1 + .1) / 4 = .1625 vs init
    assert "not compared (`--by`): `alg.data_path`" in res["markdown"]
    with pytest.raises(ValueError, match=r"--by lr: lr does not differ .*swept keys: alg"):
        build_report(sweep, tmp_path / "bad", by=["lr"])


def test_a_job_without_the_varying_key_is_labelled_by_its_own_keys(tmp_path):
    # `--by alg,mode` over alg=dpo / alg=nll runs and their mode=evaluate baseline: only alg
    # varies among the jobs that set it, and the baseline sets mode alone
    sweep = tmp_path / "fam"
    rewards = [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1], [0.0, 0.2]]
    for name, over in {
        "base": ["mode=evaluate"],
        "dpo": ["alg=dpo", "seed=0"],
        "nll": ["alg=nll", "seed=0"],
    }.items():
        job = make_job(sweep, name, over, metrics={"test/reward_mean": 0.0})
        write_eval(job, "test", 1, rewards)
    res = build_report(sweep, tmp_path / "out", baseline="base", by=["alg", "mode"])
    labels = [ln.split(" | ")[0].lstrip("| ") for ln in res["paired"].splitlines()[2:]]
    assert "mode=evaluate" in res["markdown"] and "—" not in labels, labels
