"""SimCLR: Chen et al., 2020, "A Simple Framework for Contrastive Learning of Visual
Representations" (arXiv:2002.05709). Two views per image, a projection MLP and the
NT-Xent loss: each view must pick its partner out of the 2N-1 other views in the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models_zoo.ssl.base import SSLMethod, mlp, register


@register("simclr")
class SimCLR(SSLMethod):
    def __init__(
        self, encoder: nn.Module, proj_hidden: int = 512, proj_dim: int = 128, temperature: float = 0.2
    ) -> None:
        super().__init__(encoder)
        self.projector = mlp([encoder.out_dim, proj_hidden, proj_dim])
        self.temperature = temperature

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        n = view1.shape[0]
        z = self.projector(self.encoder(torch.cat([view1, view2])))  # (2N, p)
        z = F.normalize(z, dim=1)
        sim = z @ z.T / self.temperature  # (2N, 2N) cosine similarities
        sim.fill_diagonal_(float("-inf"))  # a view is not its own positive
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(sim.device)
        return F.cross_entropy(sim, target)
