"""Offline labelling-campaign simulator with oracle labels (a user feature and our yardstick).

    python -m models_zoo.simulate --data fashion-mnist --strategies random,balanced \\
        --budgets 10,20,50,100,200,500 --seeds 5 --pretrain-minutes 5 \\
        --out results.json --plot curve.png

Pretrains once on the pool (cached by data hash and config under ``--cache-dir``; an
interrupted pretraining resumes from its checkpoint), then for every strategy and seed runs
a campaign: budgets in increasing order, each round selecting the missing labels with the
strategy (given the previous round's probabilities and MC samples), fitting a
:class:`~models_zoo.transfer.Learner` and scoring it on the test split.

Strategies: every name in :mod:`models_zoo.selection`'s registry, plus ``balanced``
(class-balanced random; it peeks at the oracle labels, so it is an oracle baseline, not a
strategy a user can run). ``--features pixels`` is the no-learning baseline: a linear probe
on raw pixels, labelled images only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models_zoo import datasets, encoders, forecast, selection
from models_zoo.artifact import EncoderArtifact, data_hash
from models_zoo.train import PretrainConfig, pretrain
from models_zoo.transfer import Learner, LearnerConfig

ORACLE_STRATEGIES = ("balanced",)


@dataclass
class SimulationConfig:
    """data:        ``fashion-mnist``, ``digits``, a ``.npz`` path or an image folder.
    strategies:  selection strategy names (registry names or ``balanced``).
    budgets:     label counts, visited in increasing order; values above the pool size mean all.
    seeds:       campaigns per strategy (seed 0..seeds-1).
    features:    ``ssl`` (pretrained encoder + learner) or ``pixels`` (probe on raw pixels).
    pool_size:   truncate the pool (None: the loader's default; 20,000 for Fashion-MNIST).
    stop_set:    when > 0, pool items (drawn once per seed) on which each round's predictions are
                 kept, and every campaign also reports the stabilising-predictions stop rule
                 (:func:`~models_zoo.forecast.stop_rule_state`, each kappa over the items not yet
                 labelled): where it fires against where test accuracy levelled off.
    """

    data: str = "digits"
    strategies: list[str] = field(default_factory=lambda: ["random"])
    budgets: list[int] = field(default_factory=lambda: [10, 20, 50, 100, 200, 500])
    seeds: int = 5
    features: str = "ssl"
    pool_size: int | None = None
    stop_set: int = 0
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    cache_dir: str = ".cache/models_zoo"


# ----------------------------------------------------------------------------- strategies


def balanced_selection(y: np.ndarray, labelled_mask: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
    """Class-balanced random picks: each pick tops up the class with the fewest labels
    (ties broken at random), drawing a random unlabelled item of that class. Oracle: reads y."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    counts = {c: int(((y == c) & labelled_mask).sum()) for c in classes}
    free = {c: list(rng.permutation(np.flatnonzero((y == c) & ~labelled_mask))) for c in classes}
    chosen: list[int] = []
    while len(chosen) < batch_size:
        open_classes = [c for c in classes if free[c]]
        if not open_classes:
            break
        low = min(counts[c] for c in open_classes)
        c = rng.choice([c for c in open_classes if counts[c] == low])
        chosen.append(int(free[c].pop()))
        counts[c] += 1
    return np.array(chosen, dtype=np.int64)


def resolve(name: str) -> selection.base.Strategy | None:
    """The strategy function for ``name``: a registry name or an ``auto@K[:WARM]`` variant
    (:func:`models_zoo.selection.auto.variant`); None for the oracle ``balanced``."""
    return None if name in ORACLE_STRATEGIES else selection.resolve(name)


def check_strategies(names: list[str]) -> None:
    known = set(selection.names()) | set(ORACLE_STRATEGIES)
    unknown = [n for n in names if n not in known and not n.startswith("auto@")]
    if unknown:
        raise ValueError(
            f"unknown strategies {unknown}; known: {', '.join(sorted(known))}, and auto@K[:WARM] "
            "(auto switching at K labels per class)"
        )
    for n in names:
        if n.startswith("auto@"):
            selection.resolve(n)  # raises ValueError with the accepted form


# ----------------------------------------------------------------------------- pretraining cache


def cached_pretrain(
    X: np.ndarray, cfg: PretrainConfig, cache_dir: str | Path, progress: Callable | None = None
) -> EncoderArtifact:
    """Pretrain on X once per (data hash, config); later calls load the artifact."""
    key = hashlib.sha256(json.dumps([data_hash(X), cfg.to_dict()], sort_keys=True, default=str).encode())
    key_hex = key.hexdigest()[:16]
    cache = Path(cache_dir)
    path = cache / f"encoder-{key_hex}.pt"
    if path.exists():
        return EncoderArtifact.load(path)
    artifact = pretrain(X, cfg, checkpoint_path=cache / f"checkpoint-{key_hex}.pt", progress=progress)
    artifact.save(path)
    (cache / f"checkpoint-{key_hex}.pt").unlink(missing_ok=True)
    return artifact


# ----------------------------------------------------------------------------- the campaign


def normalised_auc(budgets: list[int], accuracies: list[float]) -> float:
    """Area under accuracy vs log(budget), divided by the log-budget range: in [0, 1], the
    mean accuracy with every doubling of the budget weighted alike."""
    if len(budgets) < 2:
        return float(accuracies[0]) if accuracies else float("nan")
    x = np.log(np.asarray(budgets, dtype=float))
    y = np.asarray(accuracies, dtype=float)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


def run(cfg: SimulationConfig, log: Callable[[str], None] | None = None) -> dict:
    """Run every campaign; returns ``{"pretrain": {...}, "records": [...], "summary": {...}}``, plus
    ``"stop_rule": [...]`` (one entry per campaign, see :func:`stop_rule_report`) when
    ``cfg.stop_set`` > 0."""
    from tqdm import tqdm

    check_strategies(cfg.strategies)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    ds = datasets.load(cfg.data, pool_size=cfg.pool_size)
    n_pool, n_classes = len(ds.X), ds.n_classes
    budgets = sorted({min(b, n_pool) for b in cfg.budgets})
    log(f"{ds.name}: pool {n_pool} images {ds.X.shape[1:]}, test {len(ds.X_test)}, {n_classes} classes")

    artifact: EncoderArtifact | None = None
    if cfg.features == "pixels":
        feature_name = "pixels"
        Z = ds.X.reshape(n_pool, -1).astype(np.float32) / 255  # (N, H*W*C)
        Zt = ds.X_test.reshape(len(ds.X_test), -1).astype(np.float32) / 255
        learner_cfg = LearnerConfig(**{**cfg.learner.__dict__, "mode": "probe"})
        pretrain_info = {"method": "none", "seconds": 0.0, "steps": 0, "images_per_s": 0.0}
    elif cfg.features == "ssl":
        feature_name = f"ssl:{cfg.pretrain.method}"
        bar = tqdm(total=100, desc=f"pretrain {cfg.pretrain.method}", unit="%", file=sys.stderr)

        def show(fraction: float, info: dict) -> None:
            bar.n = int(100 * fraction)
            bar.set_postfix(
                loss=f"{info.get('loss', float('nan')):.3f}", img_s=f"{info.get('images_per_s', 0):.0f}"
            )

        artifact = cached_pretrain(ds.X, cfg.pretrain, cfg.cache_dir, progress=show)
        bar.close()
        meta = artifact.metadata
        pretrain_info = {k: meta[k] for k in ("method", "seconds", "steps", "images_per_s")}
        Z, Zt = artifact.embed(ds.X), artifact.embed(ds.X_test)
        learner_cfg = cfg.learner
    else:
        raise ValueError(f"--features must be ssl or pixels, not {cfg.features!r}")

    # Strategies see the encoder's learned part of the embedding (see encoders.learned_part).
    Z_select = encoders.learned_part(Z, artifact.config.input_view) if artifact is not None else Z
    records, stop_rules = [], []
    # The learner is a function of (seed, labels): a campaign whose labelled set equals an earlier
    # campaign's at the same seed (auto and its variants share TypiClust's rounds up to their switch)
    # reuses that fit instead of repeating it.
    fits: dict[tuple[int, bytes], tuple] = {}
    bar = tqdm(total=len(cfg.strategies) * cfg.seeds * len(budgets), desc="campaigns", file=sys.stderr)
    for seed in range(cfg.seeds):
        fits.clear()  # shared fits are of one seed: hold one seed's at a time
        stop_idx = None
        if cfg.stop_set > 0:
            stop_idx = np.sort(
                np.random.default_rng([seed, 99]).choice(n_pool, min(cfg.stop_set, n_pool), replace=False)
            )
        for strategy in cfg.strategies:
            fn = resolve(strategy)
            labels = np.full(n_pool, -1, dtype=np.int64)
            judge = np.zeros(n_pool, dtype=bool)
            probs = mc_probs = view = None
            accs: list[float] = []
            stop_preds: list[np.ndarray] = []
            stop_done: list[np.ndarray] = []
            for round_, budget in enumerate(budgets):
                mask = labels >= 0
                need = budget - int(mask.sum())
                if need > 0:
                    round_seed = seed * 1000 + round_
                    if fn is None:
                        picked, pool_sample = balanced_selection(ds.y, mask, need, round_seed), True
                    else:
                        try:
                            sel = selection.select(
                                fn,
                                embeddings=Z_select,
                                labelled_mask=mask,
                                batch_size=need,
                                seed=round_seed,
                                probs=probs,
                                mc_probs=mc_probs,
                                labels=labels.copy(),
                                n_classes=n_classes,
                            )
                        except selection.NeedsModel:
                            # A strategy that needs a model starts from a random first batch.
                            sel = selection.select(
                                "random",
                                embeddings=Z_select,
                                labelled_mask=mask,
                                batch_size=need,
                                seed=round_seed,
                            )
                        picked, pool_sample = sel.indices, sel.samples_pool
                    judge[picked] = pool_sample  # as the service does: labels that sample the pool
                    labels[picked] = ds.y[picked]  # the oracle answers
                last = round_ + 1 == len(budgets)
                # A previous "no" and no previous decision give the same fit (only a "yes" is kept).
                key = (seed, bool(view), hashlib.sha256(labels.tobytes() + judge.tobytes()).digest())
                if key in fits and (last or fits[key][3] is not None):
                    acc, mode, fit_seconds, probs, mc_probs, stop_pred, view = fits[key]
                else:
                    t0 = time.perf_counter()
                    learner = Learner(artifact if cfg.features == "ssl" else None, learner_cfg, seed=seed)
                    learner.fit(
                        ds.X if artifact is not None else Z,
                        labels,
                        n_classes,
                        features=Z,
                        judge=judge,
                        view_before=view,
                    )
                    view = learner.view_decision
                    pred = learner.predict(ds.X_test if artifact is not None else Zt, features=Zt)
                    acc = float((pred == ds.y_test).mean())
                    mode, fit_seconds = learner.mode_, round(time.perf_counter() - t0, 2)
                    probs = mc_probs = stop_pred = None
                    X_in = ds.X if artifact is not None else Z
                    if not last:  # the next round's strategy may use them
                        probs = learner.predict_proba(X_in, features=Z)
                        mc_probs = learner.mc_proba(X_in, features=Z)
                    if stop_idx is not None:
                        stop_pred = learner.predict(X_in[stop_idx], features=Z[stop_idx])
                    fits[key] = (acc, mode, fit_seconds, probs, mc_probs, stop_pred, view)
                accs.append(acc)
                if stop_idx is not None:
                    stop_preds.append(stop_pred)
                    stop_done.append(labels[stop_idx] >= 0)
                records.append(
                    {
                        "features": feature_name,
                        "strategy": strategy,
                        "budget": int((labels >= 0).sum()),
                        "seed": seed,
                        "accuracy": acc,
                        "learner": mode,
                        "view": view,
                        "fit_seconds": fit_seconds,
                    }
                )
                bar.update(1)
                bar.set_postfix(strategy=strategy, seed=seed, budget=budget, acc=f"{acc:.3f}")
            if stop_idx is not None:
                done_budgets = [r["budget"] for r in records[-len(budgets) :]]
                stop_rules.append(
                    {"strategy": strategy, "seed": seed, "stop_set": int(stop_idx.size)}
                    | stop_rule_report(done_budgets, accs, stop_preds, stop_done)
                )
    bar.close()
    result = {"pretrain": pretrain_info, "records": records, "summary": summarise(records)}
    if cfg.stop_set > 0:
        result["stop_rule"] = stop_rules
    return result


def stop_rule_report(
    budgets: list[int], accuracies: list[float], predictions: list[np.ndarray], labelled: list[np.ndarray]
) -> dict:
    """One campaign's stop rule, judged against its test accuracy: the kappas (round r against
    r - 1, over the stop-set items not labelled at r), the labels at which the rule fires (None:
    not within the campaign), the plateau (:func:`~models_zoo.forecast.plateau_round`, one point)
    and how many rounds after it the rule fired (negative: before)."""
    state = forecast.stop_rule_state(predictions, labelled_per_round=labelled)
    plateau = forecast.plateau_round(accuracies)
    fired = state["fired_at_round"]
    return {
        "budgets": budgets,
        "accuracy": accuracies,
        "kappas": state["kappas"],
        "fired_labels": None if fired is None else budgets[fired],
        "plateau_labels": budgets[plateau],
        "rounds_after_plateau": None if fired is None else fired - plateau,
        "accuracy_when_fired": None if fired is None else accuracies[fired],
        "accuracy_at_plateau": accuracies[plateau],
    }


def format_stop_rule(reports: list[dict]) -> str:
    """One line per campaign: where the stop rule fired against the plateau."""
    lines = []
    for r in reports:
        fired = (
            "not by the last round"
            if r["fired_labels"] is None
            else (
                f"at {r['fired_labels']} labels ({100 * r['accuracy_when_fired']:.1f} %), "
                f"{r['rounds_after_plateau']:+d} rounds from the plateau"
            )
        )
        lines.append(
            f"{r['strategy']:<14} seed {r['seed']}: plateau {r['plateau_labels']} labels "
            f"({100 * r['accuracy_at_plateau']:.1f} %, last {100 * r['accuracy'][-1]:.1f} %); stop rule {fired}"
        )
    return "\n".join(lines)


def summarise(records: list[dict]) -> dict:
    """Per strategy: mean and std accuracy per budget and the normalised AUC."""
    out: dict = {}
    for strategy in sorted({r["strategy"] for r in records}):
        rows = [r for r in records if r["strategy"] == strategy]
        budgets = sorted({r["budget"] for r in rows})
        per = {}
        for b in budgets:
            acc = np.array([r["accuracy"] for r in rows if r["budget"] == b])
            per[str(b)] = {"mean": float(acc.mean()), "std": float(acc.std()), "n": int(acc.size)}
        auc = normalised_auc(budgets, [per[str(b)]["mean"] for b in budgets])
        out[strategy] = {"budgets": per, "nauc": auc}
    return out


def format_table(summary: dict, features: str = "") -> str:
    budgets = sorted({int(b) for s in summary.values() for b in s["budgets"]})
    head = f"{'strategy':<14}" + "".join(f"{b:>14}" for b in budgets) + f"{'nAUC':>8}"
    lines = [f"features: {features}" if features else "", head, "-" * len(head)]
    for name, s in summary.items():
        cells = []
        for b in budgets:
            c = s["budgets"].get(str(b))
            cells.append(f"{100 * c['mean']:>7.1f} ± {100 * c['std']:<4.1f}" if c else f"{'':>14}")
        lines.append(f"{name:<14}" + "".join(cells) + f"{100 * s['nauc']:>8.1f}")
    return "\n".join(line for line in lines if line)


def plot(summary: dict, path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6, 4))
    ticks: set[int] = set()
    for name, s in summary.items():
        b = sorted(int(k) for k in s["budgets"])
        m = np.array([s["budgets"][str(k)]["mean"] for k in b])
        sd = np.array([s["budgets"][str(k)]["std"] for k in b])
        ax.plot(b, 100 * m, marker="o", label=f"{name} (nAUC {100 * s['nauc']:.1f})")
        ax.fill_between(b, 100 * (m - sd), 100 * (m + sd), alpha=0.2)
        ticks.update(b)
    ax.set_xscale("log")
    # The budgets themselves as plain numbers (10, 20, 50, ...), not powers of ten; many budgets
    # (a stop-rule campaign's rounds) get the 1-2-5 values among them only, to stay readable.
    if len(ticks) > 10:
        ticks = {t for t in ticks if str(t).strip("0") in ("1", "2", "5")} or ticks
    ax.set_xticks(sorted(ticks), [str(t) for t in sorted(ticks)])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m models_zoo.simulate",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="fashion-mnist, digits, PATH.npz or an image folder")
    p.add_argument(
        "--strategies",
        default="random",
        help="comma-separated; registry names, 'balanced' (the class-balanced oracle) or auto@K[:WARM] "
        "(auto switching at K labels per class, to WARM)",
    )
    p.add_argument("--budgets", default="10,20,50,100,200,500", help="comma-separated label counts")
    p.add_argument("--seeds", type=int, default=5, help="campaigns per strategy and budget")
    p.add_argument(
        "--features",
        choices=["ssl", "pixels"],
        default="ssl",
        help="pretrained embedding, or raw pixels (no learning)",
    )
    p.add_argument("--method", default="simclr", help="SSL method (see models_zoo.ssl.names())")
    p.add_argument("--pretrain-minutes", type=float, default=5.0, help="pretraining time budget")
    p.add_argument("--pretrain-steps", type=int, default=None, help="step budget (overrides minutes)")
    p.add_argument("--pool-size", type=int, default=None, help="use this many pool images (default: all)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--stop-set",
        type=int,
        default=0,
        help="also report the stop rule (kappa between successive rounds on this many pool items) "
        "against where test accuracy levelled off; give budgets in even rounds, e.g. every 100 labels",
    )
    p.add_argument("--cache-dir", default=".cache/models_zoo", help="pretrained encoders, by data and config")
    p.add_argument("--out", default=None, help="write results JSON here")
    p.add_argument("--plot", default=None, help="write a PNG learning curve here")
    p.add_argument(
        "--consistency-steps",
        type=int,
        default=None,
        help="consistency-training steps per fit below the fine-tune threshold (default: the learner's, "
        "10,000 where CUDA is present, 0 on a CPU)",
    )
    args = p.parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    try:
        check_strategies(strategies)
    except ValueError as e:
        p.error(str(e))
    try:
        budgets = [int(b) for b in args.budgets.split(",") if b]
    except ValueError:
        p.error(f"--budgets {args.budgets!r}: give whole label counts, comma-separated")
    if not strategies or not budgets or min(budgets) < 1:
        p.error("--strategies and --budgets need at least one entry; budgets are label counts >= 1")
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    if args.stop_set < 0:
        p.error("--stop-set must be >= 0 (0: no stop rule)")
    if args.consistency_steps is not None and args.consistency_steps < 0:
        p.error("--consistency-steps must be >= 0")
    from models_zoo import ssl

    if args.features == "ssl" and args.method not in ssl.names():
        p.error(f"unknown SSL method {args.method!r}; known: {', '.join(ssl.names())}")
    if args.data not in ("fashion-mnist", "digits") and not Path(args.data).exists():
        p.error(f"--data {args.data!r}: no such file or folder (or use fashion-mnist, digits)")

    pre = PretrainConfig(
        method=args.method,
        max_minutes=None if args.pretrain_steps else args.pretrain_minutes,
        max_steps=args.pretrain_steps,
        threads=args.threads,
    )
    cfg = SimulationConfig(
        data=args.data,
        strategies=strategies,
        budgets=budgets,
        seeds=args.seeds,
        features=args.features,
        pool_size=args.pool_size,
        stop_set=args.stop_set,
        pretrain=pre,
        cache_dir=args.cache_dir,
        learner=LearnerConfig(consistency_steps=args.consistency_steps),
    )
    result = run(cfg)
    features = result["records"][0]["features"] if result["records"] else ""
    print(f"pretrain: {result['pretrain']}")
    print(format_table(result["summary"], features))
    if "stop_rule" in result:
        print(format_stop_rule(result["stop_rule"]))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    if args.plot:
        plot(result["summary"], args.plot, title=f"{args.data} ({features})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
