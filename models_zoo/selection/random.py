"""Uniform random sampling of unlabelled items: the baseline every strategy must beat."""

from __future__ import annotations

import numpy as np

from models_zoo.selection.base import Selection, SelectionInput, register


@register("random", samples_pool=True)
def random_strategy(inp: SelectionInput) -> Selection:
    pool = np.flatnonzero(~inp.labelled_mask)  # (U,)
    rng = np.random.default_rng(inp.seed)
    k = min(inp.batch_size, pool.size)
    chosen = rng.choice(pool, size=k, replace=False).astype(np.int64)
    return Selection(chosen, np.zeros(k, np.float32), ["random pick"] * k)
