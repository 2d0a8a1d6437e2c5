"""``rft cache``: see and manage the result store.

    rft cache ls [--kind evaluation] [--json]      entries: key, kind, size, age, last use, run
    rft cache show <key prefix>                    one entry's manifest (what its key was made of)
    rft cache verify [--delete]                    every checksum; exit 1 if a bad entry remains
    rft cache prune --older-than 30d | --max-size 20G | --kind K  [--dry-run]

Every subcommand takes ``--store PATH`` (default: what ``store.path=null`` means, i.e.
$RFT_STORE_DIR, else $RFT_CACHE_DIR/store, else ~/.cache/rft/store). ``prune`` removes entries
not used for longer than ``--older-than``, then the least recently used ones until the store
holds at most ``--max-size``, only of ``--kind`` if given (``--kind`` alone: every entry of
that kind); it also removes unreadable entries and what killed writers left behind. Removing an
entry that a running job is reading makes that job recompute it at worst; a run keeps its own
copy of what it reused (eval/, warm_start/policy), so a finished run never depends on the store.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path

from rft.store.store import Entry, ResultStore, check_entry, default_store_path

LEFTOVER_AGE_S = 6 * 3600  # staging folders and locks untouched this long belong to dead writers

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_UNITS_B = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_duration(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' -> seconds.

    >>> parse_duration("1.5h")
    5400.0
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number and a unit s/m/h/d/w, e.g. 30d")
    return float(m.group(1)) * _UNITS_S[m.group(2)]


def parse_size(text: str) -> int:
    """'20G', '500M', '1.5T', '4096' (bytes) -> bytes.

    >>> parse_size("1.5k")
    1536
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: give a size such as 20G, 500M or 4096")
    return int(float(m.group(1)) * _UNITS_B[m.group(2)])


def human_size(n: float) -> str:
    for unit in ("B", "K", "M", "G"):
        if abs(n) < 1024:
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}T"


def human_age(s: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.1f}{unit}"
    return f"{s:.0f}s"


def select_prune(
    entries: list[Entry],
    *,
    now: float,
    older_than_s: float | None = None,
    max_bytes: int | None = None,
    kinds: list[str] | None = None,
) -> list[Entry]:
    """The entries ``prune`` removes (module docstring): only ``kinds`` (all if None); those
    unused for more than ``older_than_s``; then least recently used first until the whole
    store holds ≤ ``max_bytes``; with neither limit, every entry of ``kinds``."""
    pool = [e for e in entries if kinds is None or e.kind in kinds]
    if older_than_s is None and max_bytes is None:
        return pool if kinds is not None else []
    chosen = [e for e in pool if older_than_s is not None and now - e.last_used() > older_than_s]
    if max_bytes is not None:
        picked = {id(e) for e in chosen}
        left = sum(e.size for e in entries if id(e) not in picked)
        for e in sorted((e for e in pool if id(e) not in picked), key=Entry.last_used):
            if left <= max_bytes:
                break
            chosen.append(e)
            left -= e.size
    return chosen


# ---------------------------------------------------------------------------------- commands
def cmd_ls(store: ResultStore, args) -> int:
    now = time.time()
    entries = sorted(store.entries(args.kind), key=lambda e: e.created)
    if args.json:
        print(json.dumps([{**e.manifest, "path": str(e.path)} for e in entries], indent=1))
        return 0
    print(f"store {store.root}")
    if entries:
        print(f"{'key':<12}  {'kind':<16}  {'size':>7}  {'age':>6}  {'used':>6}  origin")
    for e in entries:
        run = e.origin.get("run") or f"{e.origin.get('host', '?')}:{e.origin.get('pid', '?')}"
        print(
            f"{e.digest[:12]:<12}  {e.kind:<16}  {human_size(e.size):>7}  "
            f"{human_age(now - e.created):>6}  {human_age(now - e.last_used()):>6}  {run}"
        )
    broken = sum(m is None for _, m in store.scan())
    left = store.leftovers(LEFTOVER_AGE_S, now)
    total = sum(e.size for e in entries)
    print(f"{len(entries)} entries, {human_size(total)}")
    if broken or left:
        print(
            f"{broken} unreadable entries, {len(left)} leftovers of killed writers: "
            "`rft cache prune --older-than 30d` removes them"
        )
    return 0


