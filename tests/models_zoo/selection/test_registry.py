"""The contract every registered strategy keeps."""

from __future__ import annotations

import numpy as np
import pytest

from models_zoo.selection import names, samples_pool, select

ALL = [
    "auto",
    "badge",
    "balanced_margin",
    "bald",
    "coreset",
    "entropy",
    "least_confidence",
    "margin",
    "probcover",
    "random",
    "typiclust",
]
NEED_PROBS = ["badge", "balanced_margin", "entropy", "least_confidence", "margin"]


def test_registry_names():
    assert names() == ALL


@pytest.mark.parametrize("name", ALL)
def test_contract(pool, name):
    sel = select(name, batch_size=7, seed=1, **pool)
    assert sel.indices.dtype == np.int64 and sel.indices.shape == (7,)
    assert len(set(sel.indices.tolist())) == 7
    assert not pool["labelled_mask"][sel.indices].any()
    assert sel.scores.shape == (7,) and np.isfinite(sel.scores).all()
    assert len(sel.reasons) == 7 and all(isinstance(r, str) and r for r in sel.reasons)
    assert sel.strategy == name or (name == "auto" and sel.strategy in ALL)


def test_only_random_typical_and_covering_picks_sample_the_pool():
    assert [n for n in ALL if samples_pool(n)] == ["probcover", "random", "typiclust"]
    assert not samples_pool("auto") and not samples_pool("no such strategy")


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_selection(pool, name):
    a = select(name, batch_size=9, seed=5, **pool)
    b = select(name, batch_size=9, seed=5, **pool)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("name", ALL)
def test_batch_larger_than_pool_takes_everything_left(pool, name):
    n_left = int((~pool["labelled_mask"]).sum())
    sel = select(name, batch_size=n_left + 50, seed=0, **pool)
    assert sorted(sel.indices.tolist()) == np.flatnonzero(~pool["labelled_mask"]).tolist()


@pytest.mark.parametrize("name", NEED_PROBS)
def test_missing_probs_is_a_clear_value_error(pool, name):
    pool = {**pool, "probs": None}
    with pytest.raises(ValueError, match="needs probs"):
        select(name, batch_size=3, seed=0, **pool)


def test_bald_without_mc_probs_is_a_clear_value_error(pool):
    with pytest.raises(ValueError, match="needs mc_probs"):
        select("bald", batch_size=3, seed=0, **{**pool, "mc_probs": None})


def test_wrong_shapes_are_value_errors(pool):
    with pytest.raises(ValueError, match="labelled_mask"):
        select("random", **{**pool, "labelled_mask": pool["labelled_mask"][:-1]}, batch_size=2)
    with pytest.raises(ValueError, match="probs must have shape"):
        select("margin", **{**pool, "probs": pool["probs"][:-1]}, batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        select("random", **pool, batch_size=0)


def test_unknown_strategy_is_a_key_error(pool):
    with pytest.raises(KeyError, match="unknown strategy"):
        select("nope", batch_size=1, **pool)


@pytest.mark.parametrize("name", ["random", "coreset", "typiclust", "probcover", "auto"])
def test_cold_start_embeddings_only(pool, name):
    n = pool["embeddings"].shape[0]
    sel = select(name, embeddings=pool["embeddings"], labelled_mask=np.zeros(n, bool), batch_size=5, seed=0)
    assert len(set(sel.indices.tolist())) == 5


def test_take_top_breaks_ties_at_the_cut_by_pool_index():
    from models_zoo.selection.base import take_top

    scores = np.array([5, 1, 1, 1, 1, 1, 1, 0], np.float32)
    candidates = np.array([70, 60, 50, 40, 30, 20, 10, 0])
    top = take_top(scores, candidates, 3)
    assert candidates[top].tolist() == [70, 10, 20]  # the best, then the two lowest indices of the tie
