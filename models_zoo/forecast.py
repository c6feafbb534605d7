"""Forecasts for a labelling campaign: a learning curve with an interval, and a stop rule.

Learning curve
    acc(n) = a - b * n^(-c)          (inverse power law; a the asymptote, 0 <= a <= 1)

fitted by weighted least squares (weight sqrt(n)) to (labels, accuracy) points, as in the learning-curve
literature (Hestness et al. 2017; Mahmood et al., "How Much More Data Do I Need?
Estimating Requirements for Downstream Tasks", CVPR 2022). The interval comes from a wild
residual bootstrap (Rademacher signs; the design points stay fixed, which matters with
the 4-6 points a campaign has). Mahmood et al. show that such extrapolations are
optimistic: they under-estimate how much data a target needs. We therefore shrink the
predicted gain beyond the last observed point by a correction factor
``CORRECTION`` (< 1), so the forecast errs on the low side for accuracy and the high side
for labels; its value and the evidence for it are in ``docs/selection.md``.

Stop rule
    Bloodgood & Vijay-Shanker, "A Method for Stopping Active Learning Based on
    Stabilizing Predictions and the Need for User-Adjustable Stopping" (CoNLL 2009):
    Cohen's kappa between successive models' predictions on a fixed unlabelled stop set;
    stop when its mean over the last 3 rounds is >= 0.99. A stop set drawn from the pool
    loses items to labelling as the campaign goes on; each kappa is taken over the items
    still unlabelled for the later model (a labelled item changes its prediction because
    of its label, not because the model is unsettled).

Accuracies are fractions in [0, 1]. Pure numpy/scipy; every random draw is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

CORRECTION = 0.9  # fraction of the extrapolated gain we believe (see docs/selection.md)
N_BOOT = 200
INTERVAL = (0.1, 0.9)  # quantiles of the bootstrap

__all__ = ["LearningCurve", "cohen_kappa", "fit_learning_curve", "stop_rule_state"]


def _power_law(params: np.ndarray, n: np.ndarray) -> np.ndarray:
    a, b, c = params
    return a - b * np.power(n, -c)


def _fit(n: np.ndarray, acc: np.ndarray, start: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    # Weighted least squares, residual weight sqrt(n): a point's accuracy is taken to scatter as
    # 1/sqrt(n) (across seeds in bench-select's harness: n^-0.27 on Fashion-MNIST, n^-0.5 on
    # digits), so the few-label points, the noisiest, steer the extrapolation less (weights that
    # grow with n as in Figueroa et al., "Predicting sample size required for classification
    # performance", BMC Med. Inform. Decis. Mak. 2012). Measured in docs/selection.md.
    if w is None:
        w = np.sqrt(n / n.max())
    res = least_squares(
        lambda p: w * (_power_law(p, n) - acc),
        start,
        bounds=([0.0, 0.0, 0.01], [1.0, np.inf, 3.0]),
        method="trf",
    )
    return res.x


@dataclass
class LearningCurve:
    """A fitted curve. ``params_`` (3,) = (a, b, c); ``boot_params_`` (N_BOOT, 3);
    ``n_last_`` the largest labelled count observed; ``correction`` the gain shrink."""

    params_: np.ndarray
    boot_params_: np.ndarray
    n_last_: float
    correction: float = CORRECTION
    interval: tuple[float, float] = INTERVAL

    def _corrected(self, params: np.ndarray, n: np.ndarray) -> np.ndarray:
        # (P, 3) params x (M,) counts -> (P, M); beyond n_last only a share of the gain counts
        n = np.asarray(n, np.float64)
        at_last = _power_law(params.T[:, :, None], np.array([self.n_last_]))  # (P, 1)
        raw = _power_law(params.T[:, :, None], n[None, :])  # (P, M)
        shrunk = at_last + self.correction * (raw - at_last)
        return np.where(n[None, :] > self.n_last_, shrunk, raw)

    def predict(self, n: float | np.ndarray) -> np.ndarray:
        """Corrected point forecast of accuracy at n labels: scalar or (M,)."""
        out = self._corrected(self.params_[None, :], np.atleast_1d(n))[0]
        return out if np.ndim(n) else out[0]

    def accuracy_at(self, n: float) -> tuple[float, float, float]:
        """(point, low, high) forecast of accuracy at n labels, e.g. when the budget runs out."""
        point, lo, hi = self.band(np.array([n], np.float64))
        return float(point[0]), float(lo[0]), float(hi[0])

    def band(self, ns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point, low, high) forecasts of accuracy at each of ``ns`` (M,) labels: three (M,)
        arrays, the curve a dashboard draws past the last measured point."""
        ns = np.asarray(ns, np.float64)
        boot = self._corrected(self.boot_params_, ns)  # (N_BOOT, M)
        lo, hi = np.quantile(boot, self.interval, axis=0)  # (M,) each
        return self.predict(ns), lo, hi

    def _labels_for(self, params: np.ndarray, target: float) -> float:
        # Invert the corrected curve; inf where the target is at or above the asymptote.
        a, b, c = params
        at_last = float(_power_law(params, np.array([self.n_last_]))[0])
        raw_target = target if target <= at_last else at_last + (target - at_last) / self.correction
        if b <= 0:  # a flat curve
            return 1.0 if raw_target <= a else float("inf")
        if raw_target >= a:
            return float("inf")
        return float(max(1.0, ((a - raw_target) / b) ** (-1.0 / c)))

    def labels_to_reach(self, target: float) -> tuple[float, float, float] | None:
        """(point, low, high) labels needed to reach accuracy ``target``; None if the point
        forecast never reaches it. ``high`` may be inf (some bootstrap curves never do)."""
        point = self._labels_for(self.params_, target)
        if not np.isfinite(point):
            return None
        boot = np.array([self._labels_for(p, target) for p in self.boot_params_])  # (N_BOOT,), may hold inf
        lo, hi = np.quantile(boot, self.interval, method="inverted_cdf")  # no interpolation with inf
        return point, float(lo), float(hi)

    @property
    def asymptote(self) -> float:
        """Accuracy the fitted curve approaches with unlimited labels (uncorrected)."""
        return float(self.params_[0])


