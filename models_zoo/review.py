"""Possible label mistakes among the labelled items, for a person to review.

Each labelled item is judged by a probe that never saw its label: k-fold, out-of-fold probabilities
(Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR
2021). An item is a suspect when it is *confidently* in another class: p(j) >= t_j for some j, where
t_j is the mean p(j) over the items labelled j (the per-class threshold of the confident joint), and
the most likely such j is not its label. Suspects are ranked by self-confidence, the out-of-fold
probability of the label they have (lowest first). Comparing labels with the served model's
predictions is a poor substitute: that model learnt those very labels (a probe on the encoder's
embeddings found 0-8 % of planted mistakes at 200-500 labels; docs/annotating.md, "Reviewing labels").

Plain arrays in, arrays out: no model, database or file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from models_zoo.transfer import LinearProbe


@dataclass
class ReviewConfig:
    folds: int = 5
    C: float = 1.0  # the probe's inverse L2 strength, as the learner's own probe
    # lbfgs iterations per fold: 100 found the same suspects as 300 on Fashion-MNIST embeddings
    # (F1 0.596 against 0.597 at 2,000 labels, 0.678 both at 10,000) in 25-45 % less time.
    max_iter: int = 100
    # Classes with fewer labels are neither judged nor used as "the other class" for an item: a
    # fold without a class's examples cannot say anything about it.
    min_per_class: int = 3


@dataclass
class LabelIssues:
    p_given: np.ndarray  # (n,) out-of-fold probability of each item's label; nan where not judged
    suggested: np.ndarray  # (n,) int: the class confident learning puts a suspect in; -1 otherwise
    issue: np.ndarray  # (n,) bool: suspects
    thresholds: np.ndarray  # (C,) t_j; nan for classes not judged
    proba: np.ndarray  # (n, C) the out-of-fold probabilities (zeros where not judged)

    def ranked(self) -> np.ndarray:
        """Indices of the suspects, the least self-confident first."""
        idx = np.flatnonzero(self.issue)
        return idx[np.argsort(self.p_given[idx], kind="stable")]


def out_of_fold_proba(
    features: np.ndarray, labels: np.ndarray, n_classes: int, *, config: ReviewConfig, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """((n, C) probabilities, (n,) judged): each judged item's row comes from a probe fitted on the
    folds without it. ``features`` (n, d) float, ``labels`` (n,) int in [0, C)."""
    n = len(labels)
    proba = np.zeros((n, n_classes), dtype=np.float64)
    counts = np.bincount(labels, minlength=n_classes)
    judged = counts[labels] >= config.min_per_class
    if np.count_nonzero(counts >= config.min_per_class) < 2:
        return proba, np.zeros(n, dtype=bool)  # one class or none: nothing to tell apart
    rows = np.flatnonzero(judged)
    X, y = features[rows], labels[rows]
    splits = min(config.folds, int(counts[counts >= config.min_per_class].min()))
    folds = StratifiedKFold(n_splits=max(2, splits), shuffle=True, random_state=seed)
    for fit_rows, held_rows in folds.split(X, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs convergence notes on tiny folds
            probe = LinearProbe(C=config.C, max_iter=config.max_iter, seed=seed).fit(X[fit_rows], y[fit_rows])
        proba[rows[held_rows]] = probe.predict_proba(X[held_rows], n_classes)
    return proba, judged


def label_issues(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    config: ReviewConfig | None = None,
    seed: int = 0,
) -> LabelIssues:
    """Confident learning's suspects among ``labels`` (n,) given ``features`` (n, d)."""
    config = config or ReviewConfig()
    labels = np.asarray(labels, dtype=np.int64)
    proba, judged = out_of_fold_proba(features, labels, n_classes, config=config, seed=seed)
    n = len(labels)
    thresholds = np.full(n_classes, np.nan)
    for j in range(n_classes):
        mine = judged & (labels == j)
        if mine.any():
            thresholds[j] = proba[mine, j].mean()
    p_given = np.where(judged, proba[np.arange(n), labels], np.nan)
    # Confidently in class j: p(j) at or above that class's own threshold (unjudged classes never).
    confident = proba >= np.where(np.isnan(thresholds), np.inf, thresholds)[None, :]  # (n, C)
    masked = np.where(confident, proba, -1.0)
    best = masked.argmax(1)
    has_any = confident.any(1)
    issue = judged & has_any & (best != labels)
    suggested = np.where(issue, best, -1)
    return LabelIssues(p_given=p_given, suggested=suggested, issue=issue, thresholds=thresholds, proba=proba)
