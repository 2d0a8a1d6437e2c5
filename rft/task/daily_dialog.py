"""DailyDialog next-utterance generation as RL4LMs builds it for GRUE (``DailyDialog`` data pool;
docs/grue-tasks.md §1.5).

For each dialogue u_0 .. u_{n-1} and each turn i ≥ K (``context_size``, 5):

- prompt = ``"<EOU>".join(u_{i-K} .. u_{i-1}) + " <EOU>"``: the last K utterances, the plain
  string ``<EOU>`` between them (not a special token: the tokenizer splits it), a space and one
  more ``<EOU>`` after the last;
- references = ``[u_i + "<EOU>"]``; meta = ``{"emotion": [emotion_i], "intent": [act_i]}`` (act:
  1 inform, 2 question, 3 directive, 4 commissive; the intent-accuracy metric and reward read
  it: rft.metrics.intent);
- the first K turns of a dialogue are never targets, and dialogues of at most K turns give
  nothing; ``meta["id"]`` is RL4LMs' sample id, a running utterance counter over the split;
- utterances as the hub gives them (space-tokenised, with the spaces around them), unstripped;
- lengths: prompts ≤ 128 tokens cut on the LEFT (the latest context is kept), 2-20 new tokens.

Splits: the hub's train / validation / test (11,118 / 1,000 / 1,000 dialogues).

Data: ``datasets.load_dataset("li2017dailydialog/daily_dialog")`` (RL4LMs: ``daily_dialog``) where
the installed ``datasets`` still runs its loading script (datasets < 4), or a local folder with
the files that script reads, the release's ``{train,validation,test}/dialogues_<split>.txt``,
``dialogues_act_<split>.txt`` and ``dialogues_emotion_<split>.txt`` (utterances separated by
``__eou__``, labels by spaces; in split folders or side by side), parsed as the script parses
them, or Parquet / JSON lines with the hub's columns ``dialog``, ``act``, ``emotion``:
``task.data_dir`` or $RFT_DATA_DIR holding ``daily_dialog/``.

Data: Li et al., "DailyDialog: A Manually Labelled Multi-turn Dialogue Dataset", IJCNLP 2017.
"""

from __future__ import annotations

from pathlib import Path

from rft.errors import ConfigError, DataError
from rft.task.base import Example, Task, data_folder, load_hub_dataset
from rft.task.files import hub_rows, read_split, require_columns, split_files

FOLDER = "daily_dialog"
EOU = "<EOU>"  # RL4LMs' utterance separator in prompts and references
RELEASE_EOU = "__eou__"  # the release files' separator
SPLITS = ("train", "validation", "test")
FILES = "the release's {train,validation,test}/dialogues_{,act_,emotion_}<split>.txt"


def release_files(folder: Path, split: str) -> dict[str, Path] | None:
    """The three release files of ``split`` (in ``folder/<split>/`` or ``folder``), or None."""
    for d in (folder / split, folder):
        paths = {
            "dialog": d / f"dialogues_{split}.txt",
            "act": d / f"dialogues_act_{split}.txt",
            "emotion": d / f"dialogues_emotion_{split}.txt",
        }
        if all(p.is_file() for p in paths.values()):
            return paths
    return None


def read_release(paths: dict[str, Path]) -> list[tuple[str, dict]]:
    """Dialogues from the release's three parallel files, as the hub's loading script parses
    them: stop at the first blank dialogue line; utterances = the pieces before each
    ``__eou__``; labels = the space-separated pieces before the last space."""
    texts = {}
    for k, p in paths.items():
        with open(p, encoding="utf-8") as f:  # the lines as the loading script iterates them
            texts[k] = list(f)
    rows = []
    for i, (line_d, line_a, line_e) in enumerate(
        zip(texts["dialog"], texts["act"], texts["emotion"]), 1
    ):
        if not line_d.strip():
            break
        dialog = line_d.split(RELEASE_EOU)[:-1]
        act, emotion = line_a.split(" ")[:-1], line_e.split(" ")[:-1]
        if not len(dialog) == len(act) == len(emotion):
            raise DataError(
                f"{paths['dialog']}:{i}: {len(dialog)} utterances, but line {i} of "
                f"{paths['act'].name} has {len(act)} acts and of {paths['emotion'].name} "
                f"{len(emotion)} emotions. The three files must describe the same turns."
            )
        try:
            acts, emotions = [int(a) for a in act], [int(e) for e in emotion]
        except ValueError:
            raise DataError(
                f"{paths['act']}:{i} or {paths['emotion']}:{i}: the labels must be integers "
                f"(got {act} and {emotion})."
            ) from None
        row = {"dialog": dialog, "act": acts, "emotion": emotions}
        rows.append((f"{paths['dialog']}:{i}", row))
    return rows


def dialog_samples(dialogs: list[tuple[str, dict]], context_size: int) -> list[Example]:
    """RL4LMs' samples of one split's (where, dialogue) rows (module docstring); the ids run
    over the whole split."""
    out, utterance_id = [], 0
    for where, row in dialogs:
        require_columns(row, ("dialog", "act", "emotion"), where)
        turns, acts, emotions = row["dialog"], row["act"], row["emotion"]
        if not len(turns) == len(acts) == len(emotions):
            raise DataError(
                f"{where}: {len(turns)} utterances, {len(acts)} acts, "
                f"{len(emotions)} emotions: each utterance needs one of each."
            )
        context: list[str] = []
        for utterance, emotion, act in zip(turns, emotions, acts):
            if len(context) >= context_size:
                prompt = EOU.join(context[-context_size:]) + " " + EOU
                meta = {"emotion": [int(emotion)], "intent": [int(act)], "id": utterance_id}
                target = utterance + EOU
                out.append(Example(prompt, reference=target, references=[target], meta=meta))
            context.append(utterance)
            utterance_id += 1
    return out


class DailyDialogTask(Task):
    name = "daily_dialog"

    def __init__(self, **cfg):
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        super().__init__(cfg)
        if cfg.context_size < 1:
            raise ConfigError(f"task.context_size={cfg.context_size}: must be ≥ 1 utterance.")

        def found(p: Path) -> bool:
            return release_files(p, "train") is not None or bool(split_files(p, "train"))

        folder, looked_in = data_folder(cfg, FOLDER, found)
        if folder is not None:
            dialogs = {}
            for s in SPLITS:
                paths = release_files(folder, s)
                dialogs[s] = read_release(paths) if paths else read_split(folder, s, "DailyDialog")
        else:
            ds = load_hub_dataset(cfg.hub_id, FOLDER, None, FILES, looked_in)
            dialogs = {s: hub_rows(ds, s, cfg.hub_id) for s in SPLITS}
        self.train, self.val, self.test = (
            dialog_samples(dialogs[s], cfg.context_size) for s in SPLITS
        )
        self.check()
