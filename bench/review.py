"""How well the Review page's suspects find label mistakes, side by side with cleanlab.

Labelled sets of several sizes are drawn from digits and Fashion-MNIST, a share of their labels
flipped (uniformly to another class, or to one of the two classes nearest in feature space, which
is how people mix up classes), and the mistakes looked for four ways on the same features:

- ``ours``: models_zoo/review.py, out-of-fold probabilities of a linear probe (5 folds) and
  confident learning's rule (confidently in another class);
- ``cleanlab``: cleanlab 2.9's ``find_label_issues`` (its default, prune by noise rate) on the
  *same* out-of-fold probabilities, run in the isolated .venv-bench;
- ``predicted_neq_given``: the out-of-fold argmax differs from the label;
- ``in_sample``: a probe fitted on all the labels, argmax differs (what checking labels against
  the served model's predictions gives: it was trained on them).

Precision, recall and F1 of the flagged set, and precision of the first k by each method's ranking
(k = the number of planted mistakes). Features: digits' 64 pixels; Fashion-MNIST's first 64 PCA
components of the pixels (no encoder, so the run is quick and general).

    python -m bench.review [--seeds 3]     # make bench-review; writes bench/results/review.json
    python -m bench.review --features ssl --name review_ssl   # on a pretrained encoder's embeddings
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import write_results
from bench.select import _env, ensure_peer_venv

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"digits": [200, 500, 1000], "fashion-mnist": [500, 1000, 2000]}
NOISE = [0.05, 0.1, 0.2]
KINDS = ["uniform", "confusable"]
METHODS = ["ours", "cleanlab", "predicted_neq_given", "in_sample"]


def features(name: str, kind: str = "pixels", pretrain_minutes: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """``pixels``: the pixels (first 64 PCA components when there are more); ``ssl``: the
    embeddings the service judges on, from a SimCLR encoder pretrained on the pool (cached as
    `make bench-al` caches it; the learned part and the input view, as the worker's)."""
    from models_zoo.datasets import load

    ds = load(name)
    if kind == "ssl":
        from models_zoo.simulate import cached_pretrain
        from models_zoo.train import PretrainConfig

        artifact = cached_pretrain(
            ds.X, PretrainConfig(max_minutes=pretrain_minutes), ROOT / ".cache/models_zoo"
        )
        return artifact.embed(ds.X).astype(np.float32), ds.y
    from sklearn.decomposition import PCA

    X = ds.X.reshape(len(ds.X), -1).astype(np.float32) / 255.0
    if X.shape[1] > 64:
        X = PCA(64, random_state=0).fit_transform(X).astype(np.float32)
    return X, ds.y


def flip(
    y: np.ndarray, X: np.ndarray, rate: float, kind: str, n_classes: int, rng
) -> tuple[np.ndarray, np.ndarray]:
    noisy = y.copy()
    flipped = rng.random(len(y)) < rate
    if kind == "uniform":
        noisy[flipped] = (y[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    else:
        centres = np.stack([X[y == c].mean(0) for c in range(n_classes)])
        dist = np.linalg.norm(centres[:, None] - centres[None], axis=2)
        np.fill_diagonal(dist, np.inf)
        nearest = np.argsort(dist, axis=1)[:, :2]  # (C, 2) the two most similar classes
        noisy[flipped] = nearest[y[flipped], rng.integers(0, 2, flipped.sum())]
    return noisy, flipped


def scores(flagged: np.ndarray, ranking: np.ndarray, truth: np.ndarray) -> dict:
    tp = int((flagged & truth).sum())
    precision = tp / max(1, int(flagged.sum()))
    recall = tp / max(1, int(truth.sum()))
    k = int(truth.sum())
    return {
        "flagged": int(flagged.sum()),
        "true_mistakes": k,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(1e-12, precision + recall),
        "precision_at_k": float(truth[ranking[:k]].mean()) if k else None,
    }


def peer_cleanlab(cases: list[dict]) -> list[dict]:
    """cleanlab's find_label_issues on each case's labels and out-of-fold probabilities, in the
    peer venv (cleanlab is never a dependency of the service)."""
    py = ensure_peer_venv()
    check = subprocess.run([str(py), "-c", "import cleanlab"], capture_output=True)
    if check.returncode:
        subprocess.run([str(py), "-m", "pip", "install", "-q", "cleanlab==2.9.0", "tqdm==4.70.1",
                        "termcolor==3.1.0"], check=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cases.npz"
        np.savez(path, **{f"labels{i}": c["labels"] for i, c in enumerate(cases)},
                 **{f"proba{i}": c["proba"] for i, c in enumerate(cases)})  # fmt: skip
        out = subprocess.run(
            [str(py), "-m", "bench.review", "--peer", str(path), str(len(cases))],
            cwd=ROOT, capture_output=True, text=True, env=_env(), check=False,
        )  # fmt: skip
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_peer(path: str, n: int) -> None:
    from cleanlab.filter import find_label_issues

    data = np.load(path)
    results = []
    for i in range(n):
        labels, proba = data[f"labels{i}"], data[f"proba{i}"]
        t0 = time.perf_counter()
        ranked = find_label_issues(labels, proba, return_indices_ranked_by="self_confidence")
        results.append({"ranked": [int(j) for j in ranked], "seconds": time.perf_counter() - t0})
    print(json.dumps(results))


def bench(args: argparse.Namespace) -> None:
    from models_zoo.review import ReviewConfig, label_issues
    from models_zoo.transfer import LinearProbe

    records, cases = [], []
    for name, sizes in SIZES.items():
        X_all, y_all = features(name, args.features, args.pretrain_minutes)
        n_classes = int(y_all.max()) + 1
        for n in sizes:
            for rate in NOISE:
                for kind in KINDS:
                    for seed in range(args.seeds):
                        rng = np.random.default_rng(seed)
                        idx = rng.choice(len(y_all), n, replace=False)
                        X, y = X_all[idx], y_all[idx]
                        noisy, truth = flip(y, X, rate, kind, n_classes, rng)
                        t0 = time.perf_counter()
                        issues = label_issues(X, noisy, n_classes, config=ReviewConfig(), seed=seed)
                        ours_s = time.perf_counter() - t0
                        judged = ~np.isnan(issues.p_given)
                        self_conf = np.where(judged, issues.p_given, np.inf)
                        by_self_conf = np.argsort(self_conf, kind="stable")
                        ranked = issues.ranked()
                        ours_rank = np.r_[ranked, np.setdiff1d(by_self_conf, ranked, assume_unique=False)]
                        base = {"dataset": name, "features": args.features, "labels": n, "noise": rate,
                                "kind": kind, "seed": seed}  # fmt: skip
                        records.append({**base, "method": "ours", "seconds": ours_s,
                                        **scores(issues.issue, ours_rank, truth)})  # fmt: skip
                        neq = judged & (issues.proba.argmax(1) != noisy)
                        records.append({**base, "method": "predicted_neq_given", "seconds": ours_s,
                                        **scores(neq, by_self_conf, truth)})  # fmt: skip
                        t0 = time.perf_counter()
                        probe = LinearProbe(seed=seed).fit(X, noisy)
                        p_in = probe.predict_proba(X, n_classes)
                        in_s = time.perf_counter() - t0
                        in_rank = np.argsort(p_in[np.arange(n), noisy], kind="stable")
                        records.append({**base, "method": "in_sample", "seconds": in_s,
                                        **scores(p_in.argmax(1) != noisy, in_rank, truth)})  # fmt: skip
                        cases.append({"base": base, "labels": noisy, "proba": issues.proba, "truth": truth})
            print(f"{name}: {n} labels done", flush=True)
    for case, peer in zip(cases, peer_cleanlab(cases), strict=True):
        flagged = np.zeros(len(case["labels"]), dtype=bool)
        flagged[peer["ranked"]] = True
        rest = np.setdiff1d(
            np.argsort(case["proba"][np.arange(len(flagged)), case["labels"]]), peer["ranked"]
        )
        ranking = np.r_[np.array(peer["ranked"], dtype=int), rest]
        records.append({**case["base"], "method": "cleanlab", "seconds": peer["seconds"],
                        **scores(flagged, ranking, case["truth"])})  # fmt: skip
    print_table(records)
    path = write_results(args.name, records, methods=METHODS, seeds=args.seeds, features=args.features)
    print(f"\nwrote {path}")


def print_table(records: list[dict]) -> None:
    print(
        f"\n{'dataset':14} {'labels':>6} {'noise':>5} {'kind':10} "
        + " ".join(f"{m[:18]:>20}" for m in METHODS)
    )
    print(" " * 40 + " ".join(f"{'P / R / F1 / P@k':>20}" for _ in METHODS))
    keys = sorted({(r["dataset"], r["labels"], r["noise"], r["kind"]) for r in records})
    f1 = {m: [] for m in METHODS}
    for key in keys:
        cells = []
        for m in METHODS:
            rows = [
                r
                for r in records
                if (r["dataset"], r["labels"], r["noise"], r["kind"]) == key and r["method"] == m
            ]
            mean = {
                k: float(np.mean([r[k] for r in rows]))
                for k in ("precision", "recall", "f1", "precision_at_k")
            }
            f1[m].append(mean["f1"])
            cells.append(
                f"{mean['precision']:.2f}/{mean['recall']:.2f}/{mean['f1']:.2f}/{mean['precision_at_k']:.2f}"
            )
        print(f"{key[0]:14} {key[1]:>6} {key[2]:>5} {key[3]:10} " + " ".join(f"{c:>20}" for c in cells))
    print("\nmean F1 over all settings: " + ", ".join(f"{m} {np.mean(v):.3f}" for m, v in f1.items()))
    print(f"ours / cleanlab F1: {np.mean(f1['ours']) / np.mean(f1['cleanlab']):.2f}x")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        run_peer(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--features", choices=["pixels", "ssl"], default="pixels")
    ap.add_argument("--pretrain-minutes", type=float, default=5.0, help="with --features ssl")
    ap.add_argument("--name", default="review", help="bench/results/NAME.json (e.g. review_ssl)")
    bench(ap.parse_args())


if __name__ == "__main__":
    main()
