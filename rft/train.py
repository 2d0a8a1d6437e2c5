"""train(cfg) -> metrics: compose the parts a config names and run one experiment.

    task, model, reward  ─► (optional SFT warm start) ─► policy, frozen reference
    ─► the algorithm's LightningModule ─► Trainer.fit (resumable) ─► final val/test evaluation
    ─► run folder: config.yaml, history.jsonl, metrics.json, samples.jsonl, curves.png,
       eval/, policy/ (save_pretrained), checkpoints/state.ckpt

Plain function: run.py calls it under @hydra.main, tests call it with a composed config.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import get_class
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from rft.alg.base import RFTModule
from rft.callbacks import DirectCheckpointIO, IterationProgress, StateCheckpoint
from rft.checks import check_state_checkpoint, check_values, preflight
from rft.config import choice
from rft.device import resolve_precision
from rft.errors import ConfigError, instantiate
from rft.eval.evaluate import check_eval_config
from rft.io import (
    ensure_dir,
    read_history,
    truncate_history,
    write_json_atomic,
    write_text_atomic,
)
from rft.loggers import close_loggers, make_loggers
from rft.model import attention
from rft.model.build import load_trained_policy, reference_policy
from rft.model.load import check_model_source
from rft.model.lora import check_lora_config
from rft.plots import plot_curves
from rft.reward import build_reward
from rft.rollout.backend import with_rollout_backend
from rft.store.cached import cached_policy, open_store, reuse_metrics
from rft.store.keys import evaluation_key, warm_start_key

log = logging.getLogger("rft")


# ---------------------------------------------------------------------------------- checks
def validate(cfg: DictConfig) -> type[RFTModule]:
    """Cross-field checks that a schema cannot express, before any task, model or data loads;
    each names the key and the fix. The algorithm's own run through the class ``alg._target_``
    names (``check_config``), which is returned."""
    module_cls = algorithm_class(cfg)
    module_cls.check_config(cfg)
    check_eval_config(cfg)
    check_lora_config(cfg.model)
    if module_cls.uses_policy:
        check_model_source(cfg.model)
    for key in ("n_eval_prompts", "n_test_prompts"):
        if cfg.task[key] == 0:
            raise ConfigError(f"task.{key}=0: evaluation needs prompts (use -1 for all).")
    if cfg.task.max_new_tokens < 1:
        raise ConfigError("task.max_new_tokens must be ≥ 1.")
    return module_cls


def algorithm_class(cfg: DictConfig) -> type[RFTModule]:
    """The LightningModule class ``alg._target_`` names (imported, not built)."""
    try:
        cls = get_class(cfg.alg._target_)
    except Exception as e:  # noqa: BLE001 - Hydra raises several kinds for a bad path
        raise ConfigError(
            f"alg._target_={cfg.alg._target_!r} cannot be imported ({e}). Pick an alg= option "
            "(python run.py --help lists them), or name an importable RFTModule subclass."
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, RFTModule)):
        raise ConfigError(
            f"alg._target_={cfg.alg._target_!r} is not an rft algorithm (an RFTModule subclass)."
        )
    return cls


def find_resume_checkpoint(cfg: DictConfig, run_dir: Path) -> Path | None:
    if cfg.resume:
        p = Path(cfg.resume).expanduser()
        for cand in (p, p / "checkpoints" / "state.ckpt", p / "state.ckpt"):
            if cand.is_file():
                return cand
        raise ConfigError(
            f"resume={cfg.resume!r}: no checkpoint there (looked for the file itself, "
            f"checkpoints/state.ckpt and state.ckpt under it). Pass a run folder that holds "
            "checkpoints/state.ckpt, or drop resume= to start fresh."
        )
    own = run_dir / "checkpoints" / "state.ckpt"
    return own if own.is_file() else None


# ---------------------------------------------------------------------------------- setup
def quiet_libraries() -> None:
    """Keep the console for rft's own progress: Lightning's banners and two warnings that are
    expected here (the frozen reference is in eval mode; a fresh run has no checkpoint)."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*`weights_only` was not set.*")
    warnings.filterwarnings("ignore", message=".*`srun` command is available on your system.*")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def setup_hardware(cfg: DictConfig) -> None:
    """Threads, matmul precision, and ``hardware.precision=auto`` made concrete for this
    machine (rft.device.resolve_precision), in ``cfg`` itself: everything after this point,
    the saved config.yaml included, sees the precision the run trains in."""
    hw = cfg.hardware
    resolved = resolve_precision(hw)
    if resolved != hw.precision:
        log.info("hardware.precision=%s -> %s on this machine", hw.precision, resolved)
        hw.precision = resolved
    threads = hw.torch_threads or os.environ.get("SLURM_CPUS_PER_TASK")
    if threads:
        torch.set_num_threads(int(threads))
    if hw.matmul_precision:
        torch.set_float32_matmul_precision(hw.matmul_precision)


