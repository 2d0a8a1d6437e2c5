"""Build rft's nltk data folder with WordNet 3.0 for METEOR, offline (docs/offline-assets.md).

    python scripts/setup_wordnet.py [--dir DIR] [--strict]

1. Installs Debian's ``wordnet-base`` and ``wordnet-sense-index`` with apt-get when
   /usr/share/wordnet lacks them (as root; otherwise through ``sudo -n`` when that works).
2. Copies the database into ``DIR/corpora/wordnet/`` (default: ``$RFT_NLTK_DATA``, else
   ``$RFT_CACHE_DIR/nltk_data``, else ``~/.cache/rft/nltk_data``) and writes the ``lexnames``
   file Debian leaves out (rft.metrics.wordnet). rft's METEOR reads it from there by itself.

Idempotent: a second run changes nothing. Without apt (macOS, ...) it says what to do instead
and exits 0, so ``make install`` still completes (METEOR then raises MetricUnavailable naming
the fix); ``--strict`` makes that an error (exit 1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rft.metrics import wordnet
from rft.metrics.base import MetricUnavailable


def apt_install(packages: tuple[str, ...]) -> str | None:
    """Install ``packages`` with apt-get; None when it worked, else why not."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available on this machine"
    prefix: list[str] = []
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return "not root and no sudo"
        prefix = ["sudo", "-n"]  # never prompt: make install must not hang
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, "apt-get", "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env).returncode == 0:
        return None
    # a fresh image has empty package lists: update once and retry
    subprocess.run([*prefix, "apt-get", "update", "-q"], env=env)
    if subprocess.run(install, env=env).returncode == 0:
        return None
    return f"`{' '.join(install)}` failed"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=None, help="nltk data folder to build")
    ap.add_argument("--source", type=Path, default=wordnet.DEBIAN_DIR, help="Debian's WordNet")
    ap.add_argument("--strict", action="store_true", help="exit 1 when WordNet can't be set up")
    args = ap.parse_args(argv)
    root = args.dir if args.dir is not None else wordnet.data_dir()

    if not wordnet.missing_files(root):
        print(f"WordNet: ready in {wordnet.corpus_dir(root)}")
        return 0
    if any(not (args.source / f).is_file() for f in wordnet.FILES):
        why = apt_install(wordnet.DEBIAN_PACKAGES)
        if why is not None:
            print(
                f"WordNet not set up ({why}). METEOR needs it. Install the Debian packages "
                f"({' '.join(wordnet.DEBIAN_PACKAGES)}) and run this again, or with a network: "
                "python -c \"import nltk; nltk.download('wordnet')\"",
                file=sys.stderr,
            )
            return 1 if args.strict else 0
    try:
        dest = wordnet.install(root, args.source)
    except MetricUnavailable as e:
        print(f"WordNet not set up: {e}", file=sys.stderr)
        return 1 if args.strict else 0
    print(f"WordNet: copied into {dest} (with lexnames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
