"""Every hardware/* option composes into settings Lightning and submitit accept; sweeps share a
W&B group; a SIGUSR1 during training checkpoints at the end of the iteration and the run resumes
to the same end (the mechanism behind SLURM requeueing, tested here without a cluster; the
real sbatch path is tests/slurm/, `-m slurm`)."""

from __future__ import annotations

import json
import os
import signal

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from tests.conftest import CONF, PPO_SMALL, tiny_overrides

HARDWARE = sorted(p.stem for p in (CONF / "hardware").glob("*.yaml"))
SLURM = [h for h in HARDWARE if h.startswith("slurm_") and h != "slurm_local"]
SLURM_ENV = (
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_NTASKS",
    "SLURM_JOB_NAME",
    "SUBMITIT_EXECUTOR",
)


def compose_full(*overrides: str):
    """The composed config including its `hydra` node (launcher, mode, callbacks)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_the_expected_options_exist():
    for name in (
        "cpu",
        "gpu",
        "gpu_ddp",
        "gpu_fsdp",
        "slurm_cpu",
        "slurm_gpu",
        "slurm_gpu_ddp",
        "slurm_local",
    ):
        assert name in HARDWARE


@pytest.mark.parametrize("option", HARDWARE)
def test_hardware_option_composes(option):
    cfg = compose_full(f"hardware={option}")
    hw = cfg.hardware
    assert hw.name == option
    assert hw.accelerator in ("cpu", "gpu", "auto")
    assert hw.strategy == {"gpu_ddp": "ddp", "slurm_gpu_ddp": "ddp", "gpu_fsdp": "fsdp"}.get(
        option, "auto"
    )
    launcher = cfg.hydra.launcher._target_
    if option.startswith("slurm_"):
        assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"  # submits even without --multirun
        assert cfg.hydra.callbacks.slurm_job_info._target_ == "rft.cluster.SlurmJobInfo"
        kind = "LocalLauncher" if option == "slurm_local" else "SlurmLauncher"
        assert launcher == f"hydra_plugins.hydra_submitit_launcher.submitit_launcher.{kind}"
    else:
        assert launcher.endswith("BasicLauncher")


def sbatch_script(launcher, folder, monkeypatch) -> str:
    """The sbatch script Hydra's submitit launcher would submit for ``launcher`` (the composed
    ``hydra.launcher`` node), built without a cluster: the launcher's own parameter mapping
    (as in its ``launch()``), then submitit's script text. Only submitit's "is srun on PATH?"
    check is patched, so this runs on a laptop; tests/slurm submits real jobs."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    skip = ("_target_", "submitit_folder", "max_num_timeout")
    params = {
        k if k in base else f"slurm_{k}": (
            OmegaConf.to_container(launcher[k]) if OmegaConf.is_config(launcher[k]) else launcher[k]
        )
        for k in launcher
        if k not in skip
    }
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    ex.update_parameters(**params)
    return ex._executor._make_submission_file_text("python -c pass", "uid")


@pytest.mark.parametrize("option", SLURM)
def test_slurm_resources_match_the_trainer(option, tmp_path, monkeypatch):
    """What the launcher asks SLURM for is what Lightning expects: one task per device, the
    GPUs per node, the nodes; and submitit turns it into a valid sbatch script. Needs no SLURM
    client: the script is generated, not submitted."""
    cfg = compose_full(f"hardware={option}", "hardware.devices=2", "hardware.num_nodes=3")
    hw, lc = cfg.hardware, cfg.hydra.launcher
    assert lc.tasks_per_node == hw.devices == 2 and lc.nodes == hw.num_nodes == 3
    if hw.accelerator == "gpu":
        assert lc.gpus_per_node == hw.devices
    assert 0 < lc.signal_delay_s < 60 * lc.timeout_min
    sbatch = sbatch_script(lc, tmp_path, monkeypatch)
    lines = set(sbatch.splitlines())
    expected = {
        "#SBATCH --ntasks-per-node=2",
        "#SBATCH --nodes=3",
        "#SBATCH --requeue",
        f"#SBATCH --signal=USR2@{lc.signal_delay_s}",
        f"#SBATCH --cpus-per-task={lc.cpus_per_task}",
        f"#SBATCH --mem={lc.mem_gb}GB",
        f"#SBATCH --time={lc.timeout_min}",
    }
    assert expected <= lines, sorted(expected - lines)
    gpu_lines = {line for line in lines if line.startswith("#SBATCH --gpus-per-node")}
    assert gpu_lines == ({"#SBATCH --gpus-per-node=2"} if hw.accelerator == "gpu" else set())
    # one task per device: srun starts them, Lightning reads SLURM_NTASKS
    assert sbatch.rstrip().splitlines()[-1].startswith("srun ")


