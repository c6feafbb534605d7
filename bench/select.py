"""Speed benchmark of the selection strategies, side by side with scikit-activeml and modAL.

    python -m bench.select                      # N = 50k, 200k, 1M; B = 100, 1000
    python -m bench.select --sizes 50000 --impls ours

Every measurement runs in its own subprocess (``--worker``), so its peak memory is its
own: ``peak_mb`` is that process's ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which
includes the interpreter, the imported libraries and the input arrays (``input_mb``);
``seconds`` is the wall time of the selection call alone; a call under 1 s is repeated (at least
5 calls, and on until 0.5 s went on repeats, at most 2,000) and the fastest kept (``calls``), the
same rule for every implementation: each gets the same half second of repeats. Peers run in ``.venv-bench``
(created on first use from ``bench/requirements-peers.txt``), under a wall-clock timeout
and an address-space cap; a run that does not finish gets ``"seconds": null`` and a note.

The pool: a mixture of 64 Gaussian clusters in a 16-dimensional latent space, mapped
linearly to d = 128 plus isotropic noise (low intrinsic dimension, like real embeddings);
probabilities are a fixed softmax of a random linear map of the embeddings (C = 10);
MC samples (BALD) are 10 noisy copies of it; 1,000 random items are labelled.
Results go to ``bench/results/select.json``.

    python -m bench.select --quality            # label efficiency, auto's switch rule, forecast
    python -m bench.select --quality --variants auto   # re-run only these, keep the other curves

``--quality`` is a quick label-efficiency harness on features computed here (no
simulator, no SSL encoder): Fashion-MNIST (IDX files, PCA-64 of the pixels, L2-normalised,
a 20k pool per seed, the 10k test set) and scikit-learn's digits (raw 8x8, 1,297 pool /
500 test), a logistic-regression probe, budgets 10-500, 5 seeds; every strategy, random,
the class-balanced oracle and ``auto`` with other switch points. It also checks the
forecast (fit at <= 100 labels, predict 500) and the stop rule on a 3,000-label campaign.
Writes ``bench/results/select_quality.json``.

    python -m bench.select --stop-rule          # the stop rule over seeds, stop sets, thresholds

``--stop-rule`` runs that campaign for ``auto`` on every seed with each round's predictions kept on
the whole pool, and judges the stop rule against the plateau for stop sets of several sizes (random
subsets) and thresholds: ``bench/results/stop_rule_seeds.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "select.json"
PEER_VENV = ROOT / ".venv-bench"
PEER_REQS = ROOT / "bench" / "requirements-peers.txt"
D, C, N_LABELLED, T_MC = 128, 10, 1_000, 10
OURS = [
    "random",
    "least_confidence",
    "margin",
    "entropy",
    "bald",
    "balanced_margin",
    "coreset",
    "badge",
    "typiclust",
    "probcover",
    "auto",
]
# Our registry name -> what the peer library calls it (only strategies they have).
PEERS = {
    "scikit-activeml": {
        "random": "RandomSampling",
        "least_confidence": "UncertaintySampling(least_confident)",
        "margin": "UncertaintySampling(margin_sampling)",
        "entropy": "UncertaintySampling(entropy)",
        "coreset": "CoreSet",
        "badge": "Badge",
        "typiclust": "TypiClust",
        "probcover": "ProbCover",
    },
    "modal": {
        "least_confidence": "uncertainty_sampling",
        "margin": "margin_sampling",
        "entropy": "entropy_sampling",
    },
}


# ----------------------------------------------------------------------------- data
def make_pool(n: int, *, seed: int = 0) -> dict:
    """Embeddings (n, D) float32, probs (n, C), mc_probs (T, n, C), labelled mask and labels."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, 16)).astype(np.float32) * 3  # (64, 16) latent
    lift = rng.standard_normal((16, D)).astype(np.float32) / 4  # (16, D)
    w = rng.standard_normal((D, C)).astype(np.float32)  # (D, C) the "model"
    x = np.empty((n, D), np.float32)
    for s in range(0, n, 65_536):  # chunks keep the generation peak small
        m = min(65_536, n - s)
        z = centres[rng.integers(0, 64, m)] + rng.standard_normal((m, 16), dtype=np.float32)
        x[s : s + m] = z @ lift + 0.1 * rng.standard_normal((m, D), dtype=np.float32)
    probs = softmax(x @ w)  # (n, C)
    labelled = np.zeros(n, bool)
    labelled[rng.choice(n, N_LABELLED, replace=False)] = True
    labels = np.where(labelled, probs.argmax(axis=1), -1)
    return dict(embeddings=x, probs=probs, labelled_mask=labelled, labels=labels, w=w)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z.astype(np.float32, copy=False)


