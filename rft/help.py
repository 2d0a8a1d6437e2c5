"""``python run.py --help``: the config groups and the options a user can pick, nothing else.

Hydra's own listing also shows the typed schemas behind the options (``ppo_schema``, ...) and
the groups that only other configs select (``experiment_family``: an experiment's change per
algorithm family). The help template (conf/config.yaml) calls ``${rft_groups:}`` instead.
"""

from __future__ import annotations

from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "conf"

HIDDEN_GROUPS = ("experiment_family",)
"""Groups that alg= options select themselves (experiment=debug's budget per family)."""


def config_groups(conf: Path = CONF) -> dict[str, list[str]]:
    """Each user-facing config group and its options (the YAML files in conf/<group>/)."""
    return {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(conf.iterdir())
        if d.is_dir() and d.name not in HIDDEN_GROUPS
    }


def groups_help() -> str:
    """One line per group: ``group: option, option, ...`` (wrapped)."""
    import textwrap

    lines = []
    for group, options in config_groups().items():
        text = f"{group}: {', '.join(options)}"
        lines += textwrap.wrap(text, width=96, subsequent_indent="    ")
    return "\n".join(lines)
