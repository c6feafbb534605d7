"""Self-supervised pretraining methods, one file per paper, one registry.

Importing this package registers every built-in method (``simclr``, ``vicreg``, ``byol``).
"""

from models_zoo.ssl import byol as _byol  # noqa: F401  (registers "byol")
from models_zoo.ssl import simclr as _simclr  # noqa: F401  (registers "simclr")
from models_zoo.ssl import vicreg as _vicreg  # noqa: F401  (registers "vicreg")
from models_zoo.ssl.base import SSLMethod, build, get, names, register

__all__ = ["SSLMethod", "build", "get", "names", "register"]
