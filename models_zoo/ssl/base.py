"""The self-supervised method contract and registry.

A method is an ``nn.Module`` built as ``Method(encoder, **options)``: it owns the encoder
plus its own heads, and ``forward(view1, view2)`` returns the scalar loss for a batch of
two augmented views (N, C, S, S) each. ``on_step_end()`` runs after every optimiser step
(momentum encoders use it). The trainer knows nothing else about a method.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class SSLMethod(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def on_step_end(self) -> None:
        """Hook after each optimiser step; a no-op unless the method needs one."""


_REGISTRY: dict[str, type[SSLMethod]] = {}


def register(name: str) -> Callable[[type[SSLMethod]], type[SSLMethod]]:
    def deco(cls: type[SSLMethod]) -> type[SSLMethod]:
        if name in _REGISTRY:
            raise ValueError(f"SSL method {name!r} registered twice")
        _REGISTRY[name] = cls
        return cls

    return deco


def get(name: str) -> type[SSLMethod]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown SSL method {name!r}; known: {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def build(name: str, encoder: nn.Module, **options) -> SSLMethod:
    return get(name)(encoder, **options)


def mlp(dims: list[int], last_bn: bool = False) -> nn.Sequential:
    """Linear-BN-ReLU layers between ``dims``; the last layer is linear (optionally BN)."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 2):
        layers += [
            nn.Linear(dims[i], dims[i + 1], bias=False),
            nn.BatchNorm1d(dims[i + 1]),
            nn.ReLU(inplace=True),
        ]
    layers.append(nn.Linear(dims[-2], dims[-1], bias=not last_bn))
    if last_bn:
        layers.append(nn.BatchNorm1d(dims[-1], affine=False))
    return nn.Sequential(*layers)
