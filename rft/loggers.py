"""Experiment loggers: W&B (online or offline by itself), CSV, or none."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from omegaconf import OmegaConf

from rft.config import choice

log = logging.getLogger(__name__)


def _wandb_has_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def _online(host: str = "api.wandb.ai", port: int = 443, timeout: float = 1.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wandb_mode(requested: str) -> str:
    env = os.environ.get("WANDB_MODE")
    if requested != "auto":
        return requested
    if env in ("online", "offline", "disabled", "dryrun"):
        return "offline" if env == "dryrun" else env
    if not _wandb_has_key():
        log.warning(
            "W&B: no API key found, logging offline (sync later: wandb sync <run>/wandb/offline-run-*)"
        )
        return "offline"
    if not _online():
        log.warning(
            "W&B: api.wandb.ai unreachable, logging offline (sync later: wandb sync <run>/wandb/offline-run-*)"
        )
        return "offline"
    return "online"


def make_loggers(cfg, run_dir: Path, run_name: str) -> list:
    kind = cfg.logger.kind
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    if kind == "none":
        return []
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        lg = CSVLogger(save_dir=str(run_dir), name="csv", version="")
        lg.log_hyperparams(container)
        return [lg]
    if kind == "wandb":
        mode = wandb_mode(choice(cfg.logger.mode))
        if mode == "disabled":
            return []
        from lightning.pytorch.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")
        group, tags = wandb_group_and_tags(cfg)
        lg = WandbLogger(
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            group=group,
            tags=tags,
            name=run_name,
            save_dir=str(run_dir),
            offline=(mode == "offline"),
            config=container,
            id=_stable_run_id(run_dir),
            resume="allow",
        )
        return [lg]
    from rft.errors import ConfigError

    raise ConfigError(f"logger.kind={kind!r}: choose wandb, csv or none.")


def close_loggers(loggers: list, status: str = "success") -> None:
    """Finalize each logger and end its W&B run. Lightning's ``finalize`` leaves the wandb run
    open, so a second ``train()`` in the same process (a local ``--multirun``, a driver script
    running several runs) would log into the first run's W&B run."""
    for lg in loggers:
        lg.finalize(status)
        run = getattr(lg, "_experiment", None)  # WandbLogger: the wandb run, once started
        if run is not None and hasattr(run, "finish"):
            run.finish(exit_code=0 if status == "success" else 1)
            lg._experiment = None


def wandb_group_and_tags(cfg) -> tuple[str | None, list[str]]:
    """``logger.group`` / ``logger.tags``; in a multirun sweep the group defaults to the sweep
    folder's name and the tags gain it and this job's overrides (the swept values among them)."""
    from rft.cluster import sweep_group_and_tags

    sweep_group, sweep_tags = sweep_group_and_tags()
    tags = list(dict.fromkeys([*cfg.logger.tags, *sweep_tags]))
    return cfg.logger.group or sweep_group, tags


def _stable_run_id(run_dir: Path) -> str:
    """The same W&B run id for a run folder, so a resumed run continues its W&B run."""
    f = Path(run_dir) / ".wandb_id"
    if f.is_file():
        return f.read_text().strip()
    import uuid

    rid = uuid.uuid4().hex[:12]
    f.write_text(rid)
    return rid
