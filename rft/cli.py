"""`rft` console script: `rft <subcommand> [args]`.

Training itself goes through Hydra's `run.py`; this entry point hosts the tools around it.
Each subcommand is a module with `main(argv, prog=...)`, imported only when called so that
`rft --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "report": ("rft.report", "markdown table and plots for a multirun sweep folder"),
    "explain": (
        "rft.explain",
        "every knob of a composed config: value, help, the file that set it",
    ),
    "cache": ("rft.store.cli", "the result store: ls | show | verify | prune"),
}


def _usage() -> str:
    lines = ["usage: rft <subcommand> [args]", "", "subcommands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "`rft <subcommand> --help` for a subcommand's arguments."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"rft: unknown subcommand {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest, prog=f"rft {name}") or 0)


if __name__ == "__main__":
    raise SystemExit(main())
