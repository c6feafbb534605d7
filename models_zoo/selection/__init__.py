"""Active-learning selection strategies: pure functions of arrays, one registry.

Importing this package registers every built-in strategy. Use :func:`select` to run one
by name, :func:`names` to list them.
"""

from models_zoo.selection import random as _random  # noqa: F401  (registers "random")
from models_zoo.selection.base import Selection, SelectionInput, get, names, register, select

__all__ = ["Selection", "SelectionInput", "get", "names", "register", "select"]