def cmd_show(store: ResultStore, args) -> int:
    found = [e for e in store.entries() if e.digest.startswith(args.key)]
    if len(found) != 1:
        print(f"rft cache show: {len(found)} entries start with {args.key!r}", file=sys.stderr)
        return 1
    print(json.dumps({**found[0].manifest, "path": str(found[0].path)}, indent=1))
    return 0


def cmd_verify(store: ResultStore, args) -> int:
    n = bad = 0
    for folder, _ in store.scan():
        n += 1
        manifest, problem = check_entry(folder)
        if problem is None:
            continue
        bad += 1
        kind = (manifest or {}).get("kind", "?")
        action = "removed" if args.delete else "bad"
        print(f"{action}: {folder.name[:12]} {kind}: {problem}")
        if args.delete:
            store.remove(folder)
    print(f"{n} entries checked, {bad} bad" + (" (removed)" if args.delete and bad else ""))
    return 1 if bad and not args.delete else 0


def cmd_prune(store: ResultStore, args) -> int:
    if args.older_than is None and args.max_size is None and not args.kind:
        print(
            "rft cache prune: give --older-than (e.g. 30d), --max-size (e.g. 20G) and/or --kind",
            file=sys.stderr,
        )
        return 2
    now = time.time()
    chosen = select_prune(
        store.entries(),
        now=now,
        older_than_s=args.older_than,
        max_bytes=args.max_size,
        kinds=args.kind or None,
    )
    broken = [f for f, m in store.scan() if m is None]
    left = store.leftovers(LEFTOVER_AGE_S, now)
    verb = "would remove" if args.dry_run else "removed"
    for e in chosen:
        print(
            f"{verb}: {e.digest[:12]} {e.kind} {human_size(e.size)} (unused {human_age(now - e.last_used())})"
        )
        if not args.dry_run:
            store.remove(e)
    for f in broken:
        print(f"{verb}: {f.name[:12]} (unreadable manifest)")
        if not args.dry_run:
            store.remove(f)
    for p in left:
        print(f"{verb}: {p.relative_to(store.root)} (left by a killed writer)")
        if not args.dry_run and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif not args.dry_run:
            p.unlink(missing_ok=True)
    freed = sum(e.size for e in chosen)
    print(
        f"{verb} {len(chosen)} entries ({human_size(freed)}), {len(broken) + len(left)} leftovers"
    )
    return 0


def build_parser(prog: str) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        type=Path,
        default=None,
        help=f"the store folder (default: {default_store_path()})",
    )
    p = argparse.ArgumentParser(prog=prog, description="See and manage rft's result store.")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("ls", parents=[common], help="list entries")
    ls.add_argument("--kind", default=None, help="only entries of this kind (e.g. evaluation)")
    ls.add_argument("--json", action="store_true", help="the manifests as JSON")
    show = sub.add_parser("show", parents=[common], help="one entry's manifest")
    show.add_argument("key", help="the key's digest or a unique prefix of it (from ls)")
    ver = sub.add_parser("verify", parents=[common], help="check every entry's checksums")
    ver.add_argument("--delete", action="store_true", help="remove the bad entries")
    pr = sub.add_parser("prune", parents=[common], help="remove old / least recently used entries")
    pr.add_argument("--older-than", type=parse_duration, default=None, help="unused for, e.g. 30d")
    pr.add_argument("--max-size", type=parse_size, default=None, help="keep at most, e.g. 20G")
    pr.add_argument("--kind", action="append", default=[], help="only this kind (repeatable)")
    pr.add_argument("--dry-run", action="store_true", help="print what would go, remove nothing")
    return p


COMMANDS = {"ls": cmd_ls, "show": cmd_show, "verify": cmd_verify, "prune": cmd_prune}


def main(argv: list[str] | None = None, prog: str = "rft cache") -> int:
    args = build_parser(prog).parse_args(argv)
    store = ResultStore(args.store or default_store_path())
    return COMMANDS[args.cmd](store, args)


if __name__ == "__main__":
    raise SystemExit(main())
