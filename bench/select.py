"""Speed benchmark of the selection strategies, side by side with scikit-activeml and modAL.

    python -m bench.select                      # N = 50k, 200k, 1M; B = 100, 1000
    python -m bench.select --sizes 50000 --impls ours

Every measurement runs in its own subprocess (``--worker``), so its peak memory is its
own: ``peak_mb`` is that process's ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which
includes the interpreter, the imported libraries and the input arrays (``input_mb``);
``seconds`` is the wall time of the selection call alone. Peers run in ``.venv-bench``
(created on first use from ``bench/requirements-peers.txt``), under a wall-clock timeout
and an address-space cap; a run that does not finish gets ``"seconds": null`` and a note.

The pool: a mixture of 64 Gaussian clusters in a 16-dimensional latent space, mapped
linearly to d = 128 plus isotropic noise (low intrinsic dimension, like real embeddings);
probabilities are a fixed softmax of a random linear map of the embeddings (C = 10);
MC samples (BALD) are 10 noisy copies of it; 1,000 random items are labelled.
Results go to ``bench/results/select.json``.
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
def run_ours(strategy: str, n: int, batch: int) -> dict:
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
    t = time.perf_counter()
    sel = select(strategy, batch_size=batch, seed=0, **kw)
    seconds = time.perf_counter() - t
    assert len(np.unique(sel.indices)) == batch and not pool["labelled_mask"][sel.indices].any()
    return {"seconds": seconds, "peak_mb": rss_mb(), "input_mb": input_mb}


def run_skactiveml(strategy: str, n: int, batch: int) -> dict:
    from skactiveml import pool as skpool
    from skactiveml.base import SkactivemlClassifier

    class FixedModel(SkactivemlClassifier):
        """The same fixed model as ours gets: probs = softmax(x @ w); embeddings = x."""

        def __init__(self, w=None, classes=None, missing_label=np.nan, random_state=None):
            super().__init__(classes=classes, missing_label=missing_label, random_state=random_state)
            self.w = w

        def fit(self, X, y, sample_weight=None):
            self._validate_data(X, y)
            return self

        def predict_proba(self, X, return_embeddings=False):
            p = softmax(np.asarray(X, np.float32) @ self.w)
            return (p, X) if return_embeddings else p

    pool = make_pool(n)
    x = pool["embeddings"]
    y = np.where(pool["labelled_mask"], pool["labels"], np.nan)  # missing label: nan
    clf = FixedModel(w=pool["w"], classes=np.arange(C)).fit(x, y)
    input_mb = (x.nbytes + y.nbytes) / 2**20
    name = PEERS["scikit-activeml"][strategy]
    t = time.perf_counter()
    if name.startswith("UncertaintySampling"):
        method = name[name.index("(") + 1 : -1]
        idx = skpool.UncertaintySampling(method=method, random_state=0).query(
            x, y, clf, fit_clf=False, batch_size=batch
        )
    elif name == "Badge":
        idx = skpool.Badge(clf_embedding_flag_name="return_embeddings", random_state=0).query(
            x, y, clf, fit_clf=False, batch_size=batch
        )
    elif name == "ProbCover":
        idx = skpool.ProbCover(n_classes=C, random_state=0).query(x, y, batch_size=batch)
    else:
        idx = getattr(skpool, name)(random_state=0).query(x, y, batch_size=batch)
    seconds = time.perf_counter() - t
    assert len(np.unique(idx)) == batch
    return {"seconds": seconds, "peak_mb": rss_mb(), "input_mb": input_mb}


def run_modal(strategy: str, n: int, batch: int) -> dict:
    from modAL import uncertainty

    class FixedModel:
        """modAL only calls predict_proba on the pool it is given: the unlabelled items."""

        def __init__(self, w):
            self.w = w

        def predict_proba(self, X):
            return softmax(np.asarray(X, np.float32) @ self.w)

    pool = make_pool(n)
    x_pool = pool["embeddings"][~pool["labelled_mask"]]  # modAL takes the unlabelled pool
    input_mb = (pool["embeddings"].nbytes + x_pool.nbytes) / 2**20
    fn = getattr(uncertainty, PEERS["modal"][strategy])
    t = time.perf_counter()
    idx = fn(FixedModel(pool["w"]), x_pool, n_instances=batch)
    idx = idx[0] if isinstance(idx, tuple) else idx  # modAL 0.4 returns (indices, values)
    seconds = time.perf_counter() - t
    assert len(np.unique(idx)) == batch
    return {"seconds": seconds, "peak_mb": rss_mb(), "input_mb": input_mb}


WORKERS = {"ours": run_ours, "scikit-activeml": run_skactiveml, "modal": run_modal}


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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    if args.worker:
        impl, strategy, n, b = args.worker
        print(json.dumps(WORKERS[impl](strategy, int(n), int(b))), flush=True)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    strategies = args.strategies.split(",")
    impls = args.impls.split(",")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Keep records of other sizes from an earlier run, so --sizes can fill in a subset.
    old = json.loads(out.read_text())["records"] if out.exists() else []
    keep = [r for r in old if r["n"] not in sizes or r["impl"] not in impls]
    records: list[dict] = []
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
