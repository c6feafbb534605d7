"""Learning-curve forecast and the stabilising-predictions stop rule."""

from __future__ import annotations

import numpy as np
import pytest

from models_zoo.forecast import cohen_kappa, fit_learning_curve, plateau_round, stop_rule_state


def _curve(n, a=0.9, b=0.8, c=0.5):
    return a - b * np.power(np.asarray(n, float), -c)


def test_recovers_an_exact_power_law():
    n = np.array([10, 20, 50, 100])
    lc = fit_learning_curve(n, _curve(n), seed=0, correction=1.0)
    np.testing.assert_allclose(lc.params_, [0.9, 0.8, 0.5], atol=1e-3)
    point, low, high = lc.accuracy_at(500)
    assert point == pytest.approx(_curve(500), abs=1e-3)
    assert low <= point + 1e-9 and high >= point - 1e-9


@pytest.mark.parametrize("shift", [0.04, -0.04])
def test_the_fit_leans_on_the_points_with_most_labels(shift):
    # One noisy few-label point: the weighted fit leaves more of the misfit at 10 labels than at
    # 100 (equal weights leave 0.0007 at 10 and 0.0025 at 100 for the downward shift).
    n = np.array([10, 20, 50, 100])
    acc = _curve(n, b=1.0)
    acc[0] += shift
    lc = fit_learning_curve(n, acc, seed=0, correction=1.0)
    resid = np.abs(lc.predict(n) - acc)
    assert resid[-1] < resid[0]


def test_correction_errs_on_the_low_side():
    n = np.array([10, 20, 50, 100])
    acc = _curve(n)
    plain = fit_learning_curve(n, acc, seed=0, correction=1.0)
    careful = fit_learning_curve(n, acc, seed=0)
    assert careful.predict(500) < plain.predict(500)
    assert careful.predict(50) == pytest.approx(plain.predict(50))  # inside the data: no change
    assert careful.labels_to_reach(0.85)[0] > plain.labels_to_reach(0.85)[0]


def test_interval_widens_with_noise_and_brackets_the_truth():
    rng = np.random.default_rng(0)
    n = np.repeat([10, 20, 50, 100], 5)
    acc = _curve(n) + rng.normal(0, 0.01, n.size)
    lc = fit_learning_curve(n, acc, seed=1, correction=1.0, n_boot=100)
    point, low, high = lc.accuracy_at(500)
    assert low < point < high
    assert low - 0.02 <= _curve(500) <= high + 0.02


def test_band_is_accuracy_at_each_count_and_widens_past_the_data():
    rng = np.random.default_rng(0)
    n = np.repeat([10, 20, 50, 100], 3)
    lc = fit_learning_curve(n, _curve(n) + rng.normal(0, 0.01, n.size), seed=1, n_boot=100)
    ns = np.array([100.0, 200.0, 500.0, 1000.0])
    point, low, high = lc.band(ns)
    assert point.shape == low.shape == high.shape == (4,)
    for i, v in enumerate(ns):
        assert (point[i], low[i], high[i]) == pytest.approx(lc.accuracy_at(v))
    assert np.all(low <= point + 1e-9) and np.all(point <= high + 1e-9)
    assert np.all(np.diff(point) > 0)  # a rising curve keeps rising
    assert np.all(np.diff(high - low) > 0)  # and is less sure the further it reaches


def test_labels_to_reach():
    n = np.array([10, 20, 50, 100, 200])
    lc = fit_learning_curve(n, _curve(n), seed=0, correction=1.0)
    point, low, high = lc.labels_to_reach(float(_curve(400)))
    assert point == pytest.approx(400, rel=0.02)
    assert low <= point <= high
    assert lc.labels_to_reach(0.95) is None  # above the asymptote 0.9
    assert lc.labels_to_reach(float(_curve(50)))[0] == pytest.approx(50, rel=0.02)


def test_bad_inputs_are_value_errors():
    with pytest.raises(ValueError, match="3 distinct"):
        fit_learning_curve([10, 20], [0.5, 0.6], seed=0)
    with pytest.raises(ValueError, match="fractions"):
        fit_learning_curve([10, 20, 30], [50.0, 60.0, 70.0], seed=0)


