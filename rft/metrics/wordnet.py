"""WordNet 3.0 for nltk's METEOR, built offline from Debian's packages (docs/offline-assets.md).

nltk reads WordNet from ``<root>/corpora/wordnet/`` where ``<root>`` is on ``nltk.data.path``.
Debian's ``wordnet-base`` and ``wordnet-sense-index`` install the same database under
/usr/share/wordnet, but nltk 3.10 cannot read that folder as it is: it needs a ``lexnames`` file
Debian leaves out, it refuses symlinks and hard links, and it refuses any path outside its data
roots. So ``install`` copies the files into rft's own nltk data folder and writes ``lexnames``
(``scripts/setup_wordnet.py``, run by ``make install``), and ``load`` adds that folder to
``nltk.data.path`` itself.

Where WordNet is looked for: ``wordnet_dir`` when given (only there), else ``$RFT_NLTK_DATA``,
else ``<rft cache>/nltk_data``, and when that has no WordNet, nltk's own search path (a WordNet
fetched by ``nltk.download('wordnet')`` works too).
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

from rft.metrics.base import MetricUnavailable

DEBIAN_DIR = Path("/usr/share/wordnet")
DEBIAN_PACKAGES = ("wordnet-base", "wordnet-sense-index")

# The WordNet files nltk's reader opens, all shipped by the two Debian packages.
FILES = (
    "cntlist.rev",
    "index.sense",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
)

# WordNet 3.0's lexicographer files: number, name, syntactic category (1 noun, 2 verb,
# 3 adjective, 4 adverb); the table of the lexnames(5WN) man page, which is the whole content
# of the `lexnames` file the WordNet distribution ships and Debian leaves out.
LEXNAMES = (
    ("adj.all", 3),
    ("adj.pert", 3),
    ("adv.all", 4),
    ("noun.Tops", 1),
    ("noun.act", 1),
    ("noun.animal", 1),
    ("noun.artifact", 1),
    ("noun.attribute", 1),
    ("noun.body", 1),
    ("noun.cognition", 1),
    ("noun.communication", 1),
    ("noun.event", 1),
    ("noun.feeling", 1),
    ("noun.food", 1),
    ("noun.group", 1),
    ("noun.location", 1),
    ("noun.motive", 1),
    ("noun.object", 1),
    ("noun.person", 1),
    ("noun.phenomenon", 1),
    ("noun.plant", 1),
    ("noun.possession", 1),
    ("noun.process", 1),
    ("noun.quantity", 1),
    ("noun.relation", 1),
    ("noun.shape", 1),
    ("noun.state", 1),
    ("noun.substance", 1),
    ("noun.time", 1),
    ("verb.body", 2),
    ("verb.change", 2),
    ("verb.cognition", 2),
    ("verb.communication", 2),
    ("verb.competition", 2),
    ("verb.consumption", 2),
    ("verb.contact", 2),
    ("verb.creation", 2),
    ("verb.emotion", 2),
    ("verb.motion", 2),
    ("verb.perception", 2),
    ("verb.possession", 2),
    ("verb.social", 2),
    ("verb.stative", 2),
    ("verb.weather", 2),
    ("adj.ppl", 3),
)

FIX = (
    "Run `python scripts/setup_wordnet.py` (or `make install`): it installs Debian's "
    "wordnet-base and wordnet-sense-index and builds rft's nltk data folder. Without apt, with a "
    "network: python -c \"import nltk; nltk.download('wordnet')\""
)

_readers: dict[str, object] = {}


def lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES))


def data_dir() -> Path:
    """rft's nltk data folder: ``$RFT_NLTK_DATA``, else ``<cache>/nltk_data``."""
    if os.environ.get("RFT_NLTK_DATA"):
        return Path(os.environ["RFT_NLTK_DATA"]).expanduser()
    # the cache root of rft.model.load.cache_root (not imported: that module loads transformers)
    cache = Path(os.environ.get("RFT_CACHE_DIR", Path.home() / ".cache" / "rft"))
    return cache / "nltk_data"


def corpus_dir(root: Path) -> Path:
    return Path(root) / "corpora" / "wordnet"


def missing_files(root: Path) -> list[str]:
    """The WordNet files nltk needs that ``<root>/corpora/wordnet`` lacks (symlinks count as
    missing: nltk refuses them)."""
    d = corpus_dir(root)
    return [f for f in (*FILES, "lexnames") if not (d / f).is_file() or (d / f).is_symlink()]


def install(root: Path | None = None, source: Path = DEBIAN_DIR) -> Path:
    """Copy WordNet from ``source`` (Debian's folder) into ``<root>/corpora/wordnet`` and write
    ``lexnames``. Idempotent: files already there with the source's size are kept. Returns the
    corpus folder."""
    root = Path(root) if root is not None else data_dir()
    source = Path(source)
    absent = [f for f in FILES if not (source / f).is_file()]
    if absent:
        raise MetricUnavailable(
            f"WordNet files {absent} are not in {source}: install the Debian packages first "
            f"(apt-get install -y --no-install-recommends {' '.join(DEBIAN_PACKAGES)})."
        )
    dest = corpus_dir(root)
    dest.mkdir(parents=True, exist_ok=True)
    for f in FILES:
        src, dst = source / f, dest / f
        if dst.is_symlink():
            dst.unlink()
        if dst.is_file() and dst.stat().st_size == src.stat().st_size:
            continue
        # a real copy, never a link: nltk refuses symlinks and hard links into its data roots
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
    lex = dest / "lexnames"
    if not lex.is_file() or lex.read_text() != lexnames_text():
        lex.write_text(lexnames_text())
    return dest


def _find_root(wordnet_dir: str | Path | None) -> Path | None:
    """The nltk data root to read WordNet from, or None for nltk's own search path."""
    if wordnet_dir is not None:
        root = Path(wordnet_dir).expanduser()
        missing = missing_files(root)
        if missing:
            raise MetricUnavailable(
                f"METEOR needs WordNet, but {corpus_dir(root)} lacks {', '.join(missing)}. {FIX}"
            )
        return root
    root = data_dir()
    return root if not missing_files(root) else None


def load(wordnet_dir: str | Path | None = None):
    """nltk's WordNet reader (loaded once per folder), or MetricUnavailable naming the fix."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root = _find_root(wordnet_dir)
    key = str(root)
    if key in _readers:
        return _readers[key]
    if root is None:
        try:  # nltk's own data path (NLTK_DATA, ~/nltk_data, a downloaded wordnet.zip, ...)
            nltk.corpus.wordnet.get_version()  # any attribute makes the lazy loader load
        except LookupError:
            raise MetricUnavailable(
                f"METEOR needs WordNet, which is neither in rft's nltk data folder "
                f"({corpus_dir(data_dir())}) nor on nltk's data path. {FIX}"
            ) from None
        reader = nltk.corpus.wordnet
    else:
        # nltk opens corpus files only under a root on nltk.data.path (its path sandbox)
        if str(root) not in map(str, nltk.data.path):
            nltk.data.path.insert(0, str(root))
        with warnings.catch_warnings():  # "multilingual functions not available": not used
            warnings.simplefilter("ignore", UserWarning)
            reader = WordNetCorpusReader(str(corpus_dir(root)), None)
    _readers[key] = reader
    return reader
