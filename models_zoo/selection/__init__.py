"""Active-learning selection strategies: pure functions of arrays, one registry.

Importing this package registers every built-in strategy. Use :func:`select` to run one
by name, :func:`names` to list them. One module per family:

- ``random``: the baseline;
- ``uncertainty``: least_confidence, margin, entropy, bald;
- ``balanced``: balanced_margin (margin within predicted classes);
- ``coreset``: greedy k-center;
- ``badge``: k-means++ on factorised gradient embeddings;
- ``typiclust``: densest point of each large uncovered cluster;
- ``probcover``: greedy delta-ball coverage on a sparse kNN graph;
- ``auto``: TypiClust at cold start, balanced margin from 20 labels per class.
"""

from models_zoo.selection import auto as _auto  # noqa: F401
from models_zoo.selection import badge as _badge  # noqa: F401
from models_zoo.selection import balanced as _balanced  # noqa: F401
from models_zoo.selection import coreset as _coreset  # noqa: F401
from models_zoo.selection import probcover as _probcover  # noqa: F401
from models_zoo.selection import random as _random  # noqa: F401
from models_zoo.selection import typiclust as _typiclust  # noqa: F401
from models_zoo.selection import uncertainty as _uncertainty  # noqa: F401
from models_zoo.selection.base import (
    NeedsModel,
    Selection,
    SelectionInput,
    get,
    names,
    register,
    samples_pool,
    select,
)


def resolve(name: str):
    """The strategy function for a registry name or an ``auto@K[:WARM]`` variant
    (:func:`models_zoo.selection.auto.variant`); KeyError / ValueError say what is known."""
    return _auto.variant(name) if name.startswith("auto@") else get(name)


__all__ = [
    "NeedsModel",
    "Selection",
    "SelectionInput",
    "get",
    "names",
    "register",
    "resolve",
    "samples_pool",
    "select",
]