def test_same_seed_same_interval():
    n = np.array([10, 20, 50, 100])
    acc = _curve(n) + np.array([0.01, -0.01, 0.005, 0.0])
    a = fit_learning_curve(n, acc, seed=3, n_boot=50).accuracy_at(500)
    b = fit_learning_curve(n, acc, seed=3, n_boot=50).accuracy_at(500)
    assert a == b


def test_cohen_kappa_known_values():
    a = np.array([0, 0, 1, 1])
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(a, 1 - a) == -1.0
    # p_o = 0.75, p_e = 0.5 -> 0.5
    assert cohen_kappa(a, np.array([0, 1, 1, 1])) == pytest.approx(0.5)
    assert cohen_kappa(np.zeros(5), np.zeros(5)) == 1.0


def test_stop_rule_fires_after_three_stable_rounds():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 10, 2000)
    rounds = []
    for flips in [800, 400, 200, 10, 5, 5, 0]:  # predictions stabilise from round 3 on
        p = base.copy()
        p[:flips] = (p[:flips] + 1) % 10
        rounds.append(p)
    early = stop_rule_state(rounds[:4])
    assert early["fired"] is False and len(early["kappas"]) == 3
    state = stop_rule_state(rounds)
    assert state["fired"] is True and state["mean_kappa"] >= 0.99
    # kappas: r1 vs r0 .. ; the last three kappas >= 0.99 first at round 6 (rounds 3-4, 4-5, 5-6)
    assert state["fired_at_round"] == 6
    assert stop_rule_state(rounds[:2])["mean_kappa"] is None


def test_stop_rule_compares_only_the_items_still_unlabelled():
    # A settled model whose only changes are the stop-set items it gets labels for (40 a round,
    # each flipped to its label): counted, they hold kappa near 0.98; left out, it is 1.
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 10, 2000)
    rounds, masks, labelled = [], [], np.zeros(2000, bool)
    for _ in range(6):
        pred = pred.copy()
        new = np.flatnonzero(~labelled)[:40]
        labelled[new] = True
        pred[new] = (pred[new] + 1) % 10  # its label differs from what the model said
        rounds.append(pred)
        masks.append(labelled.copy())
    plain = stop_rule_state(rounds)
    assert plain["fired"] is False and max(plain["kappas"]) < 0.99
    state = stop_rule_state(rounds, labelled_per_round=masks)
    assert state["kappas"] == [1.0] * 5 and state["fired_at_round"] == 3
    with pytest.raises(ValueError, match="one mask per round"):
        stop_rule_state(rounds, labelled_per_round=masks[:-1])
    # every item labelled: the whole set is compared rather than none
    full = [np.ones(2000, bool)] * 6
    assert stop_rule_state(rounds, labelled_per_round=full)["kappas"] == plain["kappas"]


def test_plateau_is_the_first_round_never_bettered_by_more_than_a_point():
    assert plateau_round([0.5, 0.7, 0.805, 0.81, 0.812]) == 2  # 0.805: +0.7 points at most later
    assert plateau_round([0.5, 0.7, 0.795, 0.805, 0.81, 0.812]) == 3  # 0.795 is bettered by 1.7
    assert plateau_round([0.5, 0.9, 0.8, 0.85]) == 1  # a later dip does not move it
    assert plateau_round([0.7]) == 0
    assert plateau_round([0.5, 0.6, 0.65], gain=0.1) == 1
    with pytest.raises(ValueError, match="at least one round"):
        plateau_round([])


