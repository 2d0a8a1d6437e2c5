"""WordNet for METEOR: the lexnames table nltk needs, the offline install from Debian's files
(idempotent, real copies), the setup script, and MetricUnavailable naming the fix when WordNet is
missing."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import pytest

from rft.metrics import MetricUnavailable, compute_metrics, wordnet

REPO = Path(__file__).resolve().parents[2]
MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")


def fake_debian(tmp_path: Path) -> Path:
    """A stand-in for /usr/share/wordnet: every file nltk needs, a few bytes each."""
    src = tmp_path / "debian"
    src.mkdir()
    for f in wordnet.FILES:
        (src / f).write_text(f"fake {f}\n")
    return src


def test_lexnames_is_the_45_line_wordnet_table():
    lines = wordnet.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1"
    assert lines[29] == "29\tverb.body\t2" and lines[44] == "44\tadj.ppl\t3"
    for i, line in enumerate(lines):  # what nltk's reader asserts while loading
        index, name, cat = line.split()
        assert int(index) == i
        assert int(cat) == {"noun": 1, "verb": 2, "adj": 3, "adv": 4}[name.split(".")[0]]


@pytest.mark.skipif(not MAN_PAGE.is_file(), reason="Debian's lexnames(5WN) man page not installed")
def test_lexnames_equals_the_debian_man_page_table():
    rows = [
        line.split("\t")[:2]
        for line in gzip.open(MAN_PAGE, "rt").read().splitlines()
        if line[:2].isdigit() and "\t" in line
    ]
    assert [(int(i), name.strip()) for i, name in rows] == [
        (i, name) for i, (name, _) in enumerate(wordnet.LEXNAMES)
    ]


def test_install_copies_real_files_and_is_idempotent(tmp_path):
    src = fake_debian(tmp_path)
    root = tmp_path / "nltk_data"
    dest = wordnet.install(root, src)
    assert dest == root / "corpora" / "wordnet"
    assert wordnet.missing_files(root) == []
    for f in wordnet.FILES:
        p = dest / f
        assert not p.is_symlink() and p.stat().st_nlink == 1  # nltk refuses links
        assert p.read_text() == f"fake {f}\n"
    assert (dest / "lexnames").read_text() == wordnet.lexnames_text()
    mtimes = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    wordnet.install(root, src)  # a second run copies nothing
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == mtimes


def test_a_symlinked_file_counts_as_missing_and_install_replaces_it(tmp_path):
    src = fake_debian(tmp_path)
    root = tmp_path / "nltk_data"
    dest = wordnet.install(root, src)
    (dest / "data.noun").unlink()
    (dest / "data.noun").symlink_to(src / "data.noun")
    assert wordnet.missing_files(root) == ["data.noun"]
    wordnet.install(root, src)
    assert not (dest / "data.noun").is_symlink() and wordnet.missing_files(root) == []


def test_install_without_the_debian_files_says_which_packages(tmp_path):
    with pytest.raises(MetricUnavailable, match="wordnet-base wordnet-sense-index"):
        wordnet.install(tmp_path / "nltk_data", tmp_path / "nothing")


def test_missing_wordnet_raises_metric_unavailable_with_the_fix(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MetricUnavailable) as e:
        compute_metrics(["meteor"], ["p"], ["a dog"], [["a dog"]], wordnet_dir=empty)
    msg = str(e.value)
    assert "WordNet" in msg and "python scripts/setup_wordnet.py" in msg and "make install" in msg
    assert str(empty / "corpora" / "wordnet") in msg and "lexnames" in msg


def test_default_folder_follows_the_rft_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("RFT_NLTK_DATA", raising=False)
    monkeypatch.setenv("RFT_CACHE_DIR", str(tmp_path))
    assert wordnet.data_dir() == tmp_path / "nltk_data"
    monkeypatch.setenv("RFT_NLTK_DATA", str(tmp_path / "mine"))
    assert wordnet.data_dir() == tmp_path / "mine"


def setup_script():
    spec = importlib.util.spec_from_file_location(
        "setup_wordnet", REPO / "scripts/setup_wordnet.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_setup_script_builds_then_finds_it_ready(tmp_path, capsys):
    script = setup_script()
    src, root = fake_debian(tmp_path), tmp_path / "nltk_data"
    assert script.main(["--dir", str(root), "--source", str(src)]) == 0
    assert "copied into" in capsys.readouterr().out and wordnet.missing_files(root) == []
    assert script.main(["--dir", str(root), "--source", str(src)]) == 0
    assert "ready in" in capsys.readouterr().out


def test_setup_script_without_apt_says_what_to_do(tmp_path, capsys, monkeypatch):
    script = setup_script()
    monkeypatch.setattr(script.shutil, "which", lambda name: None)  # no apt-get, no sudo
    args = ["--dir", str(tmp_path / "d"), "--source", str(tmp_path / "none")]
    assert script.main(args) == 0  # make install goes on
    err = capsys.readouterr().err
    assert "apt-get is not available" in err and "nltk.download('wordnet')" in err
    assert script.main([*args, "--strict"]) == 1
