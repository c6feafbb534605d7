"""auto: typicality at cold start, class-balanced uncertainty once labels per class suffice.

Low budgets favour typical, representative points and high budgets uncertain ones
(Hacohen et al., ICML 2022, "opposite strategies suit high and low budgets"). The switch:

    use WARM ("balanced_margin": margin within predicted classes, rarest classes first)
        when probs are given  and  labelled >= SWITCH_LABELS_PER_CLASS * C      (C classes)
    else COLD ("typiclust", Hacohen et al. 2022), which needs embeddings only.

C comes from ``n_classes``, else ``probs``, else the known labels. The rule is a budget
per class (mean labels per class, so a rare class cannot hold the switch back forever).
It was chosen by measurement (``python -m bench.select --quality``, docs/selection.md):
Fashion-MNIST (PCA-64) and scikit-learn digits, 5 seeds, budgets 10-500, switch points
{2, 5, 10, 20} labels per class x warm strategies {margin, balanced_margin, badge}.
10 per class with balanced_margin had the best or tied-best normalised AUC on both
(67.9 / 87.1; best elsewhere 68.1 / 87.1), was >= the class-balanced oracle at every
budget and >= random + 6.7 points at 10-50 labels; 2 per class lost 2 points at 50
labels, pure TypiClust lost 0.6-3 points at 500. The diversity comes from spreading the
batch over predicted classes; BADGE's embedding diversity measured 0.1-0.2 nAUC lower at
10x the cost on a large pool.
"""

from __future__ import annotations

from models_zoo.selection.base import Selection, SelectionInput, Strategy, get, names, register

SWITCH_LABELS_PER_CLASS = 10.0
COLD = "typiclust"
WARM = "balanced_margin"


def phase(
    inp: SelectionInput, switch: float | None = None, cold: str | None = None, warm: str | None = None
) -> tuple[str, str]:
    """The strategy ``auto`` delegates to, and why (a short human-readable clause). ``switch``,
    ``cold`` and ``warm`` default to the module's settings (a variant's are given, see
    :func:`variant`)."""
    switch = SWITCH_LABELS_PER_CLASS if switch is None else switch
    cold, warm = cold or COLD, warm or WARM
    c = inp.class_count()
    n_lab = int(inp.labelled_mask.sum())
    if inp.probs is None:
        return cold, f"{n_lab} labels, no model yet"
    need = switch * c
    if n_lab < need:
        return cold, f"{n_lab} labels < {switch:g} per class x {c} classes"
    return warm, f"{n_lab} labels >= {switch:g} per class x {c} classes"


@register("auto")
def auto(inp: SelectionInput) -> Selection:
    """Delegates to ``phase(inp)``; each reason is prefixed with the phase and why."""
    return _delegate(inp, "auto", SWITCH_LABELS_PER_CLASS, COLD, WARM)


def _delegate(inp: SelectionInput, label: str, switch: float, cold: str, warm: str) -> Selection:
    name, why = phase(inp, switch, cold, warm)
    sel = get(name)(inp)
    return Selection(sel.indices, sel.scores, [f"{label}: {name} ({why}): {r}" for r in sel.reasons])


def variant(spec: str) -> Strategy:
    """``auto`` with another switch, for measuring the rule (the simulator and bench-select take
    these names): ``"auto@K"`` switches at K labels per class (``inf``: never), ``"auto@K:WARM"``
    to the registered strategy WARM instead of balanced margin. ``"auto"`` itself is ``auto``.
    Raises ValueError with the accepted form for anything else."""
    if spec == "auto":
        return auto
    form = "auto@K or auto@K:WARM (K labels per class >= 0, or inf; WARM a registered strategy)"
    if not spec.startswith("auto@"):
        raise ValueError(f"{spec!r} is not an auto variant; give {form}")
    k_text, _, warm = spec[5:].partition(":")
    try:
        k = float(k_text)
    except ValueError:
        raise ValueError(f"{spec!r}: {k_text!r} is not a number; give {form}") from None
    if not k >= 0:  # also refuses nan
        raise ValueError(f"{spec!r}: K must be >= 0; give {form}")
    warm = warm or WARM
    if warm not in names() or warm.startswith("auto"):
        raise ValueError(f"{spec!r}: unknown warm strategy {warm!r}; give {form}")

    def strategy(inp: SelectionInput) -> Selection:
        return _delegate(inp, spec, k, COLD, warm)

    strategy.__name__ = f"auto_at_{k_text}"
    return strategy
