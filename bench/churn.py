"""`make bench-churn`: how much each part of the service's learner moves between rounds.

The stop rule (docs/selection.md) fires when successive models agree (Cohen's kappa) on their
unlabelled predictions. This runs one campaign per strategy and seed (Fashion-MNIST, the cached
`make bench-al` encoder, rounds of 100 labels from 100) and at each round takes kappa against the
previous round over every pool item still unlabelled, for: the learner's prediction, its embedding
probe alone, its spread labels, its HOG probe, and a plain logistic probe on the labelled
embeddings alone; plus test accuracy of the learner and the plain probe. Writes
bench/results/churn.json: records {"strategy", "seed", "labels", "part", "kappa", "test_accuracy"}
(test_accuracy null for the parts that have none of their own).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.common import write_results

PARTS = ("learner", "embedding_probe", "spread_labels", "hog_probe", "plain_probe")


def campaign(ds, artifact, Z, Zt, strategy: str, seed: int, budgets: list[int]) -> list[dict]:
    from sklearn.metrics import cohen_kappa_score

    from models_zoo import encoders, selection
    from models_zoo.simulate import check_strategies
    from models_zoo.transfer import Learner, LearnerConfig, LinearProbe

    check_strategies([strategy])
    cfg = LearnerConfig()
    Zs = encoders.learned_part(Z, artifact.config.input_view)
    labels = np.full(len(Z), -1)
    judge = np.zeros(len(Z), dtype=bool)
    probs, view, previous, out = None, None, {}, []
    for r, budget in enumerate(budgets):
        mask = labels >= 0
        kw = {"embeddings": Zs, "labelled_mask": mask, "batch_size": budget - int(mask.sum())}
        try:
            picked = selection.select(
                strategy,
                **kw,
                seed=seed * 1000 + r,
                probs=probs,
                labels=labels.copy(),
                n_classes=ds.n_classes,
            )
        except selection.NeedsModel:  # no model yet: a random first batch, as the simulator does
            picked = selection.select("random", **kw, seed=seed * 1000 + r)
        labels[picked.indices] = ds.y[picked.indices]
        judge[picked.indices] |= selection.samples_pool(picked.strategy)
        learner = Learner(artifact, cfg, seed=seed).fit(
            ds.X, labels, ds.n_classes, features=Z, judge=judge, view_before=view
        )
        view = learner.view_decision
        probs = learner.predict_proba(ds.X, features=Z)
        lab = labels >= 0
        plain = LinearProbe(C=cfg.C, seed=seed).fit(Z[lab], labels[lab])
        preds = {
            "learner": probs.argmax(1),
            "embedding_probe": learner.probe_.predict_proba(Z, ds.n_classes).argmax(1),
            "plain_probe": plain.predict_proba(Z, ds.n_classes).argmax(1),
        }
        if getattr(learner, "pool_proba_", None) is not None:
            preds["spread_labels"] = learner.pool_proba_.argmax(1)
        if learner.view_probe_ is not None:
            H = learner._second_view(ds.X, labels, cfg)
            preds["hog_probe"] = learner.view_probe_.predict_proba(H, ds.n_classes).argmax(1)
        test = {
            "learner": float((learner.predict(ds.X_test, features=Zt) == ds.y_test).mean()),
            "plain_probe": float((plain.predict_proba(Zt, ds.n_classes).argmax(1) == ds.y_test).mean()),
        }
        for part, p in preds.items():
            kappa = None
            if part in previous:
                kappa = round(float(cohen_kappa_score(previous[part][~lab], p[~lab])), 4)
            previous[part] = p
            out.append(
                {
                    "strategy": strategy,
                    "seed": seed,
                    "labels": budget,
                    "part": part,
                    "kappa": kappa,
                    "test_accuracy": test.get(part),
                }
            )
        print(
            f"{strategy} seed {seed} {budget} labels: learner {100 * test['learner']:.1f} %", file=sys.stderr
        )
    return out


def table(records: list[dict], shown: list[int]) -> str:
    lines = []
    for strategy in dict.fromkeys(r["strategy"] for r in records):
        lines.append(
            f"{strategy}: kappa with the previous round (mean over seeds) at " + " / ".join(map(str, shown))
        )
        for part in PARTS:
            cells = []
            for b in shown:
                ks = [
                    r["kappa"]
                    for r in records
                    if (r["strategy"], r["part"], r["labels"]) == (strategy, part, b)
                ]
                ks = [k for k in ks if k is not None]
                cells.append(f"{np.mean(ks):.3f}" if ks else "  -  ")
            lines.append(f"  {part:<16}" + "  ".join(cells))
    return "\n".join(lines)


def main() -> None:
    from models_zoo import datasets
    from models_zoo.simulate import cached_pretrain
    from models_zoo.train import PretrainConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--strategies", default="auto,random")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--top", type=int, default=2000, help="labels at the last round (rounds of 100 from 100)")
    p.add_argument("--pretrain-minutes", type=float, default=5.0)
    p.add_argument("--cache-dir", default=".cache/models_zoo")
    args = p.parse_args()
    if args.top < 200:
        p.error("--top: at least 200 (rounds of 100 labels from 100)")
    ds = datasets.load("fashion-mnist")
    artifact = cached_pretrain(ds.X, PretrainConfig(max_minutes=args.pretrain_minutes), args.cache_dir)
    Z, Zt = artifact.embed(ds.X), artifact.embed(ds.X_test)
    budgets = [10, 20, 50, *range(100, args.top + 1, 100)]
    records = []
    for strategy in args.strategies.split(","):
        for seed in range(args.seeds):
            records += campaign(ds, artifact, Z, Zt, strategy, seed, budgets)
    shown = sorted({b for b in (500, 1000, 1500, 2000, args.top) if b <= args.top})
    print(table(records, shown))
    print(f"wrote {write_results('churn', records)}")


if __name__ == "__main__":
    main()
