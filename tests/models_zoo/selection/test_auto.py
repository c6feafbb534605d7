"""auto switches from TypiClust to balanced margin at the documented budget per class."""

from __future__ import annotations

import numpy as np
import pytest

from models_zoo.selection import auto as auto_module
from models_zoo.selection import select

from .conftest import planted_mixture, softmax


def _pool(n_labelled: int, *, with_probs: bool = True, n_classes: int | None = 4):
    x, y, _ = planted_mixture(4, 200, seed=0)
    rng = np.random.default_rng(0)
    labelled = np.zeros(len(x), bool)
    labelled[rng.choice(len(x), n_labelled, replace=False)] = True
    probs = softmax(rng.standard_normal((len(x), 4))) if with_probs else None
    return dict(
        embeddings=x,
        labelled_mask=labelled,
        probs=probs,
        labels=np.where(labelled, y, -1),
        n_classes=n_classes,
    )


@pytest.mark.parametrize(
    ("n_labelled", "expect"),
    [
        (0, "typiclust"),
        (79, "typiclust"),
        (80, "balanced_margin"),
        (120, "balanced_margin"),
    ],  # switch at 20 per class x 4
)
def test_switches_at_twenty_labels_per_class(n_labelled, expect):
    assert auto_module.SWITCH_LABELS_PER_CLASS == 20
    kw = _pool(n_labelled)
    sel = select("auto", batch_size=5, seed=0, **kw)
    assert all(r.startswith(f"auto: {expect} (") for r in sel.reasons)
    assert sel.strategy == expect and sel.samples_pool == (expect == "typiclust")
    direct = select(expect, batch_size=5, seed=0, **kw)
    np.testing.assert_array_equal(sel.indices, direct.indices)


def test_stays_cold_without_a_model():
    sel = select("auto", batch_size=5, seed=0, **_pool(400, with_probs=False))
    assert sel.reasons[0].startswith("auto: typiclust (400 labels, no model yet)")


def test_class_count_falls_back_to_probs():
    sel = select("auto", batch_size=5, seed=0, **_pool(80, n_classes=None))  # C = probs.shape[1] = 4
    assert sel.reasons[0].startswith("auto: balanced_margin (80 labels >= 20 per class x 4 classes)")


@pytest.mark.parametrize(
    ("spec", "n_labelled", "expect"),
    [
        ("auto@10", 39, "typiclust"),
        ("auto@10", 40, "balanced_margin"),  # 10 per class x 4
        ("auto@2.5:margin", 10, "margin"),
        ("auto@inf", 400, "typiclust"),  # never switches
        ("auto@0:entropy", 0, "entropy"),  # warm as soon as there is a model
    ],
)
def test_a_variant_switches_at_its_own_budget_per_class(spec, n_labelled, expect):
    kw = _pool(n_labelled)
    sel = select(auto_module.variant(spec), batch_size=5, seed=0, **kw)
    assert all(r.startswith(f"{spec}: {expect} (") for r in sel.reasons) and sel.strategy == expect
    np.testing.assert_array_equal(sel.indices, select(expect, batch_size=5, seed=0, **kw).indices)
    assert auto_module.SWITCH_LABELS_PER_CLASS == 20 and auto_module.WARM == "balanced_margin"  # untouched


def test_auto_itself_is_its_own_variant():
    assert auto_module.variant("auto") is auto_module.auto


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("typiclust", "is not an auto variant"),
        ("auto@", "is not a number"),
        ("auto@ten", "is not a number"),
        ("auto@-1", "K must be >= 0"),
        ("auto@nan", "K must be >= 0"),
        ("auto@10:nope", "unknown warm strategy 'nope'"),
        ("auto@10:auto", "unknown warm strategy 'auto'"),
    ],
)
def test_a_bad_variant_says_the_accepted_form(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        auto_module.variant(spec)
    assert "auto@K or auto@K:WARM" in str(err.value)


def test_the_switch_counts_labels_not_other_excluded_rows():
    # The service masks audit images, held and flagged ones too: those are no labels (a scale
    # review read "auto: ... (404 labels ...)" on a round selected at 380 training labels).
    kw = _pool(79)
    extra = np.flatnonzero(~kw["labelled_mask"])[:30]
    kw["labelled_mask"] = kw["labelled_mask"].copy()
    kw["labelled_mask"][extra] = True  # excluded, unlabelled
    sel = select("auto", batch_size=5, seed=0, **kw)
    assert sel.strategy == "typiclust" and "(79 labels < 20 per class" in sel.reasons[0]
    assert not set(sel.indices.tolist()) & set(extra.tolist())