def mc_samples(pool: dict, *, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = np.log(pool["probs"] + 1e-9)
    return np.stack(
        [softmax(logits + rng.standard_normal(logits.shape, dtype=np.float32)) for _ in range(T_MC)]
    )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ----------------------------------------------------------------------------- workers
def best_time(call, *, repeat: int = 5, under: float = 1.0, spend: float = 0.5, most: int = 2000):
    """(result, seconds, calls): one timed call; a call under ``under`` seconds is repeated, at
    least ``repeat`` times in all and until ``spend`` seconds went on repeats (at most ``most``
    calls), and the fastest kept, as timeit does: first-call costs such as page faults on fresh
    buffers, caches and clocks warming up (a 0.5 ms call took 0.64 ms on the 2nd call, 0.49 ms
    by the 12th) dwarf a millisecond-scale call. The same rule for every implementation: the same
    half second of repeats (a cap of 200 calls gave a 0.3 ms call 60 ms of them and a 1.8 ms peer
    360 ms, and the shorter window's minimum is the noisier); strategies are pure, so a repeat does
    the same work."""
    t = time.perf_counter()
    result = call()
    best, calls, spent = time.perf_counter() - t, 1, 0.0
    while best < under and calls < most and (calls < repeat or spent < spend):
        t = time.perf_counter()
        result = call()
        took = time.perf_counter() - t
        best, calls, spent = min(best, took), calls + 1, spent + took
    return result, best, calls


def run_ours(strategy: str, n: int, batch: int) -> dict:
    import torch  # noqa: F401  (the uncertainty scores run on torch, which a worker has loaded)

    from models_zoo.selection import select

    pool = make_pool(n)
    mc = mc_samples(pool) if strategy == "bald" else None
    kw = dict(
        embeddings=pool["embeddings"],
        labelled_mask=pool["labelled_mask"],
        probs=pool["probs"],
        labels=pool["labels"],
        mc_probs=mc,
        n_classes=C,
    )
    input_mb = sum(a.nbytes for a in kw.values() if isinstance(a, np.ndarray)) / 2**20
    sel, seconds, calls = best_time(lambda: select(strategy, batch_size=batch, seed=0, **kw))
    assert len(np.unique(sel.indices)) == batch and not pool["labelled_mask"][sel.indices].any()
    return {"seconds": seconds, "calls": calls, "peak_mb": rss_mb(), "input_mb": input_mb}


def run_skactiveml(strategy: str, n: int, batch: int) -> dict:
    from skactiveml import pool as skpool
    from skactiveml.base import SkactivemlClassifier

    class FixedModel(SkactivemlClassifier):
        """The same precomputed probabilities ours gets, looked up by a row-id column that
        the model-based strategies get appended to X (a gather, like our probs[pool])."""

        def __init__(self, probs=None, classes=None, missing_label=np.nan, random_state=None):
            super().__init__(classes=classes, missing_label=missing_label, random_state=random_state)
            self.probs = probs

        def fit(self, X, y, sample_weight=None):
            self._validate_data(X, y)
            return self

        def predict_proba(self, X, return_embeddings=False):
            p = self.probs[X[:, -1].astype(np.int64)]
            return (p, X[:, :-1]) if return_embeddings else p

    pool = make_pool(n)
    y = np.where(pool["labelled_mask"], pool["labels"], np.nan)  # missing label: nan
    x = pool["embeddings"]
    if strategy in ("least_confidence", "margin", "entropy", "badge"):
        x = np.hstack([x, np.arange(n, dtype=np.float32)[:, None]])  # (n, d + 1): row id last
    clf = FixedModel(probs=pool["probs"], classes=np.arange(C)).fit(x, y)
    input_mb = (x.nbytes + y.nbytes + pool["probs"].nbytes) / 2**20
    name = PEERS["scikit-activeml"][strategy]

    def query():
        if name.startswith("UncertaintySampling"):
            method = name[name.index("(") + 1 : -1]
            return skpool.UncertaintySampling(method=method, random_state=0).query(
                x, y, clf, fit_clf=False, batch_size=batch
            )
        if name == "Badge":
            return skpool.Badge(clf_embedding_flag_name="return_embeddings", random_state=0).query(
                x, y, clf, fit_clf=False, batch_size=batch
            )
        if name == "ProbCover":
            return skpool.ProbCover(n_classes=C, random_state=0).query(x, y, batch_size=batch)
        return getattr(skpool, name)(random_state=0).query(x, y, batch_size=batch)

    idx, seconds, calls = best_time(query)
    assert len(np.unique(idx)) == batch
    return {"seconds": seconds, "calls": calls, "peak_mb": rss_mb(), "input_mb": input_mb}


def run_modal(strategy: str, n: int, batch: int) -> dict:
    from modAL import uncertainty

    class FixedModel:
        """The same precomputed probabilities ours gets, for the pool modAL is given."""

        def __init__(self, x_pool, probs):
            self.x_pool, self.probs = x_pool, probs

        def predict_proba(self, X):
            assert X is self.x_pool
            return self.probs

    pool = make_pool(n)
    unlabelled = ~pool["labelled_mask"]
    x_pool = pool["embeddings"][unlabelled]  # modAL takes the unlabelled pool
    model = FixedModel(x_pool, pool["probs"][unlabelled])
    input_mb = (pool["embeddings"].nbytes + x_pool.nbytes + pool["probs"].nbytes) / 2**20
    fn = getattr(uncertainty, PEERS["modal"][strategy])
    idx, seconds, calls = best_time(lambda: fn(model, x_pool, n_instances=batch))
    idx = idx[0] if isinstance(idx, tuple) else idx  # modAL 0.4 returns (indices, values)
    assert len(np.unique(idx)) == batch
    return {"seconds": seconds, "calls": calls, "peak_mb": rss_mb(), "input_mb": input_mb}


WORKERS = {"ours": run_ours, "scikit-activeml": run_skactiveml, "modal": run_modal}


# ----------------------------------------------------------------------------- quality
QUALITY_RESULTS = ROOT / "bench" / "results" / "select_quality.json"
# Debian's path, or $FASHION_MNIST_DIR as in models_zoo.datasets (not imported here: the peers'
# subprocesses run in their own environment).
FMNIST_DIR = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
BUDGETS = [10, 20, 50, 100, 200, 500]
NEEDS_PROBS = {"least_confidence", "margin", "entropy", "balanced_margin", "badge", "bald"}


def _idx(path: Path) -> np.ndarray:
    import gzip

    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _unit(z: np.ndarray) -> np.ndarray:
    return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


def load_dataset(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pool embeddings (N, d), pool labels (N,), test embeddings, test labels."""
    from sklearn.decomposition import PCA

    if name == "fashion-mnist":
        xtr = _idx(FMNIST_DIR / "train-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0
        ytr = _idx(FMNIST_DIR / "train-labels-idx1-ubyte.gz").astype(np.int64)
        xte = _idx(FMNIST_DIR / "t10k-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0
        yte = _idx(FMNIST_DIR / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
        sub = np.random.default_rng(seed).choice(len(xtr), 20_000, replace=False)
        pca = PCA(64, random_state=0).fit(xtr[sub])
        return _unit(pca.transform(xtr[sub])), ytr[sub], _unit(pca.transform(xte)), yte
    from sklearn.datasets import load_digits

    d = load_digits()
    perm = np.random.default_rng(seed).permutation(len(d.target))
    z = _unit(d.data / 16.0 - (d.data / 16.0).mean(axis=0))
    return z[perm[:1297]], d.target[perm[:1297]], z[perm[1297:]], d.target[perm[1297:]]


def campaign(
    strategy: str,
    data: tuple,
    budgets: list[int],
    seed: int,
    *,
    stop_set: np.ndarray | None = None,
    test_correct: list | None = None,
) -> tuple[list[float], list[np.ndarray], list[np.ndarray]]:
    """Accuracy on the test set after each budget; per round, the predictions on ``stop_set`` and
    which of its items were labelled. ``test_correct``: a list to append, per round, which test
    items (bool (N_test,)) the model got right."""
    from sklearn.linear_model import LogisticRegression

    from models_zoo.selection import resolve, select

    x, y, xte, yte = data
    c = int(y.max()) + 1
    labelled = np.zeros(len(x), bool)
    rng = np.random.default_rng(seed)
    probs, accs, stop_preds, stop_labelled = None, [], [], []
    for b in budgets:
        need = b - int(labelled.sum())
        if strategy == "oracle":  # class-balanced random: the fewest-labelled class next
            count = np.bincount(y[labelled], minlength=c)
            for _ in range(need):
                k = int(np.argmin(count + rng.random(c) * 0.1))
                labelled[rng.choice(np.flatnonzero((y == k) & ~labelled))] = True
                count[k] += 1
        else:
            name = "random" if strategy in NEEDS_PROBS and probs is None else strategy
            sel = select(
                resolve(name),
                embeddings=x,
                labelled_mask=labelled,
                batch_size=need,
                seed=seed,
                probs=probs,
                labels=np.where(labelled, y, -1),
                n_classes=c,
            )
            labelled[sel.indices] = True
        seen = np.unique(y[labelled])
        if seen.size < 2:  # a one-class "model" predicts that class
            accs.append(float(np.mean(yte == seen[0])))
            if test_correct is not None:
                test_correct.append(yte == seen[0])
            probs = None
            if stop_set is not None:
                stop_preds.append(np.full(len(stop_set), seen[0]))
                stop_labelled.append(labelled[stop_set].copy())
            continue
        clf = LogisticRegression(max_iter=2000, C=10.0).fit(x[labelled], y[labelled])
        right = clf.predict(xte) == yte
        accs.append(float(right.mean()))
        if test_correct is not None:
            test_correct.append(right)
        probs = np.zeros((len(x), c), np.float32)
        probs[:, seen] = clf.predict_proba(x)
        if stop_set is not None:
            stop_preds.append(clf.predict(x[stop_set]))
            stop_labelled.append(labelled[stop_set].copy())
    return accs, stop_preds, stop_labelled


def nauc(accs: list[float], budgets: list[int] = BUDGETS) -> float:
    """Area under accuracy vs log(labels), divided by the log-budget range: a mean accuracy."""
    lb = np.log(budgets)
    a = np.asarray(accs)
    return float(np.sum((a[1:] + a[:-1]) / 2 * np.diff(lb)) / (lb[-1] - lb[0]))


def quality_variants() -> list[str]:
    """Every strategy but BALD (it needs MC samples, which a logistic-regression probe does not
    give), the class-balanced oracle, and ``auto@k:warm``: auto switching at k labels per class to
    the warm strategy (auto's own setting left out: that is ``auto``)."""
    from models_zoo.selection import auto, names

    return (
        [n for n in names() if n != "bald"]
        + ["oracle"]
        + [
            f"auto@{m}:{w}"
            for m in (2, 5, 10, 20)
            for w in ("margin", "balanced_margin", "badge")
            if (m, w) != (auto.SWITCH_LABELS_PER_CLASS, auto.WARM)
        ]
    )


def run_quality(seeds: int, datasets: list[str], out: Path, only: list[str] | None = None) -> dict:
    """The label-efficiency harness. ``only``: run these variants and keep the other curves (and,
    unless ``auto`` is among them, the stop-rule campaign) from the results file."""
    from models_zoo.forecast import fit_learning_curve, plateau_round, stop_rule_state

    known = variants = quality_variants()
    old: dict = {}
    if only is not None:
        unknown = sorted(set(only) - set(variants))
        if unknown:
            raise SystemExit(f"unknown variants {unknown}; known: {', '.join(variants)}")
        old = json.loads(out.read_text()) if out.exists() else {}
        if old and old.get("seeds") != seeds:
            raise SystemExit(f"{out} has {old.get('seeds')} seeds; run with --seeds {old.get('seeds')}")
        variants = only
    curves: dict = {
        ds: {v: a for v, a in by.items() if v not in variants and v in known}
        for ds, by in old.get("curves", {}).items()
        if ds in datasets
    }
    for ds in datasets:
        for seed in range(seeds):
            data = load_dataset(ds, seed)
            for v in variants:
                t = time.perf_counter()
                accs, _, _ = campaign(v, data, BUDGETS, seed)
                curves.setdefault(ds, {}).setdefault(v, []).append(accs)
                print(f"{ds} seed {seed} {v:28s} " + " ".join(f"{100 * a:5.1f}" for a in accs)
                      + f"  ({time.perf_counter() - t:.0f} s)", flush=True)  # fmt: skip
    summary = {}
    for ds, by in curves.items():
        summary[ds] = {
            v: {"mean": np.mean(a, axis=0).tolist(), "nauc": nauc(np.mean(a, axis=0))} for v, a in by.items()
        }
    # Forecast: on each strategy's mean curve, fit at <= 100 labels, predict 500.
    forecast = []
    for ds, by in summary.items():
        for v, r in by.items():
            acc = np.asarray(r["mean"])
            lc = fit_learning_curve(np.asarray(BUDGETS[:4]), acc[:4], seed=0)
            point, low, high = lc.accuracy_at(500)
            reach = lc.labels_to_reach(float(acc[5]))
            forecast.append(
                {"dataset": ds, "strategy": v, "actual_500": acc[5], "predicted_500": [point, low, high],
                 "labels_to_actual_500": None if reach is None else list(reach)}
            )  # fmt: skip
    # Stop rule: auto, +100 labels a round up to 3,000, kappa on a fixed 2,000-item stop set.
    stop = [] if not old or "auto" in variants else [s for s in old["stop_rule"] if s["dataset"] in datasets]
    for ds in datasets if not stop else []:
        data = load_dataset(ds, 0)
        budgets = [10, 20, 50] + list(range(100, min(3001, len(data[0]) // 2), 100))
        stop_set = np.random.default_rng(99).choice(len(data[0]), min(2000, len(data[0]) // 4), replace=False)
        accs, preds, done = campaign("auto", data, budgets, 0, stop_set=stop_set)
        state = stop_rule_state(preds, labelled_per_round=done)
        plateau = plateau_round(accs)
        late = None if state["fired_at_round"] is None else state["fired_at_round"] - plateau
        stop.append({"dataset": ds, "budgets": budgets, "accuracy": accs, **state, "plateau_round": plateau,
                     "rounds_after_plateau": late})  # fmt: skip
    result = {"budgets": BUDGETS, "seeds": seeds, "curves": curves, "summary": summary, "forecast": forecast,
              "stop_rule": stop}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print_quality(result)
    return result


STOP_THRESHOLDS = (0.98, 0.985, 0.99, 0.995)


def run_stop_study(seeds: int, datasets: list[str], draws: int = 30) -> list[dict]:
    """The stop rule over seeds, stop-set sizes and thresholds, on the harness's ``auto`` campaign
    (+100 labels a round from 100, to 3,000 or half the pool). Each round's predictions are kept on
    the whole pool; a stop set of m items is ``draws`` random m-subsets of it (the whole pool once),
    each kappa over the items not yet labelled. One record per dataset, seed, size and threshold:
    rounds from the plateau (``plateau_round``, one point) to where the rule fires, mean and sd over
    the draws. Writes bench/results/stop_rule_seeds.json."""
    from bench.common import write_results
    from models_zoo.forecast import plateau_round, stop_rule_state

    rng = np.random.default_rng(0)
    records = []
    for ds in datasets:
        for seed in range(seeds):
            data = load_dataset(ds, seed)
            n = len(data[0])
            budgets = [10, 20, 50] + list(range(100, min(3001, n // 2), 100))
            accs, preds, done = campaign("auto", data, budgets, seed, stop_set=np.arange(n))
            preds, done = np.array(preds), np.array(done)
            plateau = plateau_round(accs)
            for m in sorted({min(size, n) for size in (1000, 2000, 5000)} | {n // 4, n}):
                subsets = (
                    [np.arange(n)]
                    if m == n
                    else [np.sort(rng.choice(n, m, replace=False)) for _ in range(draws)]
                )
                for t in STOP_THRESHOLDS:
                    fired = [stop_rule_state(list(preds[:, sub]), threshold=t, labelled_per_round=list(done[:, sub]))["fired_at_round"] for sub in subsets]  # fmt: skip
                    late = np.array([f - plateau for f in fired if f is not None])
                    records.append({
                        "dataset": ds, "strategy": "auto", "seed": seed, "stop_set": m, "threshold": t,
                        "draws": len(subsets), "not_fired": sum(f is None for f in fired),
                        "plateau_labels": budgets[plateau], "accuracy_at_plateau": accs[plateau],
                        "accuracy_last_round": accs[-1],
                        "rounds_after_plateau": float(late.mean()) if late.size else None,
                        "rounds_after_plateau_sd": float(late.std()) if late.size else None,
                        "within_one_round": float(np.sum(np.abs(late) <= 1)) / len(fired),
                        "accuracy_when_fired": float(np.mean([accs[f] for f in fired if f is not None])) if late.size else None,
                    })  # fmt: skip
            print(f"{ds} seed {seed}: plateau {budgets[plateau]} labels", flush=True)
    note = (
        "bench.select --stop-rule: the quality harness's auto campaign (PCA-64 + logistic regression), "
        f"seeds 0-{seeds - 1}, predictions kept on the whole pool; stop sets are random subsets ({draws} draws)"
    )
    write_results("stop_rule_seeds", records, note=note)
    print_stop_study(records)
    return records


FORECAST_BUDGETS = [20, 40, 60, 80, 100, 150, 200, 300, 500]
FORECAST_FIT_UPTO = 100  # a service retraining every 20 labels has these 5 versions at 100 labels


def run_forecast_audit(seeds: int, datasets: list[str], draws: int = 20, n_boot: int = 100) -> list[dict]:
    """The forecast's interval when its points are measured on a small audit slice, as in the
    service: ``auto``'s campaign (seeds 0..seeds-1) with a model at each of FORECAST_BUDGETS, every
    test item's right/wrong kept per model; ``draws`` audit slices of 10, 20 and 40 test items per
    seed, every model scored on the same slice (as the service rescores its versions). The curve is
    fitted at 20-100 labels and judged at 500 against the whole test set's accuracy there, with each
    point's count alone (``evaluated=``, independent draws per point) and with the shared items
    (``outcomes=``). One record per dataset, slice size and method: how often the 10-90 % interval
    holds the true accuracy at 500 (80 % would be exact), how often it is above / below it, the
    point error, the interval's width, and how often the labels-to-reach interval of that accuracy
    holds 500. Writes bench/results/forecast_audit.json."""
    from bench.common import write_results
    from models_zoo.forecast import fit_learning_curve

    fit = np.asarray(FORECAST_BUDGETS) <= FORECAST_FIT_UPTO
    n = np.asarray(FORECAST_BUDGETS, float)[fit]
    rng = np.random.default_rng(0)
    rows: dict[tuple, list] = {}
    for ds in datasets:
        for seed in range(seeds):
            correct: list = []
            campaign("auto", load_dataset(ds, seed), FORECAST_BUDGETS, seed, test_correct=correct)
            right = np.array(correct, float)  # (rounds, N_test)
            truth = right[-1].mean()
            for m in (10, 20, 40):
                for _ in range(draws):
                    outcomes = right[fit][:, rng.choice(right.shape[1], m, replace=False)]
                    for method in ("independent", "shared"):
                        extra = (
                            {"outcomes": outcomes}
                            if method == "shared"
                            else {"evaluated": np.full(n.size, m)}
                        )
                        lc = fit_learning_curve(n, outcomes.mean(1), seed=0, n_boot=n_boot, **extra)
                        point, lo, hi = lc.accuracy_at(500.0)
                        reach = lc.labels_to_reach(truth)
                        rows.setdefault((ds, m, method), []).append(
                            (lo <= truth <= hi, truth < lo, truth > hi, point - truth, hi - lo,
                             reach is not None and reach[1] <= 500 <= reach[2])
                        )  # fmt: skip
            print(f"{ds} seed {seed}: {100 * truth:.1f} % at 500 labels", flush=True)
    records = []
    for (ds, m, method), r in rows.items():
        a = np.array(r, float)
        records.append({
            "dataset": ds, "audit_items": m, "method": method, "fits": len(r), "covered": a[:, 0].mean(),
            "true_below_interval": a[:, 1].mean(), "true_above_interval": a[:, 2].mean(),
            "error_points": 100 * a[:, 3].mean(), "error_sd_points": 100 * a[:, 3].std(),
            "width_points": 100 * a[:, 4].mean(), "labels_interval_holds_500": a[:, 5].mean(),
        })  # fmt: skip
    note = (
        f"bench.select --forecast-audit: auto campaign (PCA-64 + logistic regression), seeds 0-{seeds - 1}, "
        f"{draws} audit slices per seed and size, fit at {FORECAST_BUDGETS[: int(fit.sum())]} labels, "
        f"judged at 500, {n_boot} bootstrap refits, 10-90 % interval"
    )
    write_results("forecast_audit", records, note=note)
    print("\nforecast at 500 labels from audit slices: interval holds the truth (80 % is exact)")
    for r in records:
        print(f"{r['dataset']:14s} {r['audit_items']:3d} items {r['method']:12s} holds {r['covered']:4.0%} "
              f"(truth below {r['true_below_interval']:4.0%}, above {r['true_above_interval']:4.0%}), "
              f"error {r['error_points']:+5.1f} sd {r['error_sd_points']:4.1f}, width {r['width_points']:5.1f} points; "
              f"labels interval holds 500: {r['labels_interval_holds_500']:4.0%}")  # fmt: skip
    return records


def print_stop_study(records: list[dict]) -> None:
    print("\nstop rule: rounds from the plateau to where it fires (mean over seeds and draws; sd over draws")
    print(
        "within a seed; share of draws within one round; points below the last round's accuracy when fired)"
    )
    keys = sorted({(r["dataset"], r["stop_set"], r["threshold"]) for r in records})
    for ds, m, t in keys:
        rows = [r for r in records if (r["dataset"], r["stop_set"], r["threshold"]) == (ds, m, t)]
        late = [r["rounds_after_plateau"] for r in rows if r["rounds_after_plateau"] is not None]
        gap = [
            100 * (r["accuracy_last_round"] - r["accuracy_when_fired"])
            for r in rows
            if r["accuracy_when_fired"] is not None
        ]
        sd = [r["rounds_after_plateau_sd"] for r in rows if r["rounds_after_plateau_sd"] is not None]
        never = sum(r["not_fired"] for r in rows)
        print(f"{ds:14s} stop set {m:6d} kappa >= {t:.3f}: {np.mean(late) if late else float('nan'):+5.1f} rounds "
              f"(sd {np.mean(sd) if sd else float('nan'):.2f}), within one {np.mean([r['within_one_round'] for r in rows]):4.0%}, "
              f"{np.mean(gap) if gap else float('nan'):.1f} points below the last{f', {never} never fired' if never else ''}")  # fmt: skip


def print_quality(result: dict) -> None:
    for ds, by in result["summary"].items():
        print(f"\n{ds}: mean test accuracy (%) over {result['seeds']} seeds; nAUC over log-budget")
        print(f"{'strategy':28s} " + " ".join(f"{b:>5d}" for b in result["budgets"]) + "   nAUC")
        for v, r in sorted(by.items(), key=lambda kv: -kv[1]["nauc"]):
            print(f"{v:28s} " + " ".join(f"{100 * a:5.1f}" for a in r["mean"]) + f"   {100 * r['nauc']:.1f}")
    f = result["forecast"]
    err = np.array([100 * (r["predicted_500"][0] - r["actual_500"]) for r in f])
    lab = np.array(
        [np.inf if r["labels_to_actual_500"] is None else r["labels_to_actual_500"][0] / 500 - 1 for r in f]
    )
    print(
        f"\nforecast at 100 labels -> 500: {np.mean(np.abs(err) <= 3):.0%} within 3 points, "
        f"{np.mean(err <= 0):.0%} on the low side, mean error {err.mean():+.1f}, max |error| {np.abs(err).max():.1f}; "
        f"labels-to-target within 30%: {np.mean(np.abs(lab) <= 0.3):.0%} (median error {np.median(lab):+.0%})"
    )
    for s in result["stop_rule"]:
        print(f"stop rule on {s['dataset']}: fired at round {s['fired_at_round']} "
              f"({'never' if s['fired_at_round'] is None else s['budgets'][s['fired_at_round']]} labels), "
              f"plateau at round {s.get('plateau_round')} ({s['budgets'][s['plateau_round']] if 'plateau_round' in s else '?'} labels); "
              f"accuracy by round " + " ".join(f"{100 * a:.1f}" for a in s["accuracy"]))  # fmt: skip


# ----------------------------------------------------------------------------- driver
def ensure_peer_venv() -> Path:
    """Create .venv-bench (isolated from the service's packages) on first use."""
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {PEER_VENV} from {PEER_REQS} ...", flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(PEER_REQS)], check=True)
    return py


def measure(impl: str, strategy: str, n: int, batch: int, *, timeout: float, mem_gb: float) -> dict:
    py = sys.executable if impl == "ours" else str(ensure_peer_venv())
    cmd = [py, "-m", "bench.select", "--worker", impl, strategy, str(n), str(batch)]
    limit = int(mem_gb * 2**30)

    def cap():  # in the child: a hard address-space cap so a peer cannot take the machine down
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    rec = {"impl": impl, "strategy": strategy, "n": n, "d": D, "batch": batch}
    try:
        out = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, preexec_fn=cap, env=_env()
        )
    except subprocess.TimeoutExpired:
        return {**rec, "seconds": None, "peak_mb": None, "note": f"did not finish within {timeout:.0f} s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        err = (out.stderr.strip().splitlines() or ["no output"])[-1][:200]
        if "MemoryError" in out.stderr or "Unable to allocate" in out.stderr or out.returncode in (-9, 137):
            err = f"out of memory under the {mem_gb:.0f} GB cap ({err})"
        return {**rec, "seconds": None, "peak_mb": None, "note": err}
    return {**rec, **json.loads(lines[-1])}


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def machine() -> dict:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpuinfo = Path("/proc/cpuinfo")
    models = [
        ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")
    ]
    cpu = models[0] if models else platform.processor()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_avg_at_start": os.getloadavg()[0],
        "peak_mb": "ru_maxrss of the measuring subprocess (interpreter + libraries + inputs)",
    }


def print_table(records: list[dict]) -> None:
    ours = {(r["strategy"], r["n"], r["batch"]): r["seconds"] for r in records if r["impl"] == "ours"}
    print(f"\n{'impl':16s} {'strategy':17s} {'N':>8s} {'B':>5s} {'seconds':>9s} {'peak MB':>8s}  vs ours")
    for r in records:
        s = r["seconds"]
        base = ours.get((r["strategy"], r["n"], r["batch"]))
        ratio = ""
        if r["impl"] != "ours" and base:
            ratio = f"{s / base:8.1f}x" if s is not None else f"  >{r['note'][:60]}"
        secs = f"{s:9.3f}" if s is not None else "        -"
        peak = f"{r['peak_mb']:8.0f}" if r.get("peak_mb") else "       -"
        print(f"{r['impl']:16s} {r['strategy']:17s} {r['n']:8d} {r['batch']:5d} {secs} {peak}  {ratio}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m bench.select",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--worker", nargs=4, metavar=("IMPL", "STRATEGY", "N", "B"), help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default="50000,200000,1000000")
    ap.add_argument("--batches", default="100,1000")
    ap.add_argument("--strategies", default=",".join(OURS))
    ap.add_argument("--impls", default="ours,scikit-activeml,modal")
    ap.add_argument(
        "--peer-timeout", type=float, default=120.0, help="seconds before a peer run is abandoned"
    )
    ap.add_argument(
        "--timeout", type=float, default=600.0, help="seconds before one of our runs is abandoned"
    )
    ap.add_argument("--mem-gb", type=float, default=10.0, help="address-space cap per run")
    ap.add_argument("--out", default=None, help="results file (default bench/results/select[_quality].json)")
    ap.add_argument("--quality", action="store_true", help="label-efficiency harness instead of speed")
    ap.add_argument(
        "--stop-rule",
        action="store_true",
        help="the stop rule over seeds, stop-set sizes and thresholds (bench/results/stop_rule_seeds.json)",
    )
    ap.add_argument(
        "--forecast-audit",
        action="store_true",
        help="the forecast's interval from small audit slices (bench/results/forecast_audit.json)",
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--datasets", default="fashion-mnist,digits")
    ap.add_argument(
        "--variants",
        default="",
        help="--quality: run only these (comma-separated), keep the rest from --out; 'none' re-runs no "
        "campaign and recomputes the forecasts from the stored curves",
    )
    args = ap.parse_args(argv)
    if args.stop_rule:
        run_stop_study(args.seeds, args.datasets.split(","))
        return
    if args.forecast_audit:
        run_forecast_audit(args.seeds, args.datasets.split(","))
        return
    if args.quality:
        only = None if not args.variants else [v for v in args.variants.split(",") if v != "none"]
        run_quality(args.seeds, args.datasets.split(","), Path(args.out or QUALITY_RESULTS), only)
        return
    if args.worker:
        impl, strategy, n, b = args.worker
        print(json.dumps(WORKERS[impl](strategy, int(n), int(b))), flush=True)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    strategies = args.strategies.split(",")
    impls = args.impls.split(",")
    out = Path(args.out or RESULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Keep records of other sizes from an earlier run, so --sizes can fill in a subset.
    old = json.loads(out.read_text())["records"] if out.exists() else []
    this_run = {(i, s, n, b) for i in impls for s in strategies for n in sizes for b in batches}
    keep = [r for r in old if (r["impl"], r["strategy"], r["n"], r["batch"]) not in this_run]
    records: list[dict] = []
    run_info = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_avg_at_start": os.getloadavg()[0],
    }
    gave_up: set[tuple[str, str]] = set()  # a peer that failed at a smaller N is not retried
    for n in sizes:
        for b in batches:
            for strategy in strategies:
                for impl in impls:
                    if impl != "ours" and strategy not in PEERS[impl]:
                        continue
                    if (impl, strategy) in gave_up:
                        records.append(
                            {"impl": impl, "strategy": strategy, "n": n, "d": D, "batch": b, "seconds": None,
                             "peak_mb": None, "note": "not run: failed at a smaller N or batch"}
                        )  # fmt: skip
                        continue
                    timeout = args.timeout if impl == "ours" else args.peer_timeout
                    rec = measure(impl, strategy, n, b, timeout=timeout, mem_gb=args.mem_gb)
                    # Records of earlier runs are kept (--sizes, --strategies): each says when it ran
                    # and how loaded the machine was, which the file's one machine block cannot.
                    rec["run"] = run_info
                    records.append(rec)
                    if impl != "ours" and rec["seconds"] is None:
                        gave_up.add((impl, strategy))
                    s = "-" if rec["seconds"] is None else f"{rec['seconds']:.3f} s"
                    print(
                        f"N={n:>8d} B={b:>5d} {impl:16s} {strategy:17s} {s:>10s} {rec.get('note', '')}",
                        flush=True,
                    )
                    out.write_text(json.dumps({"machine": machine(), "records": keep + records}, indent=1))
    print_table(keep + records)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
