"""auto: typicality at cold start, class-balanced uncertainty once labels per class suffice.

Low budgets favour typical, representative points and high budgets uncertain ones
(Hacohen et al., ICML 2022, "opposite strategies suit high and low budgets"). The switch:

    use WARM ("balanced_margin": margin within predicted classes, rarest classes first)
        when probs are given  and  labelled >= SWITCH_LABELS_PER_CLASS * C      (C classes)
    else COLD ("typiclust", Hacohen et al. 2022), which needs embeddings only.

C comes from ``n_classes``, else ``probs``, else the known labels. The rule is a budget
per class (mean labels per class, so a rare class cannot hold the switch back forever).
It was chosen by measurement through the simulator with the service's learner (``python -m
bench.al --strategies typiclust,auto@10,auto@20,auto@50 --name al_switch``, docs/selection.md):
on Fashion-MNIST (20k pool, 5 seeds, budgets 10-1,000) switching at 20 per class had 82.4 /
85.2 / 86.4 % at 200 / 500 / 1,000 labels against 81.0 / 84.9 / 85.4 at 10 per class, 82.4 /
85.0 / 86.2 at 50 and 82.4 / 85.0 / 85.9 never switching; on scikit-learn digits (budgets to
500) 20 and 10 per class tie (nAUC 95.5; 5 per class 95.7, never 95.3). An earlier choice of
10 per class came from a harness with a logistic-regression probe on PCA features
(``python -m bench.select --quality``), where 10 and 20 were within 0.2 nAUC; the service's
learner (label spreading, a second view) gets more from typical points and keeps gaining
from them to ~200 labels on Fashion-MNIST. The diversity of the warm phase comes from
spreading the batch over predicted classes; BADGE's embedding diversity measured 0.1-0.2
nAUC lower in that harness at 10x the cost on a large pool.
"""

from __future__ import annotations

from models_zoo.selection.base import Selection, SelectionInput, Strategy, get, names, register

SWITCH_LABELS_PER_CLASS = 20.0
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
    # Labels, not excluded rows: a service also masks rows it must not pick (audit images, images
    # being labelled, flagged ones), which are no labels the model learns from.
    n_lab = int((inp.labels >= 0).sum()) if inp.labels is not None else int(inp.labelled_mask.sum())
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
    return Selection(sel.indices, sel.scores, [f"{label}: {name} ({why}): {r}" for r in sel.reasons], name)


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