@pytest.mark.parametrize(
    "option", [h for h in HARDWARE if h.startswith("cpu") or h in ("slurm_cpu", "slurm_local")]
)
def test_cpu_options_build_a_trainer(option, tmp_path, monkeypatch):
    from rft.cluster import RequeueOnSignal
    from rft.train import make_trainer

    for k in SLURM_ENV:
        monkeypatch.delenv(k, raising=False)
    cfg = compose_full(f"hardware={option}", "model=tiny")
    trainer = make_trainer(cfg, tmp_path, max_epochs=1, callbacks=[], loggers=[])
    assert isinstance(trainer.callbacks[-1], RequeueOnSignal)


def test_sweep_runs_share_a_wandb_group_and_are_tagged_with_their_overrides():
    from rft.loggers import wandb_group_and_tags

    cfg = compose_full(
        "logger=wandb", "alg.lr=1e-5", "seed=3", "hydra.sweep.dir=multirun/2025-01-31/12-00-00"
    )
    try:
        OmegaConf.update(cfg, "hydra.mode", "MULTIRUN")
        HydraConfig.instance().set_config(cfg)
        group, tags = wandb_group_and_tags(cfg)
        assert group == "2025-01-31_12-00-00"
        assert {"2025-01-31_12-00-00", "alg.lr=1e-5", "seed=3"} <= set(tags)
        assert not any(t.startswith(("hydra.", "logger")) for t in tags)
        with_group = OmegaConf.merge(cfg, {"logger": {"group": "mine", "tags": ["paper"]}})
        group, tags = wandb_group_and_tags(with_group)
        assert group == "mine" and tags[0] == "paper"
    finally:
        HydraConfig.instance().cfg = None
    assert wandb_group_and_tags(cfg) == (None, [])  # a single run: no group, no extra tags


def test_usr1_during_training_checkpoints_the_iteration_and_the_run_resumes(
    prompts_file, tmp_path, monkeypatch
):
    """SIGUSR1 during iteration 2: the run finishes that iteration, writes state.ckpt for it and
    exits (128 + SIGUSR1); started again on its folder it resumes and ends exactly like a run
    that was never interrupted."""
    from rft.cluster import RequeueOnSignal
    from rft.train import train
    from tests.conftest import compose_cfg

    for k in SLURM_ENV:
        monkeypatch.delenv(k, raising=False)
    cfg = compose_cfg(
        *tiny_overrides(
            prompts_file,
            *PPO_SMALL,
            "alg.n_iterations=3",
            "alg.update_epochs=1",
            "alg.rollout_prompts=2",
            "task.n_eval_prompts=2",
            "task.n_test_prompts=2",
            "checkpoint.every_n_iterations=100",
            "checkpoint.save_policy=false",
            "eval.before_training=false",
            "eval.perplexity=false",
            "hardware.torch_threads=1",
        )
    )

    def signal_in_iteration_2(self, trainer, module):
        if trainer.current_epoch == 1:
            os.kill(os.getpid(), signal.SIGUSR1)

    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(RequeueOnSignal, "on_train_epoch_start", signal_in_iteration_2, raising=False)
        with pytest.raises(SystemExit) as e:
            train(cfg, run_dir=run)
    assert e.value.code == 128 + signal.SIGUSR1
    assert json.loads((run / "checkpoints" / "state.json").read_text())["step"] == 2
    assert not (run / "metrics.json").exists()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # handlers restored after fit

    resumed = train(cfg, run_dir=run)
    straight = train(cfg, run_dir=tmp_path / "straight")

    def rows(d):
        hist = [json.loads(line) for line in (d / "history.jsonl").read_text().splitlines()]
        return [(r["iteration"], r["reward/mean"]) for r in hist if "loss/policy" in r]

    assert [i for i, _ in rows(run)] == [1, 2, 3]
    assert rows(run) == rows(tmp_path / "straight")
    assert resumed["test/reward_mean"] == pytest.approx(straight["test/reward_mean"])


def test_ddp_searches_unused_parameters_only_for_modules_that_need_it():
    from rft.train import resolve_strategy

    assert resolve_strategy("ddp", True) == "ddp_find_unused_parameters_true"
    assert resolve_strategy("ddp", False) == "ddp"
    assert resolve_strategy("auto", True) == "auto"
    assert resolve_strategy("fsdp", True) == "fsdp"
