"""Export encoder + head as one TorchScript file that runs without this package.

The exported module takes a float tensor (N, C, H, W) with values in [0, 1], any H, W and
C in {1, 3}; it applies the same adaptation rule as :mod:`models_zoo.encoders` (grey <->
colour, bilinear antialiased resize to the encoder's side S, 8-bit quantisation) and returns class
probabilities (N, K). Load it with ``torch.jit.load(path)``; only torch is needed.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class ExportedClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, head: nn.Module, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.in_channels = in_channels
        self.image_size = image_size
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The same steps, in the same order, as adapt_images on the 8-bit values the service stores,
        # so an exported model gives the same output as the learner for the same image.
        x = torch.round(x * 255).clamp(0, 255)
        if x.shape[1] == 1 and self.in_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and self.in_channels == 1:
            x = (x * self.luma).sum(1, keepdim=True)  # (N, 3, H, W) -> (N, 1, H, W)
        if x.shape[2] != self.image_size or x.shape[3] != self.image_size:
            x = F.interpolate(
                x,
                size=[self.image_size, self.image_size],
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        x = torch.round(x).clamp(0, 255) / 255
        return F.softmax(self.head(self.encoder(x)), dim=1)  # (N, K)


def export_torchscript(
    encoder: nn.Module, head: nn.Module, in_channels: int, image_size: int, path: str | os.PathLike
) -> None:
    """Script encoder + head and write it atomically to ``path``. Copies, with no parameter needing
    gradients: the loaded model's outputs do not require grad (callers need no ``torch.no_grad()``
    to turn them into numpy), and the caller's modules keep theirs."""
    encoder, head = copy.deepcopy(encoder).cpu().eval(), copy.deepcopy(head).cpu().eval()
    module = ExportedClassifier(encoder, head, in_channels, image_size).eval().requires_grad_(False)
    scripted = torch.jit.script(module)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    scripted.save(str(tmp))
    os.replace(tmp, path)


class _WithHOG(nn.Module):
    """The embedding and the HOG features side by side: (N, d + D)."""

    def __init__(self, encoder: nn.Module, hog: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.hog = hog

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.encoder(x), self.hog(x)], dim=1)


class _MixedHeads(nn.Module):
    """Log of the learner's mixture (1 - w) softmax(head(z)) + w softmax(hog_head(h)) of the two
    probes: a softmax of it gives the mixture back."""

    def __init__(self, head: nn.Module, hog_head: nn.Module, dim: int, weight: float) -> None:
        super().__init__()
        self.head = head
        self.hog_head = hog_head
        self.dim = dim
        self.weight = weight

    def forward(self, zh: torch.Tensor) -> torch.Tensor:
        p = (1 - self.weight) * F.softmax(self.head(zh[:, : self.dim]), dim=1)
        p = p + self.weight * F.softmax(self.hog_head(zh[:, self.dim :]), dim=1)
        return torch.log(p.clamp_min(1e-30))


def export_learner(learner, path: str | os.PathLike) -> None:
    """Export a fitted :class:`~models_zoo.transfer.Learner` (with an encoder artifact), its HOG
    view included when it joined the prediction."""
    from models_zoo.transfer import linear_head
    from models_zoo.views import HOG, hog_cell

    cfg = learner.artifact.config
    encoder, head = learner.encoder_module(), learner.torch_head()
    weight = getattr(learner, "view_weight_", 0.0)
    if weight and learner.finetuner_ is None:
        hog_head = linear_head(*learner.view_probe_.linear_weights_full(learner.n_classes_))
        head = _MixedHeads(head, hog_head, head.in_features, weight)
        encoder = _WithHOG(encoder, HOG(hog_cell(cfg.image_size)))
    export_torchscript(encoder, head, cfg.in_channels, cfg.image_size, path)
