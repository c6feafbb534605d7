"""Export encoder + head as one TorchScript file that runs without this package.

The exported module takes a float tensor (N, C, H, W) with values in [0, 1], any H, W and
C in {1, 3}; it applies the same adaptation rule as :mod:`models_zoo.encoders` (grey <->
colour, bilinear antialiased resize to the encoder's side S, 8-bit quantisation) and returns class
probabilities (N, K). Load it with ``torch.jit.load(path)``; only torch is needed.
"""

from __future__ import annotations

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
    """Script encoder + head and write it atomically to ``path``."""
    module = ExportedClassifier(encoder.cpu().eval(), head.cpu().eval(), in_channels, image_size).eval()
    scripted = torch.jit.script(module)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    scripted.save(str(tmp))
    os.replace(tmp, path)


def export_learner(learner, path: str | os.PathLike) -> None:
    """Export a fitted :class:`~models_zoo.transfer.Learner` (with an encoder artifact)."""
    cfg = learner.artifact.config
    export_torchscript(learner.encoder_module(), learner.torch_head(), cfg.in_channels, cfg.image_size, path)
