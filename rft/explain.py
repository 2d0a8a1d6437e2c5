"""`rft explain <overrides>`: every knob of a composed config, its value and its help.

    rft explain alg=ppo task=imdb
    rft explain experiment=debug alg=a_lol --changed      # only what differs from the schema

One line per knob: dotted key, value, and the help from the schema (rft/config.py). A ``*``
marks a value that differs from the schema default; the line then names the default and the
file (or the command line) that set the value. Keys no schema declares (a custom reward's
arguments, weighted_sum terms) print with ``-`` as their help.

The sources come from Hydra's defaults list: the YAML files merged in order, then the command
line; the last one to set a key is named.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rft.config import choice, help_of

CONF = Path(__file__).resolve().parents[1] / "conf"


@dataclass
class Knob:
    key: str  # dotted path, e.g. alg.kl.beta
    value: Any  # resolved where it resolves, else the raw interpolation
    default: Any  # the schema default; `_NO_SCHEMA`: no schema default (required/undeclared)
    help: str | None
    source: str | None  # the file or "command line" that set it last; None: the schema
    raw: Any = None  # the unresolved value (compared when the default is an interpolation)

    @property
    def changed(self) -> bool:
        if self.default is _NO_SCHEMA:
            return False
        if isinstance(self.default, str) and "${" in self.default:
            return self.raw != self.default
        return not _same(self.value, self.default)


_NO_SCHEMA = object()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return list(a or []) == list(b or [])
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return choice(a) == choice(b)


def _default_instance(schema: Any) -> Any:
    """A schema dataclass built with its defaults (None when ``schema`` is not one)."""
    return schema() if isinstance(schema, type) and dataclasses.is_dataclass(schema) else None


def _leaf_value(node: DictConfig, name: str) -> Any:
    try:
        value = node[name]
    except Exception:  # an interpolation that needs a running Hydra job (${hydra:...}, ${now:})
        value = OmegaConf.to_container(node, resolve=False).get(name)
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    return choice(value) if hasattr(value, "value") else value


def walk(node: DictConfig, prefix: str = "", defaults: Any = None) -> list[Knob]:
    """Every leaf of ``node`` with its schema default and help (no sources).

    ``defaults`` is the schema instance this node's defaults come from: the enclosing block's
    default (so ``alg.guide.generation.top_p`` defaults to GuideConfig's 0.92, not to
    GenerationConfig's 1.0), or a fresh instance of the node's own schema."""
    if defaults is None:
        defaults = _default_instance(OmegaConf.get_type(node))
    schema = type(defaults) if defaults is not None else None
    out = []
    for name in node.keys():
        name = str(name)
        key = f"{prefix}{name}"
        child = node._get_node(name)
        if isinstance(child, DictConfig) and not (
            child._is_missing() or child._is_none() or child._is_interpolation()
        ):
            sub = getattr(defaults, name, None)
            out += walk(child, key + ".", sub if dataclasses.is_dataclass(sub) else None)
            continue
        default = getattr(defaults, name, _NO_SCHEMA) if defaults is not None else _NO_SCHEMA
        if default == "???" or dataclasses.is_dataclass(default):
            default = _NO_SCHEMA  # required (the option sets it) or a block the option replaced
        raw = OmegaConf.to_container(node, resolve=False).get(name)
        knob = Knob(key, _leaf_value(node, name), default, help_of(schema, name), None, raw)
        out.append(knob)
    return out


def _flatten(d: Any, prefix: str) -> list[str]:
    if isinstance(d, dict) and d:
        return [k for name, v in d.items() for k in _flatten(v, f"{prefix}{name}.")]
    return [prefix[:-1]]


def sources(overrides: list[str], conf_dir: Path = CONF) -> dict[str, str]:
    """dotted key -> the file (relative to the repo) or "command line" that set it last."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    loader = GlobalHydra.instance().config_loader()
    found: dict[str, str] = {}
    for d in loader.compute_defaults_list("config", overrides, RunMode.RUN).defaults:
        path = conf_dir / f"{d.config_path}.yaml"
        if d.config_path is None or not path.is_file():
            continue  # a schema in the ConfigStore, or Hydra's own configs
        body = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
        body.pop("defaults", None)
        body.pop("hydra", None)
        package = f"{d.package}." if d.package else ""
        for key in _flatten(body, package):
            found[key] = f"{conf_dir.name}/{d.config_path}.yaml"
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if "=" in o and "." in key:  # key.path=value (a bare `group=option` is a choice)
            found[key] = "command line"
    return found


def explain(overrides: list[str], conf_dir: Path = CONF) -> list[Knob]:
    """The knobs of ``config`` composed with ``overrides``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import rft  # noqa: F401  (registers the schemas)

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
        src = sources(list(overrides), conf_dir)
    knobs = walk(cfg)
    for k in knobs:
        # a key set inside a block (alg.kl: {...}) is attributed to the file that set the block
        parts = k.key.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in src:
                k.source = src[".".join(parts[:i])]
                break
    return knobs


def _fmt(v: Any) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else choice(v)


def format_knobs(knobs: list[Knob], changed_only: bool = False) -> str:
    rows = [k for k in knobs if k.changed or not changed_only]
    width = max((len(k.key) for k in rows), default=0)
    vwidth = min(24, max((len(_fmt(k.value)) for k in rows), default=0))
    lines = []
    for k in rows:
        line = f"{k.key:<{width}}  {_fmt(k.value):<{vwidth}} {'*' if k.changed else ' '} "
        line += k.help or "-"
        if k.changed:
            line += f"  [default {_fmt(k.default)}; set by {k.source or 'the schema'}]"
        lines.append(line.rstrip())
    lines.append("")
    lines.append("* differs from the schema default (rft/config.py); `rft explain --help`")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "rft explain") -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rft.alg.schemas import check_renamed
    from rft.errors import ConfigError

    p = argparse.ArgumentParser(
        prog=prog,
        description="Print every knob of a composed config: key, value, help; * marks a value "
        "that differs from the schema default, with the file that set it.",
    )
    p.add_argument("overrides", nargs="*", help="the overrides you would give run.py")
    p.add_argument("--changed", action="store_true", help="only the knobs that differ")
    p.add_argument("--conf", type=Path, default=CONF, help="config folder (default: conf/)")
    a = p.parse_args(argv)
    try:
        check_renamed(a.overrides)
        knobs = explain(a.overrides, a.conf.resolve())
    except (HydraException, OmegaConfBaseException, ConfigError) as e:
        cause = f"\n{e.__cause__}" if e.__cause__ else ""
        print(f"{prog}: error: {e}{cause}", flush=True)
        return 2
    print(format_knobs(knobs, a.changed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
