"""IWSLT2017 English to German translation as RL4LMs builds it for GRUE (``IWSLT2017EnDe`` data
pool; docs/grue-tasks.md §1.4).

- prompt = ``prompt_prefix`` + the English sentence + ``prompt_suffix``: "translate English to
  German: <en>" (T5's pretraining prefix);
- references = ``[translation["de"]]``: one reference;
- splits: the hub's train / validation / test of ``iwslt2017-de-en`` (206,112 / 888 / 8,079
  sentence pairs), in the hub's order;
- lengths: prompts ≤ 128 tokens cut on the RIGHT, at most 128 new tokens, no minimum.

Data: ``datasets.load_dataset("IWSLT/iwslt2017", "iwslt2017-de-en")`` (RL4LMs: ``iwslt2017``, with
``ignore_verifications``), or a local folder with the hub's files: JSON lines or Parquet whose
rows hold ``translation: {"de": ..., "en": ...}`` (the hub's Parquet export of the loading script,
``iwslt2017-de-en/{train,validation,test}/*.parquet``, is such a copy): ``task.data_dir`` or
$RFT_DATA_DIR holding ``iwslt2017/``.

Data: Cettolo et al., "Overview of the IWSLT 2017 Evaluation Campaign", IWSLT 2017.
"""

from __future__ import annotations

from rft.errors import DataError
from rft.task.base import Example, Task, data_folder, load_hub_dataset
from rft.task.files import hub_rows, read_split, require_columns, split_files

FOLDER = "iwslt2017"
FILES = "the hub's iwslt2017-de-en/{train,validation,test} files (rows with translation: {de, en})"


class Iwslt2017Task(Task):
    name = "iwslt2017"

    def __init__(self, **cfg):
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        super().__init__(cfg)
        folder, looked_in = data_folder(cfg, FOLDER, lambda p: bool(split_files(p, "train")))
        splits = ("train", "validation", "test")
        if folder is not None:
            rows = {s: read_split(folder, s, "IWSLT2017") for s in splits}
        else:
            ds = load_hub_dataset(cfg.hub_id, FOLDER, cfg.hub_config, FILES, looked_in)
            rows = {s: hub_rows(ds, s, cfg.hub_id) for s in splits}
        self.train, self.val, self.test = ([self._example(*r) for r in rows[s]] for s in splits)
        self.check()

    def _example(self, where: str, row: dict) -> Example:
        require_columns(row, ("translation",), where)
        pair = row["translation"] or {}
        src, tgt = self.cfg.source_language, self.cfg.target_language
        for lang, knob in ((src, "source_language"), (tgt, "target_language")):
            if not isinstance(pair.get(lang), str):
                raise DataError(
                    f"{where}: its translation has no {lang!r} text (languages: "
                    f"{sorted(pair)}). Check task.{knob} and the hub configuration "
                    f"(task.hub_config={self.cfg.hub_config})."
                )
        prompt = f"{self.cfg.prompt_prefix}{pair[src]}{self.cfg.prompt_suffix}"
        return Example(prompt, reference=pair[tgt], references=[pair[tgt]])
