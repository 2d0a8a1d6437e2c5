"""Vanishing-gradient diagnostics for RFT (Razin et al., ICLR 2024).

- `reward_stats`: per-prompt reward mean/std of an [N, K] reward matrix, low-std share, and
  `save_extraction` to write an extraction run to disk.
- `plots`: std-vs-mean scatter (the paper's Figure 1), grad-norm-vs-std scatter.
- `controlled`: the paper's controlled experiment (SFT vs exact expected-reward gradient on
  a relabelled digits classifier); `python -m rft.diagnostics.controlled --help`.
"""

from rft.diagnostics.reward_stats import low_std_share, per_prompt_stats, save_extraction, summarize

__all__ = ["low_std_share", "per_prompt_stats", "save_extraction", "summarize"]
