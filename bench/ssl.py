"""Benchmark: self-supervised pretraining + transfer vs raw pixels on Fashion-MNIST.

    python -m bench.ssl            # (make bench-ssl) prints a table, writes bench/results/ssl.json

Pool: the first 20,000 Fashion-MNIST training images (labels hidden from pretraining);
test: the 10,000 test images. Random labels, 5 seeds per budget. Rows:

* ``pixels / probe``: logistic regression on standardised raw pixels (the issue's baseline);
* ``ssl / probe``: the same on the frozen SSL embedding (labelled images only);
* ``ssl / auto``: the service's learner (:class:`models_zoo.transfer.Learner`, the rule
  picks label spreading + probe or fine-tuning);
* ``--crossover``: propagate vs fine-tune at larger budgets, to place the rule's threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from models_zoo import datasets
from models_zoo.artifact import EncoderArtifact
from models_zoo.train import PretrainConfig, pretrain
from models_zoo.transfer import Learner, LearnerConfig, LinearProbe

OUT = Path(__file__).parent / "results" / "ssl.json"


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_start": list(os.getloadavg()),
    }


def random_labels(y: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """(N,) labels with ``budget`` random ones revealed, -1 elsewhere."""
    labels = np.full(len(y), -1, dtype=np.int64)
    idx = np.random.default_rng(seed).choice(len(y), size=min(budget, len(y)), replace=False)
    labels[idx] = y[idx]
    return labels


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ssl")
    p.add_argument("--minutes", type=float, default=5.0, help="pretraining budget")
    p.add_argument("--method", default=PretrainConfig().method)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--budgets", default="10,20,50,100,200,20000")
    p.add_argument(
        "--all-seeds", type=int, default=2, help="seeds for the all-labels column (fine-tuning is slow)"
    )
    p.add_argument(
        "--crossover", default="", help="budgets for propagate vs fine-tune, e.g. 500,1000,2000,5000"
    )
    p.add_argument("--crossover-seeds", type=int, default=1)
    p.add_argument("--pool-size", type=int, default=20000)
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--save-encoder", default="", help="also save the pretrained encoder artifact here")
    p.add_argument(
        "--encoder",
        default="",
        help="use this encoder artifact instead of pretraining (e.g. one --save-encoder wrote)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(2)

    ds = datasets.load_fashion_mnist(pool_size=args.pool_size)
    n = len(ds.X)
    budgets = [min(int(b), n) for b in args.budgets.split(",")]
    info = machine()
    records: list[dict] = []

    def record(features: str, learner: str, budget: int, seed: int, acc: float, seconds: float) -> None:
        records.append(
            {
                "features": features,
                "learner": learner,
                "strategy": "random",
                "budget": budget,
                "seed": seed,
                "accuracy": acc,
                "fit_seconds": round(seconds, 2),
            }
        )
        print(
            f"  {features:<12} {learner:<16} {budget:>6} seed {seed}: {100 * acc:.1f}%  ({seconds:.0f}s)",
            flush=True,
        )

    def seeds_for(budget: int) -> int:
        return args.all_seeds if budget >= n else args.seeds

    # Pixels: a linear probe on standardised raw pixels, labelled images only.
    P = ds.X.reshape(n, -1).astype(np.float32) / 255  # (N, 784)
    Pt = ds.X_test.reshape(len(ds.X_test), -1).astype(np.float32) / 255
    for b in budgets:
        for s in range(seeds_for(b)):
            lab = random_labels(ds.y, b, s)
            t0 = time.perf_counter()
            m = lab >= 0
            acc = float(
                (LinearProbe(seed=s).fit(P[m], lab[m]).predict_proba(Pt, 10).argmax(1) == ds.y_test).mean()
            )
            record("pixels", "probe", b, s, acc, time.perf_counter() - t0)

    # Self-supervised pretraining on the unlabelled pool.
    cfg = PretrainConfig(method=args.method, max_minutes=args.minutes, threads=2, progress_every=100)
    if args.encoder:
        art = EncoderArtifact.load(args.encoder)
        cfg.batch_size = art.metadata.get("config", {}).get("batch_size", cfg.batch_size)
    else:
        art = pretrain(
            ds.X,
            cfg,
            progress=lambda f, i: print(
                f"  pretrain {100 * f:5.1f}% loss {i['loss']:.3f} {i['images_per_s']:.0f} img/s", flush=True
            ),
        )
    if args.save_encoder:
        art.save(args.save_encoder)
    meta = art.metadata
    pre = {k: meta[k] for k in ("method", "seconds", "steps", "images_per_s")}
    pre["batch_size"] = cfg.batch_size
    print(f"pretrain: {pre}", flush=True)
    feat = f"ssl:{meta['method']}"
    Z, Zt = art.embed(ds.X), art.embed(ds.X_test)

    for b in budgets:
        for s in range(seeds_for(b)):
            lab = random_labels(ds.y, b, s)
            m = lab >= 0
            if b < n:  # with every label the probe row adds nothing over "auto"
                t0 = time.perf_counter()
                acc = float(
                    (
                        LinearProbe(seed=s).fit(Z[m], lab[m]).predict_proba(Zt, 10).argmax(1) == ds.y_test
                    ).mean()
                )
                record(feat, "probe", b, s, acc, time.perf_counter() - t0)
            t0 = time.perf_counter()
            learner = Learner(art, LearnerConfig(), seed=s).fit(ds.X, lab, 10, features=Z)
            acc = float((learner.predict(ds.X_test, features=Zt) == ds.y_test).mean())
            mode = learner.mode_ + ("+hog" if getattr(learner, "view_weight_", 0) else "")
            record(feat, f"auto:{mode}", b, s, acc, time.perf_counter() - t0)

    for b in [int(v) for v in args.crossover.split(",") if v]:
        for s in range(args.crossover_seeds):
            lab = random_labels(ds.y, b, s)
            for mode in ("propagate", "finetune"):
                t0 = time.perf_counter()
                learner = Learner(art, LearnerConfig(mode=mode), seed=s).fit(ds.X, lab, 10, features=Z)
                acc = float((learner.predict(ds.X_test, features=Zt) == ds.y_test).mean())
                record(feat, f"crossover:{mode}", b, s, acc, time.perf_counter() - t0)

    info["load_average_end"] = list(os.getloadavg())
    result = {"machine": info, "pretrain": pre, "records": records}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print_table(result)
    return 0


def print_table(result: dict) -> None:
    rows: dict[tuple[str, str], dict[int, list[float]]] = {}
    for r in result["records"]:
        learner = r["learner"].split(":")[0] if r["learner"].startswith("auto") else r["learner"]
        rows.setdefault((r["features"], learner), {}).setdefault(r["budget"], []).append(r["accuracy"])
    budgets = sorted({b for v in rows.values() for b in v})
    print(f"\npretrain: {result['pretrain']}")
    print(f"{'features':<12} {'learner':<20}" + "".join(f"{b:>13}" for b in budgets))
    for (feat, learner), per in rows.items():
        cells = [
            f"{100 * np.mean(per[b]):>6.1f} ± {100 * np.std(per[b]):<4.1f}" if b in per else " " * 13
            for b in budgets
        ]
        print(f"{feat:<12} {learner:<20}" + "".join(cells))


if __name__ == "__main__":
    raise SystemExit(main())