def fit_learning_curve(
    labels: np.ndarray,
    accuracies: np.ndarray,
    *,
    seed: int,
    n_boot: int = N_BOOT,
    correction: float = CORRECTION,
    evaluated: np.ndarray | None = None,
    outcomes: np.ndarray | None = None,
) -> LearningCurve:
    """Fit ``acc(n) = a - b n^-c`` to (labels (P,), accuracies (P,) in [0, 1]), P >= 3
    distinct label counts (repeats, e.g. several seeds, are fine).

    ``evaluated`` (P,): how many items each accuracy was measured on, when that is few (a service's
    audit slice: 3 of 3 right is no 100 %). Then each accuracy k/m counts as its Jeffreys estimate
    (k + 1/2) / (m + 1), a point weighs as sqrt(m) instead of sqrt(labels), and every bootstrap
    refit also redraws each point from its Beta(k + 1/2, m - k + 1/2) posterior, so the interval
    carries the measurement's own uncertainty (with 3-4 points the residuals alone can be ~0, and
    the interval with them). Without it (a large test set) nothing changes.

    ``outcomes`` (P, M), instead of ``evaluated``, when every point was measured on the same M
    items (a service's audit slice, each model version scored on it): 1 right, 0 wrong, NaN where
    that point's model did not score the item. The points' errors are then not independent (an
    easy audit slice lifts every point at once), so each bootstrap refit first redraws the M items
    with replacement, one draw for all points, and then each point from the Beta posterior of its
    counts on those items. Measured on audit slices of 10-40 test items (``python -m bench.select
    --forecast-audit``, docs/selection.md): independent draws put the true accuracy at 500 labels
    inside the 10-90 % interval far less often than 80 %; this does close to it."""
    n = np.asarray(labels, np.float64)
    acc = np.asarray(accuracies, np.float64)
    if n.shape != acc.shape or n.ndim != 1:
        raise ValueError("labels and accuracies must be 1-d arrays of the same length")
    if np.unique(n).size < 3:
        raise ValueError("a learning curve needs accuracies at >= 3 distinct label counts")
    if np.any(n <= 0) or np.any((acc < 0) | (acc > 1)):
        raise ValueError("labels must be > 0 and accuracies fractions in [0, 1]")
    w = draw = scored = None
    if outcomes is not None:
        if evaluated is not None:
            raise ValueError("give evaluated or outcomes, not both")
        outcomes = np.asarray(outcomes, np.float64)
        scored = ~np.isnan(outcomes)  # (P, M)
        if (
            outcomes.ndim != 2
            or outcomes.shape[0] != n.size
            or np.any(scored & (outcomes != 0) & (outcomes != 1))
        ):
            raise ValueError("outcomes must be a (points, items) array of 1, 0 or NaN")
        evaluated = scored.sum(1)
        if np.any(np.abs(np.nansum(outcomes, 1) / np.maximum(evaluated, 1) - acc) > 1e-6):
            raise ValueError("accuracies must be the mean outcome of each point")
        outcomes = np.nan_to_num(outcomes)
    if evaluated is not None:
        m = np.asarray(evaluated, np.float64)
        if m.shape != n.shape or np.any(m < 1):
            raise ValueError("evaluated must hold a count >= 1 per accuracy")
        k = np.round(acc * m)
        acc = (k + 0.5) / (m + 1.0)
        w = np.sqrt(m / m.max())
        draw = (k + 0.5, m - k + 0.5)  # Beta posterior of each point
    start = np.array([min(1.0, acc.max() + 0.05), 1.0, 0.5])
    start[1] = max(1e-3, (start[0] - acc[np.argmin(n)]) * n.min() ** start[2])
    params = _fit(n, acc, start, w)
    fitted = _power_law(params, n)
    resid = acc - fitted
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, 3))
    for i in range(n_boot):
        signs = rng.choice([-1.0, 1.0], size=n.size)
        noise = 0.0 if draw is None else rng.beta(*_resampled(rng, draw, outcomes, scored)) - acc
        boot[i] = _fit(n, np.clip(fitted + signs * resid + noise, 0.0, 1.0), params, w)
    return LearningCurve(params, boot, float(n.max()), correction)


