"""A second, hand-crafted view of the images for the learner: histograms of oriented gradients.

A few CPU minutes of self-supervised training give an embedding that groups images well (label
propagation runs on it) but keeps little of their edge layout, which a linear model on HOG
features (Dalal and Triggs, CVPR 2005) reads well once there are a few hundred labels. The learner
uses this view beside the embedding when cross-validation on the labels says it helps
(``transfer.Learner``; measured in docs/models_zoo.md). Nothing here is trained.

One torch module computes it, for the learner and inside the exported TorchScript model alike.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def hog_cell(image_size: int) -> int:
    """Cell side in pixels for images of side S: about 7 x 7 cells whatever the size (4 at 28 px)."""
    return max(2, round(image_size / 7))


class HOG(nn.Module):
    """(N, C, S, S) float in [0, 1] -> (N, D) float: unsigned gradient orientations in ``bins``
    bins, magnitude-weighted and split linearly between the two nearest bins, summed over cells of
    ``cell`` x ``cell`` pixels; blocks of 2 x 2 cells (stride one cell) L2-normalised, clipped at
    0.2 and normalised again (L2-Hys). Colour: each pixel's gradient is that of its channel with the
    largest magnitude. D = bins * 4 * (S // cell - 1) ** 2 (1,296 for 28 px)."""

    def __init__(self, cell: int, bins: int = 9) -> None:
        super().__init__()
        self.cell = cell
        self.bins = bins
        self.register_buffer("dx", torch.tensor([[[[-1.0, 0.0, 1.0]]]]))
        self.register_buffer("dy", torch.tensor([[[[-1.0], [0.0], [1.0]]]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        flat = x.reshape(n * c, 1, h, w)
        gx = F.conv2d(F.pad(flat, (1, 1, 0, 0), mode="replicate"), self.dx).reshape(n, c, h, w)
        gy = F.conv2d(F.pad(flat, (0, 0, 1, 1), mode="replicate"), self.dy).reshape(n, c, h, w)
        mag = torch.sqrt(gx * gx + gy * gy)
        if c > 1:  # the strongest channel's gradient at each pixel
            best = mag.argmax(dim=1, keepdim=True)
            gx, gy, mag = gx.gather(1, best), gy.gather(1, best), mag.gather(1, best)
        angle = torch.remainder(torch.atan2(gy, gx), math.pi)  # unsigned, [0, pi)
        pos = angle / math.pi * self.bins
        low = torch.floor(pos)
        frac = pos - low
        low_bin = torch.remainder(low, self.bins).long()
        high_bin = torch.remainder(low_bin + 1, self.bins)
        hist = torch.zeros(n, self.bins, h, w, dtype=x.dtype, device=x.device)
        hist.scatter_add_(1, low_bin, mag * (1 - frac))
        hist.scatter_add_(1, high_bin, mag * frac)
        cells = F.avg_pool2d(hist, self.cell) * float(self.cell * self.cell)  # (N, bins, Hc, Wc)
        blocks = cells.unfold(2, 2, 1).unfold(3, 2, 1)  # (N, bins, Hc-1, Wc-1, 2, 2)
        blocks = blocks.permute(0, 2, 3, 1, 4, 5).reshape(n, blocks.shape[2], blocks.shape[3], -1)
        blocks = blocks / torch.sqrt((blocks * blocks).sum(-1, keepdim=True) + 1e-6)
        blocks = blocks.clamp(max=0.2)
        blocks = blocks / torch.sqrt((blocks * blocks).sum(-1, keepdim=True) + 1e-6)
        return blocks.reshape(n, -1)


def hog_features(x: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """HOG (N, D) float32 of adapted uint8 images (N, C, S, S), in batches, on the CPU."""
    module = HOG(hog_cell(x.shape[-1]))
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            out.append(module(x[start : start + batch_size].float() / 255).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
