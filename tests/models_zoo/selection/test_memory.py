"""Memory stays bounded on a large pool: N = 200,000, d = 128, never an N x N matrix.

Each strategy runs in a fresh subprocess; we compare its peak RSS (ru_maxrss) with the RSS
just before the call. An N x N float32 matrix would be 160 GB; the ceiling is 700 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CEILING_MB = 700

SCRIPT = r"""
import json, sys
import numpy as np
from models_zoo.selection import select

def status_mb(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key)) / 1024

n, d, c = 200_000, 128, 10
rng = np.random.default_rng(0)
x = np.empty((n, d), np.float32)
centres = rng.standard_normal((50, d)).astype(np.float32) * 2
for s in range(0, n, 50_000):
    x[s:s + 50_000] = centres[rng.integers(0, 50, 50_000)] + rng.standard_normal((50_000, d), dtype=np.float32)
logits = x[:, :c].copy()
probs = np.exp(logits - logits.max(1, keepdims=True)); probs /= probs.sum(1, keepdims=True)
labelled = np.zeros(n, bool); labelled[rng.choice(n, 500, replace=False)] = True
select("random", embeddings=x[:10], labelled_mask=labelled[:10], batch_size=1)  # imports done
# Reset the high-water mark, so the peak is the selection's, not the input generation's.
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status_mb("VmRSS")
sel = select(sys.argv[1], embeddings=x, labelled_mask=labelled, probs=probs.astype(np.float32),
             batch_size=100, seed=0, n_classes=c)
peak = status_mb("VmHWM")
print(json.dumps({"before_mb": before, "peak_mb": peak, "picked": len(set(sel.indices.tolist()))}))
"""


def _growth(strategy: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, strategy],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "strategy",
    [
        "margin",
        "coreset",
        pytest.param("badge", marks=pytest.mark.slow),
        pytest.param("typiclust", marks=pytest.mark.slow),
        pytest.param("probcover", marks=pytest.mark.slow),
    ],
)
def test_peak_memory_growth_is_bounded_at_200k(strategy):
    r = _growth(strategy)
    assert r["picked"] == 100
    assert r["peak_mb"] - r["before_mb"] < CEILING_MB, r