def _resampled(
    rng: np.random.Generator, draw: tuple, outcomes: np.ndarray | None, scored: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Beta parameters (P,), (P,) for one bootstrap draw of the points' accuracies: the points' own
    counts' (``draw``), or, with per-item ``outcomes`` (P, M) and ``scored`` masks, the counts on M
    items drawn with replacement, one draw shared by all points (a point that scored none of them
    keeps its own counts)."""
    if outcomes is None:
        return draw
    items = rng.integers(0, outcomes.shape[1], outcomes.shape[1])
    k, m = outcomes[:, items].sum(1), scored[:, items].sum(1)
    return np.where(m > 0, k + 0.5, draw[0]), np.where(m > 0, m - k + 0.5, draw[1])


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa between two label vectors (M,) of the same items."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError("predictions must cover the same stop set")
    classes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inv[: a.size], inv[a.size :]
    p_o = float(np.mean(ia == ib))
    p_e = float(np.dot(np.bincount(ia, minlength=classes.size), np.bincount(ib, minlength=classes.size))) / (
        a.size**2
    )
    if p_e >= 1.0:
        return 1.0  # both constant and equal
    return (p_o - p_e) / (1.0 - p_e)


def stop_rule_state(
    predictions_per_round: list[np.ndarray],
    *,
    threshold: float = 0.99,
    window: int = 3,
    labelled_per_round: list[np.ndarray] | None = None,
    ids_per_round: list[np.ndarray] | None = None,
) -> dict:
    """Stabilising-predictions stop rule on a fixed stop set.

    predictions_per_round: one (M,) vector of predicted classes per round, same stop set.
    ids_per_round: optionally the stop set's item ids of each round (M_r,), for a stop set that
    changed a little between rounds (a pool that grew or lost items): each round is then compared
    with the one before on the items both scored.
    labelled_per_round: optionally one (M,) bool per round, True where that round's model was
    trained on the item's label; round r is then compared with round r - 1 on the items not
    labelled at round r (all of them if none is left). Measured in docs/selection.md: counting
    the items that active learning picks out of the stop set held kappa 0.005-0.008 lower per
    round and made the rule fire 2 and 8 rounds after the plateau instead of 1 and 0.
    Returns {"kappas": kappa of each round against the previous, "mean_kappa": mean of the
    last ``window`` (None before ``window`` kappas exist), "fired": mean >= threshold,
    "fired_at_round": first round index at which the rule fired (None if never)}.
    """
    rounds = len(predictions_per_round)
    if labelled_per_round is not None and len(labelled_per_round) != rounds:
        raise ValueError("labelled_per_round needs one mask per round")
    if ids_per_round is not None and len(ids_per_round) != rounds:
        raise ValueError("ids_per_round needs one id vector per round")
    kappas = []
    for r in range(1, rounds):
        a, b = np.asarray(predictions_per_round[r - 1]), np.asarray(predictions_per_round[r])
        done = None if labelled_per_round is None else np.asarray(labelled_per_round[r], bool)
        if done is not None and done.shape != b.shape:
            raise ValueError("each labelled mask must cover the stop set")
        if ids_per_round is not None:  # the items both rounds scored
            _, ia, ib = np.intersect1d(ids_per_round[r - 1], ids_per_round[r], return_indices=True)
            a, b = a[ia], b[ib]
            done = None if done is None else done[ib]
        keep = np.ones(b.shape, bool) if done is None else ~done
        kappas.append(cohen_kappa(a[keep], b[keep]) if keep.any() else cohen_kappa(a, b))
    fired_at = None
    for r in range(window, len(kappas) + 1):
        if np.mean(kappas[r - window : r]) >= threshold:
            fired_at = r  # kappas[r-1] compares round r-1 with round r
            break
    mean = float(np.mean(kappas[-window:])) if len(kappas) >= window else None
    return {
        "kappas": [float(k) for k in kappas],
        "mean_kappa": mean,
        "fired": mean is not None and mean >= threshold,
        "fired_at_round": fired_at,
    }


def plateau_round(accuracies: list[float] | np.ndarray, gain: float = 0.01) -> int:
    """Where a finished campaign's accuracy levelled off, to judge a stop rule against: the first
    round after which accuracy never gains more than ``gain`` (0.01: one point) over that round's.
    It needs the whole curve (an oracle's view), so it measures a rule, it is not one."""
    acc = np.asarray(accuracies, dtype=float)
    if acc.size == 0:
        raise ValueError("a plateau needs at least one round")
    best_after = np.maximum.accumulate(acc[::-1])[::-1]  # max over this round and later
    return int(np.flatnonzero(best_after - acc <= gain + 1e-12)[0])
