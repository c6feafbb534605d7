"""Class-balance-aware uncertainty: margin sampling within predicted classes.

Plain margin sampling spends the batch where the model is confused, which is usually
between frequent classes; rare classes are starved. Here the unlabelled pool is split by
predicted class, each class's candidates are ranked by margin, and the batch is filled by
water-filling on the label count: the r-th most uncertain item predicted as class c gets
priority ``labelled[c] + r``, so classes with fewer labels are served first, and once the
counts are even the classes take turns. Ties go to the smaller margin.

After the class-balanced active learning of Aggarwal et al., "Active Learning for
Imbalanced Datasets" (WACV 2020) and the per-class margin of Bengar et al., "Class-Balanced
Active Learning for Image Classification" (WACV 2022), simplified to a closed-form
priority. O(U log U) work.
"""

from __future__ import annotations

import numpy as np

from models_zoo.selection.base import Selection, SelectionInput, register
from models_zoo.selection.uncertainty import margins


def balanced_order(pred: np.ndarray, margin: np.ndarray, label_count: np.ndarray) -> np.ndarray:
    """Order (U,) of candidates by (label_count[pred] + rank within pred, margin, pred).

    pred (U,) predicted class, margin (U,), label_count (C,) labels already held per class.
    """
    by_class = np.lexsort((margin, pred))  # (U,) grouped by class, smallest margin first
    sorted_pred = pred[by_class]
    first = np.searchsorted(sorted_pred, sorted_pred, side="left")  # start of each item's class run
    rank = np.empty(pred.size, np.int64)
    rank[by_class] = np.arange(pred.size) - first
    priority = label_count[pred] + rank  # labels the class would hold after this pick
    return np.lexsort((pred, margin, priority))


@register("balanced_margin")
def balanced_margin(inp: SelectionInput) -> Selection:
    """Smallest-margin items, spread over predicted classes, fewest-labelled classes first.

    Score = the item's margin. Uses ``labels`` (if given) to count labels per class.
    """
    probs = inp.require_probs("balanced_margin")
    pool = inp.pool()
    c = probs.shape[1]
    p = probs[pool]  # (U, C)
    pred = p.argmax(axis=1)  # (U,)
    m = margins(p)  # (U,)
    count = np.zeros(c, np.int64)
    if inp.labels is not None:
        known = inp.labels[(inp.labels >= 0) & (inp.labels < c)]
        count += np.bincount(known, minlength=c)
    top = balanced_order(pred, m, count)[: inp.batch_size]
    reasons = [f"margin {m[i]:.3f} among predicted class {pred[i]} ({count[pred[i]]} labelled)" for i in top]
    return Selection(pool[top], m[top].astype(np.float32), reasons)
