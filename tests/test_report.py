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
