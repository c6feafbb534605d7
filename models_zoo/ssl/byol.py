"""BYOL: Grill et al., 2020, "Bootstrap Your Own Latent" (arXiv:2006.07733).
Non-contrastive: an online network with a predictor regresses the projection of the other
view made by a target network, the target being an exponential moving average of the
online one (updated in ``on_step_end``)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from models_zoo.ssl.base import SSLMethod, mlp, register


@register("byol")
class BYOL(SSLMethod):
    def __init__(
        self, encoder: nn.Module, proj_hidden: int = 512, proj_dim: int = 128, momentum: float = 0.99
    ) -> None:
        super().__init__(encoder)
        self.projector = mlp([encoder.out_dim, proj_hidden, proj_dim])
        self.predictor = mlp([proj_dim, proj_hidden, proj_dim])
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.momentum = momentum

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        n = view1.shape[0]
        views = torch.cat([view1, view2])  # (2N, C, S, S)
        p = F.normalize(self.predictor(self.projector(self.encoder(views))), dim=1)  # (2N, q)
        with torch.no_grad():
            t = F.normalize(self.target_projector(self.target_encoder(views)), dim=1)  # (2N, q)
        t = torch.cat([t[n:], t[:n]])  # each view predicts the other view's target
        return (2 - 2 * (p * t).sum(1)).mean()

    @torch.no_grad()
    def on_step_end(self) -> None:
        for online, target in ((self.encoder, self.target_encoder), (self.projector, self.target_projector)):
            for po, pt in zip(online.parameters(), target.parameters(), strict=True):
                pt.mul_(self.momentum).add_(po.detach(), alpha=1 - self.momentum)
            for bo, bt in zip(online.buffers(), target.buffers(), strict=True):
                bt.copy_(bo)
