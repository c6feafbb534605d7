"""VICReg: Bardes, Ponce and LeCun, 2022, "VICReg: Variance-Invariance-Covariance
Regularization for Self-Supervised Learning" (arXiv:2105.04906). Non-contrastive: pull the
two views' expansions together (invariance), keep each dimension's std above 1 (variance)
and decorrelate dimensions (covariance); no negatives, no momentum encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models_zoo.ssl.base import SSLMethod, mlp, register


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    d = m.shape[0]
    return m.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()  # all entries but the diagonal


@register("vicreg")
class VICReg(SSLMethod):
    def __init__(
        self,
        encoder: nn.Module,
        proj_hidden: int = 1024,
        proj_dim: int = 1024,
        sim_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
    ) -> None:
        super().__init__(encoder)
        self.projector = mlp([encoder.out_dim, proj_hidden, proj_dim])
        self.sim_weight, self.var_weight, self.cov_weight = sim_weight, var_weight, cov_weight

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        n = view1.shape[0]
        z = self.projector(self.encoder(torch.cat([view1, view2])))  # (2N, p)
        z1, z2 = z[:n], z[n:]
        invariance = F.mse_loss(z1, z2)
        variance = z.new_zeros(())
        covariance = z.new_zeros(())
        for zi in (z1, z2):
            zi = zi - zi.mean(0)
            std = torch.sqrt(zi.var(0) + 1e-4)
            variance = variance + F.relu(1 - std).mean() / 2
            cov = zi.T @ zi / (n - 1)  # (p, p)
            covariance = covariance + _off_diagonal(cov).pow(2).sum() / zi.shape[1]
        return self.sim_weight * invariance + self.var_weight * variance + self.cov_weight * covariance
