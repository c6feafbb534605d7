"""Batched image augmentations in pure torch, with different randomness per image.

The SimCLR recipe (Chen et al., 2020, "A Simple Framework for Contrastive Learning of
Visual Representations", appendix A): random resized crop + horizontal flip, colour jitter
(brightness, contrast, saturation, hue) with probability 0.8, random grey with
probability 0.2, Gaussian blur. Colour operations (saturation, hue, random grey) switch off
for grey images; brightness and contrast are intensity operations and stay on.

All operations act on a float batch (N, C, S, S) in [0, 1] and draw from an explicit
``torch.Generator`` so a resumed run replays the same views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    """crop_scale:  range of the crop's area as a fraction of the image.
    crop_ratio:  range of the crop's aspect ratio.
    flip:        horizontal flip with probability 0.5.
    jitter:      strength s of colour jitter (brightness/contrast/saturation s, hue s/4).
    p_jitter:    probability of applying colour jitter to an image.
    p_grey:      probability of turning a colour image grey.
    p_blur:      probability of a Gaussian blur.
    blur_sigma:  sigma range for a 224-px image; scaled linearly with the image side so
                 small images are not smeared beyond recognition.
    """

    crop_scale: tuple[float, float] = (0.25, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    jitter: float = 0.4
    p_jitter: float = 0.8
    p_grey: float = 0.2
    p_blur: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def _bernoulli(n: int, p: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) < p


def random_resized_crop(
    x: torch.Tensor, scale: tuple[float, float], ratio: tuple[float, float], flip: bool, g: torch.Generator
) -> torch.Tensor:
    """Crop a random box of each image and resize it back to (S, S); one affine grid per image."""
    n, dev = x.shape[0], x.device
    area = _uniform(n, *scale, g, dev)
    log_r = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), g, dev)
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)  # box width as a fraction of the side
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (_uniform(n, -1, 1, g, dev)) * (1 - w)  # centre in grid coordinates [-1, 1]
    cy = (_uniform(n, -1, 1, g, dev)) * (1 - h)
    sign = torch.where(_bernoulli(n, 0.5, g, dev), -1.0, 1.0) if flip else torch.ones(n, device=dev)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0] = w * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, S, S, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


_LUMA = (0.299, 0.587, 0.114)


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    w = torch.tensor(_LUMA, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)  # (N, 3, S, S) -> (N, 1, S, S)


def colour_jitter(x: torch.Tensor, strength: float, p: float, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, then (colour only) saturation and hue, each factor drawn per image."""
    n, dev = x.shape[0], x.device
    apply = _bernoulli(n, p, g, dev).view(n, 1, 1, 1)
    b = _uniform(n, 1 - strength, 1 + strength, g, dev).view(n, 1, 1, 1)
    c = _uniform(n, 1 - strength, 1 + strength, g, dev).view(n, 1, 1, 1)
    y = x * b
    mean = _grey(y).mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
    y = (y - mean) * c + mean
    if x.shape[1] == 3:
        s = _uniform(n, 1 - strength, 1 + strength, g, dev).view(n, 1, 1, 1)
        grey = _grey(y)
        y = grey + (y - grey) * s
        # Hue: rotate the chroma plane of YIQ space by a random angle.
        angle = _uniform(n, -strength / 4, strength / 4, g, dev) * 2 * math.pi
        to_yiq = torch.tensor(
            [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=dev
        )
        from_yiq = torch.linalg.inv(to_yiq)
        cos, sin = torch.cos(angle), torch.sin(angle)
        rot = torch.zeros(n, 3, 3, device=dev)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        m = from_yiq @ rot @ to_yiq  # (N, 3, 3)
        y = torch.einsum("nij,njhw->nihw", m, y)
    y = y.clamp(0, 1)
    return torch.where(apply, y, x)


def random_grey(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    if x.shape[1] == 1 or p <= 0:
        return x
    apply = _bernoulli(x.shape[0], p, g, x.device).view(-1, 1, 1, 1)
    return torch.where(apply, _grey(x).expand_as(x), x)


def gaussian_blur(x: torch.Tensor, sigma: tuple[float, float], p: float, g: torch.Generator) -> torch.Tensor:
    """Separable Gaussian blur with a per-image sigma (a grouped convolution, one kernel per image)."""
    n, c, s, _ = x.shape
    dev = x.device
    scale = s / 224
    lo, hi = sigma[0] * scale, sigma[1] * scale
    if p <= 0 or hi < 0.2:  # sub-pixel sigmas are a no-op; skip the convolution
        return x
    sig = _uniform(n, lo, hi, g, dev).clamp_min(1e-3)
    apply = _bernoulli(n, p, g, dev)
    radius = max(1, math.ceil(3 * hi))
    t = torch.arange(-radius, radius + 1, device=dev, dtype=x.dtype)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sig.view(-1, 1) ** 2))  # (N, K)
    k = k / k.sum(1, keepdim=True)
    k = k.repeat_interleave(c, 0)  # (N*C, K): one kernel per image channel
    y = x.reshape(1, n * c, s, s)  # (N, C, S, S) -> (1, N*C, S, S) for a grouped conv
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y, k.view(n * c, 1, -1, 1), groups=n * c)
    y = y.view(n, c, s, s)
    return torch.where(apply.view(-1, 1, 1, 1), y, x)


def augment(x: torch.Tensor, config: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """One random view of every image in a float batch (N, C, S, S) in [0, 1]."""
    y = random_resized_crop(x, config.crop_scale, config.crop_ratio, config.flip, g)
    y = colour_jitter(y, config.jitter, config.p_jitter, g)
    y = random_grey(y, config.p_grey, g)
    y = gaussian_blur(y, config.blur_sigma, config.p_blur, g)
    return y


def cutout(x: torch.Tensor, size: float, g: torch.Generator) -> torch.Tensor:
    """Zero one square of side ``size`` x S per image, centred anywhere (it may leave the image):
    Cutout (DeVries & Taylor, 2017), part of FixMatch's strong augmentation. (N, C, S, S) -> same."""
    n, _, h, w = x.shape
    half = int(h * size) // 2
    cy = torch.randint(0, h, (n,), generator=g, device=x.device)
    cx = torch.randint(0, w, (n,), generator=g, device=x.device)
    rows = (torch.arange(h, device=x.device)[None, :] - cy[:, None]).abs() <= half  # (N, H)
    cols = (torch.arange(w, device=x.device)[None, :] - cx[:, None]).abs() <= half  # (N, W)
    hole = rows[:, :, None] & cols[:, None, :]  # (N, H, W)
    return x.masked_fill(hole[:, None], 0.0)
