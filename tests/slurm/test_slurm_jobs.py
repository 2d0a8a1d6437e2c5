"""Training jobs through the real sbatch path (hardware=slurm_cpu on the local cluster):
one job, a 3-job sweep, a job preempted mid-training that requeues and resumes to the same end
as an uninterrupted run, and jobs that crash report back with their log path.

All sweeps selected for a session start together (see ``sweeps``); each test waits for its
own. The tiny model and short runs keep each job to a few seconds of compute."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import write_prompts
from tests.slurm.conftest import (
    Preempter,
    cluster_problem,
    log_path_in,
    make_sweep,
    train_iterations,
)

pytestmark = pytest.mark.slurm

TIMEOUT_S = 240  # per sweep, from the session's start: a hang fails, it never blocks CI

N_ITER = 12  # long enough that a signal sent after iteration 2 lands during training


def tiny(prompts, n_iterations: int) -> list[str]:
    return [
        "model=tiny",
        "task=jsonl",
        f"task.path={prompts}",
        "task.max_new_tokens=8",
        "task.min_new_tokens=8",
        "task.n_eval_prompts=2",
        "task.n_test_prompts=2",
        "logger=none",
        f"alg.n_iterations={n_iterations}",
        "alg.rollout_prompts=2",
        "alg.minibatch_size=2",
        "alg.update_epochs=1",
        "alg.eval_every=0",
        "eval.batch_size=2",
        "eval.n_samples_table=2",
        "eval.before_training=false",
        "eval.perplexity=false",
        "checkpoint.save_policy=false",
        # the only checkpoint before the end is the one the preemption signal asks for
        "checkpoint.every_n_iterations=100",
    ]


SPECS = {
    # no --multirun: hardware=slurm_* submits by itself (hydra.mode: MULTIRUN)
    "single": lambda p: tiny(p, N_ITER),
    "preempted": lambda p: tiny(p, N_ITER),  # same run as "single", signalled mid-training
    "sweep3": lambda p: ["--multirun", *tiny(p, 2), "alg.lr=1e-4,2e-4,3e-4"],
    # rft's own config error: run.py exits 2, no Python exception reaches submitit
    "crash_config": lambda p: [*tiny(p, 2), "alg.lr=-1"],
    # a bug in rft's own code stands in for an unexpected exception: an rft function with the
    # wrong signature as the reward (rft's code keeps its traceback; a user's own reward, or a
    # model shape transformers rejects, would be one clean "rft: error:" line instead)
    "crash_exception": lambda p: [
        *tiny(p, 2),
        "reward=custom",
        "reward._target_=rft.errors.is_user_code",
    ],
}


@pytest.fixture(scope="module")
def sweeps(request, tmp_path_factory):
    problem = cluster_problem()
    if problem:
        pytest.skip(problem)
    wanted: list[str] = []
    for item in request.session.items:
        m = item.get_closest_marker("sweeps")
        if m is not None and item.module is request.module:
            wanted += [n for n in m.args if n not in wanted]
    root = tmp_path_factory.mktemp("slurm")
    prompts = write_prompts(root / "prompts.jsonl")
    # The preempted run's folder has a ${now:} part, as Hydra's default: the requeued job must
    # land in the same one.
    started = {
        n: make_sweep(root, n, SPECS[n](prompts), timestamped=n == "preempted").start()
        for n in wanted
    }
    if "preempted" in started:
        Preempter(started["preempted"], after=2).start()
    yield started
    for s in started.values():
        print(f"sweep {s.name}: {s.wall_s or float('nan'):.1f} s (submit to exit)")
        s.cleanup()


def run_log(run_dir) -> str:
    return (run_dir / "run.log").read_text(errors="replace")


def final_metrics(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def rewards(run_dir) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    return [r["reward/mean"] for r in rows if "loss/policy" in r]


@pytest.mark.sweeps("single")
def test_one_training_job_through_sbatch(sweeps):
    s = sweeps["single"]
    rc, out = s.wait(TIMEOUT_S)
    assert rc == 0, out[-3000:]
    run = s.dir / "0"
    assert train_iterations(run / "history.jsonl") == list(range(1, N_ITER + 1))
    assert "test/reward_mean" in final_metrics(run)
    assert re.search(r"rft: job \d+ on \S+ \(restarts: 0\)", run_log(run)), (
        "did not run as a SLURM job"
    )
    (job_dir,) = [d for d in (s.dir / ".submitit").iterdir() if d.is_dir()]
    assert "Job completed successfully" in next(job_dir.glob("*_log.out")).read_text()


@pytest.mark.sweeps("sweep3")
def test_multirun_sweep_of_three_jobs(sweeps):
    s = sweeps["sweep3"]
    rc, out = s.wait(TIMEOUT_S)
    assert rc == 0, out[-3000:]
    assert (s.dir / "multirun.yaml").is_file()
    lrs = []
    for k in range(3):
        run = s.dir / str(k)
        assert train_iterations(run / "history.jsonl") == [1, 2], run
        assert "test/reward_mean" in final_metrics(run)
        lrs += [
            float(o.split("=")[1])
            for o in (run / ".hydra" / "overrides.yaml").read_text().split()
            if o.startswith("alg.lr=")
        ]
    assert sorted(lrs) == [1e-4, 2e-4, 3e-4]
    job_logs = list((s.dir / ".submitit").glob("*/*_log.out"))
    assert len(job_logs) == 3, job_logs  # three SLURM jobs (one array, three tasks)


@pytest.mark.sweeps("single", "preempted")
def test_preempted_job_requeues_and_resumes_to_the_same_end(sweeps):
    s = sweeps["preempted"]
    rc, out = s.wait(TIMEOUT_S)
    notes = s.notes
    assert "error" not in notes, notes
    assert notes["scancel_rc"] == 0, notes
    assert rc == 0, out[-3000:]
    run = s.dir / "0"
    log = run_log(run)
    # the job caught the signal, checkpointed at an iteration boundary and requeued itself ...
    assert "Received SIGUSR1" in log, log[-3000:]
    m = re.search(r"Checkpoint for iteration (\d+) written", log)
    assert m and notes["signalled_after"] <= int(m.group(1)) < N_ITER, log[-3000:]
    assert f"Requeued SLURM job {notes['job_id']}" in log
    # ... and the requeued job (same SLURM id, same run folder) resumed from that checkpoint
    assert re.search(
        rf"rft: job {notes['job_id']} on \S+ \(restarts: 1\), .* run folder {run}", log
    )
    assert f"Resuming from {run}/checkpoints/state.ckpt" in log
    # it ends where the uninterrupted run ends: same iterations, same rewards, same test metric
    ref = sweeps["single"]
    assert ref.wait(TIMEOUT_S)[0] == 0
    assert train_iterations(run / "history.jsonl") == list(range(1, N_ITER + 1))
    assert rewards(run) == pytest.approx(rewards(ref.dir / "0"), abs=1e-6)
    assert final_metrics(run)["test/reward_mean"] == pytest.approx(
        final_metrics(ref.dir / "0")["test/reward_mean"], abs=1e-6
    )


@pytest.mark.sweeps("crash_config")
def test_config_error_in_a_job_reports_its_log(sweeps):
    s = sweeps["crash_config"]
    rc, out = s.wait(TIMEOUT_S)
    assert rc != 0
    assert "alg.lr=-1" in out and "must be > 0" in out, out[-3000:]
    assert "state: FAILED" in out
    log = log_path_in(out)
    assert log is not None and log.is_file(), out[-3000:]
    assert "must be > 0" in log.read_text()


@pytest.mark.sweeps("crash_exception")
def test_exception_in_a_job_reports_its_log(sweeps):
    s = sweeps["crash_exception"]
    rc, out = s.wait(TIMEOUT_S)
    assert rc != 0
    assert "JobFailed" in out and "is_user_code()" in out, out[-3000:]
    log = log_path_in(out)
    assert log is not None and log.is_file(), out[-3000:]
    assert "Traceback" in log.read_text()  # the full traceback stays in the job's log
    assert f"run folder: {s.dir / '0'}" in out
