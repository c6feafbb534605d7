"""auto: typicality at cold start, uncertainty with diversity once labels per class suffice.

Low budgets favour typical, representative points and high budgets uncertain ones
(Hacohen et al., ICML 2022, "opposite strategies suit high and low budgets"). The switch:

    use WARM ("badge": uncertainty with diversity, Ash et al. 2020) when
        probs are given  and  labelled >= SWITCH_LABELS_PER_CLASS * C      (C classes)
    else COLD ("typiclust", Hacohen et al. 2022), which needs embeddings only.

C comes from ``n_classes``, else ``probs``, else the known labels. The rule is a budget
per class (mean labels per class, so a rare class cannot hold the switch back forever).
It was chosen by measurement (``python -m bench.select --quality``, docs/selection.md):
on Fashion-MNIST (PCA-64 features) and scikit-learn digits, 5 seeds, budgets 10-500,
switching at 10 labels per class had the best normalised AUC of {2, 5, 10} per class
and of the warm strategies {margin, balanced_margin, badge}; 2 per class loses ~2 points
at 50 labels, pure TypiClust loses 1-3 points at 500.
"""

from __future__ import annotations

from models_zoo.selection.base import Selection, SelectionInput, get, register

SWITCH_LABELS_PER_CLASS = 10.0
COLD = "typiclust"
WARM = "badge"


def phase(inp: SelectionInput) -> tuple[str, str]:
    """The strategy ``auto`` delegates to, and why (a short human-readable clause)."""
    c = inp.class_count()
    n_lab = int(inp.labelled_mask.sum())
    if inp.probs is None:
        return COLD, f"{n_lab} labels, no model yet"
    need = SWITCH_LABELS_PER_CLASS * c
    if n_lab < need:
        return COLD, f"{n_lab} labels < {SWITCH_LABELS_PER_CLASS:g} per class x {c} classes"
    return WARM, f"{n_lab} labels >= {SWITCH_LABELS_PER_CLASS:g} per class x {c} classes"


@register("auto")
def auto(inp: SelectionInput) -> Selection:
    """Delegates to ``phase(inp)``; each reason is prefixed with the phase and why."""
    name, why = phase(inp)
    sel = get(name)(inp)
    return Selection(sel.indices, sel.scores, [f"auto: {name} ({why}): {r}" for r in sel.reasons])