def test_accuracies_measured_on_few_items_widen_the_interval_and_shrink_towards_a_half():
    # 100 % on 3 and on 5 audit images is not 100 %: the fit uses (k + 1/2) / (m + 1), and the
    # interval carries each point's binomial spread; on 1,000 items per point it barely moves.
    n = np.array([20.0, 40.0, 60.0, 80.0])
    acc = np.array([0.0, 1.0, 1.0, 1.0])
    few = fit_learning_curve(n, acc, seed=0, evaluated=[1, 2, 3, 5])
    plain = fit_learning_curve(n, acc, seed=0)
    assert (
        few.predict(80.0) == pytest.approx(5.5 / 6, abs=0.03)
        and plain.predict(80.0) > few.predict(80.0) + 0.05
    )
    _, lo_few, hi_few = few.accuracy_at(80.0)
    _, lo_plain, hi_plain = plain.accuracy_at(80.0)
    assert hi_few - lo_few > 0.1 > hi_plain - lo_plain
    smooth = _curve(n)
    many = fit_learning_curve(n, smooth, seed=0, evaluated=np.full(4, 100_000))
    assert many.predict(500.0) == pytest.approx(
        fit_learning_curve(n, smooth, seed=0).predict(500.0), abs=2e-3
    )
    with pytest.raises(ValueError, match="evaluated"):
        fit_learning_curve(n, acc, seed=0, evaluated=[1, 0, 3, 5])


def test_stop_rule_compares_rounds_on_the_items_both_scored():
    from models_zoo.forecast import stop_rule_state

    # Round 2's stop set lost items 0-1 and gained 100-149; on the items both scored nothing changed.
    a = np.arange(100) % 4
    ids_a, ids_b = np.arange(100), np.concatenate([np.arange(2, 100), np.arange(100, 150)])
    b = np.concatenate([a[2:], (np.arange(50) + 1) % 4])
    state = stop_rule_state([a, b], window=1, ids_per_round=[ids_a, ids_b])
    assert state["kappas"] == [1.0] and state["fired"]
    # Lined up by position instead, the same predictions disagree.
    assert stop_rule_state([a[:100], b[:100]], window=1)["kappas"][0] < 0.5
    with pytest.raises(ValueError, match="one id vector per round"):
        stop_rule_state([a, b], ids_per_round=[ids_a])


def _nested_outcomes(right: list[int], items: int) -> np.ndarray:
    """(len(right), items): point p right on the first right[p] items, wrong on the rest (later
    models get the earlier ones' items right too, as on a real audit slice)."""
    return (np.arange(items)[None, :] < np.array(right)[:, None]).astype(float)


def test_points_scored_on_the_same_items_redraw_those_items_together():
    # Five versions scored on one 20-item audit slice: an easy slice lifts all of them at once,
    # so their errors do not cancel across points as independent draws from each count would.
    n = np.array([20.0, 40.0, 60.0, 80.0, 100.0])
    outcomes = _nested_outcomes([10, 12, 14, 15, 16], 20)
    acc = outcomes.mean(1)
    shared = fit_learning_curve(n, acc, seed=0, outcomes=outcomes)
    independent = fit_learning_curve(n, acc, seed=0, evaluated=np.full(5, 20))
    # The same counts: the same shrunk estimates, the same fitted curve; only the interval differs.
    np.testing.assert_allclose(shared.params_, independent.params_)
    _, lo_s, hi_s = shared.accuracy_at(500.0)
    _, lo_i, hi_i = independent.accuracy_at(500.0)
    assert hi_s - lo_s > 1.2 * (hi_i - lo_i)
    again = fit_learning_curve(n, acc, seed=0, outcomes=outcomes)
    np.testing.assert_array_equal(again.boot_params_, shared.boot_params_)


def test_items_a_version_did_not_score_are_left_out_of_its_point():
    n = np.array([20.0, 40.0, 60.0, 80.0])
    outcomes = _nested_outcomes([5, 6, 8, 9], 10)
    outcomes[0, 8:] = np.nan  # the first version never saw the last two items (added since)
    lc = fit_learning_curve(n, np.nanmean(outcomes, 1), seed=0, outcomes=outcomes)
    assert np.all(np.isfinite(lc.boot_params_))
    with pytest.raises(ValueError, match="mean outcome"):
        fit_learning_curve(n, np.array([0.5, 0.6, 0.8, 0.9]), seed=0, outcomes=outcomes)
    with pytest.raises(ValueError, match="not both"):
        fit_learning_curve(n, np.nanmean(outcomes, 1), seed=0, outcomes=outcomes, evaluated=[8, 10, 10, 10])
    with pytest.raises(ValueError, match="1, 0 or NaN"):
        fit_learning_curve(n, np.full(4, 0.5), seed=0, outcomes=np.full((4, 2), 0.5))
