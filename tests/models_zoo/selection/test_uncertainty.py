"""Known answers for least confidence, margin, entropy, BALD and balanced margin."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models_zoo.selection import select

from .conftest import softmax


def _inputs(probs, labelled=None, **kw):
    n = probs.shape[0]
    mask = np.zeros(n, bool) if labelled is None else labelled
    return dict(embeddings=np.zeros((n, 2), np.float32), labelled_mask=mask, probs=probs, **kw)


def test_margin_picks_the_smallest_gaps():
    probs = np.array(
        [[0.90, 0.05, 0.05], [0.40, 0.38, 0.22], [0.50, 0.45, 0.05], [0.34, 0.33, 0.33], [0.6, 0.2, 0.2]],
        np.float32,
    )
    sel = select("margin", **_inputs(probs), batch_size=3)
    assert sel.indices.tolist() == [3, 1, 2]  # gaps 0.01, 0.02, 0.05
    np.testing.assert_allclose(sel.scores, [0.01, 0.02, 0.05], atol=1e-6)
    assert sel.reasons[0] == "margin 0.010"


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 20))
def test_margin_matches_a_full_sort(seed, b):
    rng = np.random.default_rng(seed)
    probs = softmax(rng.standard_normal((60, 4)))
    labelled = rng.random(60) < 0.3
    sel = select("margin", **_inputs(probs, labelled), batch_size=b)
    top2 = np.sort(probs, axis=1)[:, -2:]
    gap = np.where(labelled, np.inf, top2[:, 1] - top2[:, 0])
    expect = np.sort(gap)[: min(b, (~labelled).sum())]
    np.testing.assert_allclose(np.sort(sel.scores), expect, atol=1e-7)


def test_least_confidence_and_entropy_prefer_flat_rows():
    probs = np.array([[0.98, 0.01, 0.01], [1 / 3, 1 / 3, 1 / 3], [0.7, 0.3, 0.0]], np.float32)
    assert select("least_confidence", **_inputs(probs), batch_size=1).indices.tolist() == [1]
    ent = select("entropy", **_inputs(probs), batch_size=3)
    assert ent.indices.tolist() == [1, 2, 0]
    np.testing.assert_allclose(ent.scores[0], np.log(3), rtol=1e-5)


def test_bald_prefers_disagreement_over_flat_agreement():
    # item 0: every sample flat (aleatoric, MI 0); item 1: samples confidently disagree (MI log 2)
    flat = [0.5, 0.5]
    mc = np.array(
        [[flat, [1.0, 0.0], [0.9, 0.1]], [flat, [0.0, 1.0], [0.9, 0.1]]], np.float32
    )  # (T=2, N=3, C=2)
    sel = select(
        "bald",
        embeddings=np.zeros((3, 2), np.float32),
        labelled_mask=np.zeros(3, bool),
        mc_probs=mc,
        batch_size=3,
    )
    assert sel.indices.tolist() == [1, 0, 2]
    np.testing.assert_allclose(sel.scores[0], np.log(2), rtol=1e-4)
    assert abs(sel.scores[1]) < 1e-5


def test_balanced_margin_serves_every_predicted_class():
    # Class 0 holds the ten smallest margins; plain margin would spend the whole batch there.
    rng = np.random.default_rng(0)
    n, c = 300, 3
    pred = np.repeat(np.arange(c), n // c)
    gap = rng.uniform(0.2, 0.9, n)
    gap[:10] = np.linspace(0.0, 0.05, 10)
    probs = np.full((n, c), 0.0, np.float32)
    probs[np.arange(n), pred] = 0.5 + gap / 2
    probs[np.arange(n), (pred + 1) % c] = 0.5 - gap / 2
    plain = select("margin", **_inputs(probs), batch_size=6)
    assert set(pred[plain.indices]) == {0}
    bal = select("balanced_margin", **_inputs(probs), batch_size=6)
    assert np.bincount(pred[bal.indices], minlength=c).tolist() == [2, 2, 2]
    # within each class, the smallest margins
    for k in range(c):
        chosen = np.sort(gap[bal.indices[pred[bal.indices] == k]])
        np.testing.assert_allclose(chosen, np.sort(gap[pred == k])[:2], atol=1e-6)


def test_balanced_margin_fills_the_rarest_classes_first():
    rng = np.random.default_rng(1)
    n, c = 300, 3
    probs = softmax(rng.standard_normal((n, c)))
    pred = probs.argmax(axis=1)
    labelled = np.zeros(n, bool)
    labels = np.full(n, -1)
    # 4 labels of class 0, 2 of class 1, none of class 2
    for k, cnt in [(0, 4), (1, 2)]:
        idx = np.flatnonzero(pred == k)[:cnt]
        labelled[idx], labels[idx] = True, k
    sel = select("balanced_margin", **_inputs(probs, labelled, labels=labels), batch_size=6)
    # water-filling to 4 each: class 2 gets 4, class 1 gets 2, class 0 none
    assert np.bincount(pred[sel.indices], minlength=c).tolist() == [0, 2, 4]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 503), st.integers(1, 60), st.integers(1, 4))
def test_top_k_narrowing_matches_the_full_tie_breaking_sort(seed, n, k, threads):
    # The per-thread row split (with a remainder of n % threads) and the narrowing by value must
    # give what take_top gives over the whole pool, ties included.
    import torch

    from models_zoo.selection.base import take_top
    from models_zoo.selection.uncertainty import _top_k

    scores = np.random.default_rng(seed).integers(0, 5, n).astype(np.float32)  # many ties
    k = min(k, n)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = _top_k(scores, k)
    finally:
        torch.set_num_threads(old)
    assert got.tolist() == take_top(scores, np.arange(n), k).tolist()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40), st.sampled_from([3, 10]))
def test_margin_scores_only_the_rows_that_can_win_and_picks_what_a_full_scoring_picks(seed, b, c):
    # A confident model (large logits), as after a few rounds: the pruned path runs. Duplicated
    # rows make ties, which must go to the lower pool index as in the full scoring.
    from unittest import mock

    from models_zoo.selection import uncertainty
    from models_zoo.selection.base import take_top

    rng = np.random.default_rng(seed)
    probs = softmax(8 * rng.standard_normal((3000, c))).astype(np.float32)
    probs[rng.integers(0, 3000, 300)] = probs[rng.integers(0, 3000, 300)]
    labelled = rng.random(3000) < 0.1
    top2 = np.sort(probs, axis=1)[:, -2:]
    gap = (top2[:, 1] - top2[:, 0]).astype(np.float32)
    unlabelled = np.flatnonzero(~labelled)
    expect = unlabelled[take_top(-gap[unlabelled], unlabelled, b)]

    scored = []
    real = uncertainty.margins
    with mock.patch.object(uncertainty, "margins", side_effect=lambda p: scored.append(len(p)) or real(p)):
        sel = select("margin", **_inputs(probs, labelled), batch_size=b)
    assert sel.indices.tolist() == expect.tolist()
    np.testing.assert_array_equal(sel.scores, gap[expect])
    assert sum(scored) < 3000 // 2, scored  # most rows never got an exact margin


@pytest.mark.parametrize("k", [1, 100, 1000, 7000])
@pytest.mark.parametrize("layout", ["ties", "spread", "sample_holds_the_best"])
def test_top_k_from_a_sampled_cut_matches_the_full_sort_on_large_pools(k, layout):
    # At 50,000 items and more, the cut comes from every 8th score; when too few pass it (the best
    # items hidden between the sampled ones), the exact top-k takes over.
    from models_zoo.selection.base import take_top
    from models_zoo.selection.uncertainty import _top_k

    n = 60_001
    rng = np.random.default_rng(k)
    if layout == "ties":
        scores = rng.integers(0, 50, n).astype(np.float32)
    elif layout == "spread":
        scores = rng.random(n).astype(np.float32)
    else:  # the sampled scores are the best: fewer than k pass their cut
        scores = rng.random(n).astype(np.float32)
        scores[::8] += 2
    scores[rng.random(n) < 0.05] = -np.inf  # labelled
    assert _top_k(scores, k).tolist() == take_top(scores, np.arange(n), k).tolist()


@pytest.mark.parametrize("b", [10, 1000])
@pytest.mark.parametrize("labelled_are", ["random", "the_least_confident", "most"])
def test_margin_on_a_large_pool_picks_what_a_full_scoring_picks(b, labelled_are):
    # 60,000 rows: the rows scored exactly start from a cut sampled off every 8th bound, taken over
    # labelled rows too (they are dropped after it): where the labelled rows hold the lowest bounds
    # (the least confident were labelled last round), too few unlabelled rows pass it.
    from models_zoo.selection.base import take_top

    rng = np.random.default_rng(b)
    probs = softmax(8 * rng.standard_normal((60_000, 10))).astype(np.float32)
    top2 = np.sort(probs, axis=1)[:, -2:]
    gap = (top2[:, 1] - top2[:, 0]).astype(np.float32)
    if labelled_are == "random":
        labelled = rng.random(60_000) < 0.2
    elif labelled_are == "the_least_confident":
        labelled = np.zeros(60_000, bool)
        labelled[np.argsort(top2[:, 1])[:3000]] = True
    else:
        labelled = rng.random(60_000) < 0.97
    unlabelled = np.flatnonzero(~labelled)
    expect = unlabelled[take_top(-gap[unlabelled], unlabelled, b)]
    sel = select("margin", **_inputs(probs, labelled), batch_size=b)
    assert sel.indices.tolist() == expect.tolist()
    np.testing.assert_array_equal(sel.scores, gap[expect])


def test_margin_finds_gaps_outside_the_rows_with_the_lowest_bound():
    # Rows spread over many classes (top p 0.4, margin 0.3) have the lowest bounds 2 p_1 - 1, but
    # the smallest margins sit in two-class rows (0.6 / 0.4, margin 0.2) outside those: the rows the
    # bound lets through must be scored beyond the first ones. Most rows are confident (0.99).
    from unittest import mock

    from models_zoo.selection import uncertainty
    from models_zoo.selection.base import take_top

    n, c = 2000, 10
    rng = np.random.default_rng(0)
    probs = np.full((n, c), 0.01 / 9, np.float32)
    probs[:, 0] = 0.99
    kind = rng.integers(0, 10, n)  # 0: spread, 1: two classes, else confident
    spread = kind == 0
    probs[spread] = np.float32([0.4, 0.1] + [0.5 / 8] * 8)
    probs[kind == 1] = np.float32([0.6, 0.4] + [0] * 8)
    probs += rng.random((n, c)).astype(np.float32) * 1e-3  # distinct scores
    probs /= probs.sum(1, keepdims=True)
    top2 = np.sort(probs, axis=1)[:, -2:]
    gap = (top2[:, 1] - top2[:, 0]).astype(np.float32)
    expect = take_top(-gap, np.arange(n), 50)
    scored = []
    real = uncertainty.margins
    with mock.patch.object(uncertainty, "margins", side_effect=lambda p: scored.append(len(p)) or real(p)):
        sel = select("margin", **_inputs(probs), batch_size=50)
    assert len(scored) == 2 and sum(scored) < n // 2, scored  # the first 100, then what the bound lets in
    assert not spread[sel.indices].any()
    assert sel.indices.tolist() == expect.tolist()


def test_reasons_read_from_the_table_match_formatting():
    # Three decimals looked up for float32 scores: halves (0.0625 -> 0.062), values next to a
    # rounding edge, large entropies; signs, NaN, inf and float64 go through format().
    from models_zoo.selection.uncertainty import _reasons

    rng = np.random.default_rng(0)
    edges = np.arange(0, 3000) / 1000 + 0.0005
    scores = np.concatenate(
        [
            rng.random(20_000) * 7,
            edges,
            np.nextafter(edges.astype(np.float32), np.float32(0)),
            np.nextafter(edges.astype(np.float32), np.float32(9)),
            np.arange(0, 4000) / 2000,
            [0.0625, 0, 1, 99.9995, 1e-30, -0.0, -1e-7, np.nan, np.inf, 1e6],
        ]
    ).astype(np.float32)
    for fmt in ("margin {:.3f}", "entropy {:.3f} nats"):
        assert _reasons(fmt, scores) == [fmt.format(v) for v in scores.tolist()]
        assert _reasons(fmt, scores.astype(np.float64)) == [fmt.format(v) for v in scores.tolist()]
    assert _reasons("x {:.1f}", np.float32([0.25])) == ["x 0.2"]


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 8, 10, 11, 17, 100])
@pytest.mark.parametrize("rows", [1, 7, 1000])
def test_row_max_from_sliding_windows_equals_torch_amax(c, rows):
    # least confidence and margin's bound read each row's maximum from windows over the flat array;
    # every class count must give torch's own maximum, ties and the last column included.
    import torch

    from models_zoo.selection.uncertainty import _row_max

    rng = np.random.default_rng(c * 1000 + rows)
    p = torch.from_numpy(rng.random((rows, c), dtype=np.float32))
    p[rows // 2, -1] = 2.0  # the largest entry in the last column
    p[0, :] = 0.5  # a row of ties
    out = torch.empty(rows)
    _row_max(p, out)
    assert torch.equal(out, p.amax(1))