def default_run_dir(cfg: DictConfig) -> Path:
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except Exception:  # noqa: BLE001 - not under @hydra.main (tests, notebooks)
        return Path("outputs") / cfg.experiment_name / time.strftime("%Y-%m-%d_%H-%M-%S")


def resolve_strategy(strategy: str, has_unused_parameters: bool) -> str:
    """The Lightning strategy for a module. DDP expects every parameter to receive a gradient
    in every step; modules whose iterations train only part of their parameters (LOLS / DLOLS
    train either the policy's or the guide's critic) declare ``has_unused_parameters`` and get
    DDP's unused-parameter search instead of a reducer error in the first step."""
    if strategy == "ddp" and has_unused_parameters:
        return "ddp_find_unused_parameters_true"
    return strategy


def make_trainer(
    cfg: DictConfig,
    run_dir: Path,
    max_epochs: int,
    callbacks: list,
    loggers: list,
    module: RFTModule | None = None,
) -> L.Trainer:
    from rft.cluster import RequeueOnSignal, slurm_plugins

    hw = cfg.hardware
    # RequeueOnSignal goes last: on SIGUSR1/2 or SIGTERM it checkpoints at the end of the
    # iteration (after StateCheckpoint) and, under SLURM, requeues the job (rft/cluster.py).
    return L.Trainer(
        accelerator=hw.accelerator,
        devices=hw.devices,
        num_nodes=hw.num_nodes,
        strategy=resolve_strategy(hw.strategy, module is not None and module.has_unused_parameters),
        # concrete after setup_hardware; "auto" only where a caller skipped it
        precision=hw.precision if hw.precision != "auto" else resolve_precision(hw),
        max_epochs=max_epochs,
        logger=loggers or False,
        callbacks=[*callbacks, RequeueOnSignal()],
        plugins=[*slurm_plugins(), DirectCheckpointIO()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        default_root_dir=str(run_dir),
        log_every_n_steps=1,
        deterministic=False,
    )


def run_module(
    cfg,
    module: RFTModule,
    run_dir: Path,
    ckpt: Path | None,
    desc: str,
    loggers=None,
    eval_before: bool = False,
) -> L.Trainer:
    """Prepare and fit ``module`` for its ``fit_epochs`` (resuming from ``ckpt``); optionally
    evaluate the initial policy first."""
    module.prepare()  # before the trainer: the number of epochs may depend on it (A-LoL)
    ckpt_cb = StateCheckpoint(
        run_dir, cfg.checkpoint.every_n_iterations, cfg.checkpoint.save_policy
    )
    trainer = make_trainer(
        cfg, run_dir, module.fit_epochs, [ckpt_cb, IterationProgress(desc)], loggers or [], module
    )
    if ckpt is not None:
        drop_rows_after_checkpoint(run_dir, ckpt)
        log.info("Resuming from %s", ckpt)
    else:  # a fresh start in a folder used before: old records would mix with the new ones
        for stale in ("history.jsonl", "samples.jsonl", "diagnostics.jsonl"):
            (run_dir / stale).unlink(missing_ok=True)
    if ckpt is None and eval_before:
        with on_device(trainer, module):
            module.evaluate("test", prefix="test_init", step=0)
    trainer.fit(module, ckpt_path=str(ckpt) if ckpt else None)
    return trainer


@contextlib.contextmanager
def on_device(trainer: L.Trainer, module):
    """Run evaluation outside ``fit`` on the trainer's device and precision (Lightning moves
    the module back to the CPU when fit ends)."""
    module.to(trainer.strategy.root_device)
    with trainer.precision_plugin.forward_context():
        yield


def drop_rows_after_checkpoint(run_dir: Path, ckpt: Path) -> None:
    """Drop history rows written after the checkpoint (they will be recomputed)."""
    meta = ckpt.parent / "state.json"
    if meta.is_file():
        truncate_history(run_dir / "history.jsonl", json.loads(meta.read_text())["step"])


# ---------------------------------------------------------------------------------- phases
def has_warm_start(cfg: DictConfig) -> bool:
    ws = cfg.alg.get("warm_start")
    return ws is not None and ws.steps > 0


def warm_start_done(run_dir: Path) -> Path | None:
    """The policy of this run's finished warm start (a resumed run), else None."""
    done = run_dir / "warm_start" / "policy"
    return done if (done / "config.json").is_file() else None


def warm_start(cfg: DictConfig, task, reward_fn, run_dir: Path, policy, store=None) -> str | None:
    """The SFT warm-start phase of an RL run on ``policy`` (the initial policy, as loaded: SFT
    trains it in place); returns the folder of its policy (or None).

    Its output lives in ``<run>/warm_start/``; a resumed run reuses a finished warm start, and
    with a result store (rft.store) any run's warm start of the same initial policy, budget,
    data and seed (``warm_start_key``)."""
    if not has_warm_start(cfg):
        return None
    from rft.alg.sft import SFT, SFTSettings

    ws, ws_dir = cfg.alg.warm_start, run_dir / "warm_start"
    done = ws_dir / "policy"
    if warm_start_done(run_dir):
        log.info("Warm start already done: %s", done)
        return str(done)
    ws_dir.mkdir(parents=True, exist_ok=True)
    settings = SFTSettings.for_warm_start(cfg.alg)

    def train_sft(dest: Path) -> None:
        log.info(
            "Warm start: %d SFT steps on %.1f%% of the SFT pairs", ws.steps, 100 * ws.data_frac
        )
        module = SFT(cfg, task, policy, None, reward_fn, ws_dir, settings=settings)
        ws_cfg = OmegaConf.merge(cfg, {"checkpoint": {"save_policy": False}})
        own_ckpt = ws_dir / "checkpoints" / "state.ckpt"
        run_module(ws_cfg, module, ws_dir, own_ckpt if own_ckpt.is_file() else None, "warm start")
        module.export_policy(dest)

    if store is None:
        train_sft(done)
    else:  # the key is of the initial policy: before SFT changes its weights
        cached_policy(store, warm_start_key(cfg, task, policy, settings), done, train_sft)
    return str(done)


def train(cfg: DictConfig, run_dir: str | Path | None = None) -> dict[str, float]:
    """Run one experiment; returns the final metrics (also written to metrics.json)."""
    check_values(cfg)  # every value set, resolvable and finite
    validate(cfg)  # the algorithm's own checks, through its class
    preflight(cfg)  # the machine and the generator can honour the config
    quiet_libraries()
    setup_hardware(cfg)
    with attention.configured(cfg):  # hardware.attention: the kernel of each kind of pass
        return _run(cfg, run_dir)


def _run(cfg: DictConfig, run_dir: str | Path | None) -> dict[str, float]:
    run_dir = ensure_dir(run_dir or default_run_dir(cfg), "hydra.run.dir")
    write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    if choice(cfg.mode) == "extract":
        from rft.diagnostics.extract import extract

        return extract(cfg, run_dir)
    if choice(cfg.mode) == "evaluate":
        from rft.eval.standalone import evaluate_only

        return evaluate_only(cfg, run_dir)
    ckpt = find_resume_checkpoint(cfg, run_dir)
    if ckpt is not None:
        check_state_checkpoint(ckpt)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module, loggers = build_module(cfg, run_dir)
    status = "failed"
    try:
        trainer = run_module(
            cfg,
            module,
            run_dir,
            ckpt,
            desc=cfg.alg.name,
            loggers=loggers,
            eval_before=cfg.eval.before_training,
        )
        metrics = final_metrics(trainer, module, run_dir)
        if module.store is not None:  # what this run reused, and from where
            metrics.update(reuse_metrics(module.store.reused))
        if trainer.is_global_zero:  # under DDP every rank has the same metrics: one writer
            write_outputs(cfg, run_dir, metrics)
        status = "success"
    finally:  # end the W&B run whatever happened, so the next run in this process gets its own
        close_loggers(loggers, status)
    _summary(run_dir, metrics)
    return metrics


def build_module(cfg: DictConfig, run_dir: Path) -> tuple[RFTModule, list]:
    """The task, the reward, the policy (after any SFT warm start) with its frozen reference and
    its rollout backend, the algorithm's module on them, and the loggers."""
    task = instantiate(cfg.task, _convert_="none")
    log.info("Task %s: %r", cfg.task.name, task)
    reward_fn = build_reward(cfg.reward)
    store = open_store(cfg, run_dir)  # results shared across runs (None: store.reuse/publish off)
    module_cls = algorithm_class(cfg)
    policy = ref = None  # a module that trains a model of its own (rft.alg.reward_model)
    if module_cls.uses_policy:
        policy = load_trained_policy(cfg.model, seed=cfg.seed, precision=cfg.hardware.precision)
        if cfg.plan and has_warm_start(cfg):  # before the SFT phase it announces
            log_plan(cfg, task, policy, None, run_dir, store)
        init = warm_start(cfg, task, reward_fn, run_dir, policy, store)
        if init is not None:  # the warm-started weights
            policy = load_trained_policy(
                cfg.model, init_from=init, seed=cfg.seed, precision=cfg.hardware.precision
            )
        ref = reference_policy(
            policy, torch.bfloat16 if str(cfg.hardware.precision).startswith("bf16") else None
        )
        if cfg.plan and not has_warm_start(cfg):
            log_plan(cfg, task, policy, ref, run_dir, store)
        policy = with_rollout_backend(policy, cfg)  # after π_ref is copied: only the policy's
    module = module_cls(cfg, task, policy, ref, reward_fn, run_dir)
    module.store = store
    loggers = make_loggers(cfg, run_dir, run_name=f"{cfg.experiment_name}-s{cfg.seed}")
    return module, loggers


def log_plan(cfg: DictConfig, task, policy, ref, run_dir: Path, store) -> None:
    """The run's plan on rank 0: its phases with a time estimate from one short calibration
    (rft.plan), what the store will serve, and where the results go. ``policy``: the initial
    policy, before any warm start (then ``ref`` is None: the initial evaluation's key needs the
    warm-started weights, so the plan cannot tell whether the store holds it)."""
    if rank_zero_only.rank != 0:
        return
    from rft.plan import plan_run

    reused = {r.what: r.origin for r in store.reused} if store is not None else {}
    if warm_start_done(run_dir):
        reused["warm_start"] = "this run's folder (resumed)"
    elif store is not None and has_warm_start(cfg):
        from rft.alg.sft import SFTSettings

        key = warm_start_key(cfg, task, policy, SFTSettings.for_warm_start(cfg.alg))
        if (entry := store.get(key, touch=False)) is not None:
            reused["warm_start"] = entry.origin.get("run") or "the store"
    if store is not None and cfg.eval.before_training and ref is not None:
        entry = store.get(evaluation_key(cfg, task, policy, ref, "test"), touch=False)
        if entry is not None:
            reused["test_init"] = entry.origin.get("run") or "the store"
    root = store.root if store is not None else None
    plan = plan_run(cfg, task, policy, run_dir=run_dir, store=root, reused=reused)
    log.info("%s", plan.format(f"Plan of {cfg.experiment_name}", now=time.time()))


def final_metrics(trainer: L.Trainer, module: RFTModule, run_dir: Path) -> dict[str, float]:
    """The final test evaluation, the initial one (test_init/*, from history.jsonl: a resumed
    run did it before its kill) and the last training records."""
    final_step = module.progress_after(trainer.current_epoch)  # fit done: one past the end
    metrics = {}
    with on_device(trainer, module):
        metrics.update(module.evaluate("test", step=final_step))
    init_metrics = {k: v for k, v in _last_values(run_dir).items() if k.startswith("test_init/")}
    metrics.update(init_metrics)
    metrics.update(
        {k: v for k, v in module.latest.items() if k.startswith(("reward/", "objective/", "time/"))}
    )
    return metrics


def write_outputs(cfg: DictConfig, run_dir: Path, metrics: dict[str, float]) -> None:
    """metrics.json and the plots."""
    write_json_atomic(run_dir / "metrics.json", metrics)
    plot_curves(
        run_dir / "history.jsonl",
        run_dir / "curves.png",
        title=f"{cfg.experiment_name} (seed {cfg.seed})",
    )
    if (run_dir / "diagnostics.jsonl").is_file():
        from rft.diagnostics.plots import plot_std_vs_gradnorm

        plot_std_vs_gradnorm(
            read_history(run_dir / "diagnostics.jsonl"), run_dir / "std_vs_gradnorm.png"
        )


def _last_values(run_dir: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in read_history(run_dir / "history.jsonl"):
        out.update({k: v for k, v in r.items() if isinstance(v, (int, float))})
    return out


def _summary(run_dir: Path, m: dict) -> None:
    keys = ["test_init/reward_mean", "test/reward_mean", "test/perplexity", "test/distinct_2"]
    keys += ["test/accuracy", "test/ece", "test/pairwise_accuracy"]  # rft.alg.reward_model
    parts = [f"{k}={m[k]:.4g}" for k in keys if k in m]
    log.info("Done: %s | run folder: %s", "  ".join(parts), run_dir)
