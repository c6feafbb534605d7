"""Names the API accepts for things that live in models_zoo, which the web process never imports.

A test checks these lists against models_zoo's registries, so they cannot drift apart.
"""

SSL_METHODS = ["byol", "simclr", "vicreg"]
STRATEGIES = [
    "auto",
    "badge",
    "bald",
    "balanced_margin",
    "coreset",
    "entropy",
    "least_confidence",
    "margin",
    "probcover",
    "random",
    "typiclust",
]
# Pretraining (and embedding an uploaded encoder) needs a pool of at least this many usable images.
MIN_PRETRAIN_POOL = 16
# Strategies that need a trained model's probabilities (a cold project falls back to `auto`).
NEEDS_MODEL = {"badge", "bald", "balanced_margin", "entropy", "least_confidence", "margin"}

# Job kinds that take minutes at most and that annotators wait on: their own Celery queue and worker
# (workers/celery.py), so one project's long pretraining or import never holds them.
QUICK_QUEUE = "quick"
QUICK_KINDS = ("cycle", "finetune", "predict", "select", "forecast")
