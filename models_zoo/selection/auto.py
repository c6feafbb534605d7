"""auto: provisional (rule decided by measurement below)."""

from __future__ import annotations

from models_zoo.selection.base import Selection, SelectionInput, get, register

SWITCH_LABELS_PER_CLASS = 5.0
COLD = "typiclust"
WARM = "badge"


@register("auto")
def auto(inp: SelectionInput) -> Selection:
    c = inp.class_count()
    n_lab = int(inp.labelled_mask.sum())
    if inp.probs is None or c is None or n_lab < SWITCH_LABELS_PER_CLASS * c:
        return get(COLD)(inp)
    return get(WARM)(inp)
