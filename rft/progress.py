"""Progress bars for the long batched loops outside Lightning's fit (scoring, sampling)."""

from __future__ import annotations

from tqdm.auto import tqdm


def batch_starts(n: int, batch_size: int, desc: str):
    """``range(0, n, batch_size)`` with a progress bar counted in batches."""
    return tqdm(range(0, n, batch_size), desc=desc, unit="batch", leave=False)
