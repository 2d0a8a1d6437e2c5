"""CNN/DailyMail summarisation as RL4LMs builds it for GRUE (``CNNDailyMail`` data pool;
docs/grue-tasks.md §1.1).

- prompt = ``prompt_prefix`` + article + ``prompt_suffix``: "Summarize: <article>" (the capital S
  of every GRUE summarisation config; T5's own pretraining prefix is lower-case);
- references = ``[highlights]``: one reference, its sentences separated by ``\\n`` as the hub
  gives them;
- splits: the hub's train / validation / test (287,113 / 13,368 / 11,490 articles), in the hub's
  order, nothing dropped (RL4LMs' ``max_size`` and ``truncate_article`` are set by no GRUE
  config);
- lengths: prompts ≤ 512 tokens cut on the RIGHT (the start of the article is kept), 50-100 new
  tokens.

Data: ``datasets.load_dataset("abisee/cnn_dailymail", "3.0.0")`` (RL4LMs: ``cnn_dailymail``, its
old name), or a local folder with the hub repository's files (``3.0.0/train-*.parquet`` and its
validation / test shards, or JSON lines with the columns ``article``, ``highlights``, ``id``):
``task.data_dir`` or $RFT_DATA_DIR holding ``cnn_dailymail/``.

Data: Hermann et al., "Teaching Machines to Read and Comprehend", NeurIPS 2015; See et al., "Get
To The Point", ACL 2017.
"""

from __future__ import annotations

from rft.errors import DataError
from rft.task.base import Example, Task, data_folder, load_hub_dataset
from rft.task.files import hub_rows, read_split, require_columns, split_files

FOLDER = "cnn_dailymail"
COLUMNS = ("article", "highlights")
SPLITS = ("train", "validation", "test")
FILES = "the hub's 3.0.0/{train,validation,test}-*.parquet (or JSON lines with article, highlights)"


class CnnDailymailTask(Task):
    name = "cnn_dailymail"

    def __init__(self, **cfg):
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        super().__init__(cfg)
        folder, looked_in = data_folder(cfg, FOLDER, lambda p: bool(split_files(p, "train")))
        if folder is not None:
            rows = {s: read_split(folder, s, "CNN/DailyMail") for s in SPLITS}
        else:
            ds = load_hub_dataset(cfg.hub_id, FOLDER, cfg.hub_config, FILES, looked_in)
            rows = {s: hub_rows(ds, s, cfg.hub_id) for s in SPLITS}
        self.train, self.val, self.test = ([self._example(*r) for r in rows[s]] for s in SPLITS)
        self.check()

    def _example(self, where: str, row: dict) -> Example:
        require_columns(row, COLUMNS, where)
        article, highlights = row["article"], row["highlights"]
        if not isinstance(article, str) or not isinstance(highlights, str) or not highlights:
            raise DataError(
                f"{where}: 'article' and 'highlights' must be non-empty strings (got "
                f"{type(article).__name__}, {highlights!r:.60}). Copy the hub's files again."
            )
        prompt = f"{self.cfg.prompt_prefix}{article}{self.cfg.prompt_suffix}"
        return Example(
            prompt, reference=highlights, references=[highlights], meta={"id": row.get("id")}
        )
