"""Encoders: image tensors (N, C, S, S) in [0, 1] to embeddings (N, d), one registry.

Two families: ``cnn`` (a small VGG-like CNN for images up to 64 px) and ``resnet``
(a ResNet-18-style network with a width multiplier for larger images; He et al., 2016,
"Deep Residual Learning for Image Recognition"). Every encoder normalises its own input
with the pool's per-channel mean and std (stored as buffers), so an exported encoder needs
nothing but a [0, 1] tensor.

Input adaptation rule (:func:`input_spec` + :func:`adapt_images`), the one place where
arbitrary uint8 arrays become encoder input:

* channels: an (N, H, W) array or a single-channel last axis is grey (C=1); 3 or 4
  channels are colour (C=3, alpha dropped). A grey array fed to a colour encoder is
  repeated to 3 channels; a colour array fed to a grey encoder becomes luma
  (0.299 R + 0.587 G + 0.114 B, ITU-R BT.601).
* size: images are resized (bilinear, antialiased, aspect ratio not kept) to a square
  side S. At pretraining S is the pool's larger side clamped to ``[min_size, max_size]``
  (defaults 16 and 64 for ``cnn``, 32 and 128 for ``resnet``); afterwards S is fixed by
  the encoder and every array is resized to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_REGISTRY: dict[str, Callable[[EncoderConfig], nn.Module]] = {}
_SIZE_LIMITS = {"cnn": (16, 64), "resnet": (32, 128)}


@dataclass
class EncoderConfig:
    """Everything needed to rebuild an encoder (weights aside).

    name:        registered encoder name (``cnn`` or ``resnet``).
    width:       channels of the first stage; later stages double it.
    in_channels: 1 (grey) or 3 (colour).
    image_size:  the square side S the encoder sees.
    depth:       number of conv blocks (``cnn``) or stages (``resnet``).
    mean, std:   per-channel statistics of the pretraining pool, in [0, 1] units.
    input_view:  0, or the number k of whitened principal components of the input appended to
                 the embedding (:class:`WithInputView`); d grows by k.
    input_view_side: the thumbnail side those components are computed on.
    """

    name: str = "cnn"
    width: int = 16
    in_channels: int = 1
    image_size: int = 28
    depth: int = 4
    mean: list[float] = field(default_factory=lambda: [0.5])
    std: list[float] = field(default_factory=lambda: [0.25])
    input_view: int = 0
    input_view_side: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def register(name: str) -> Callable:
    def deco(fn: Callable[[EncoderConfig], nn.Module]) -> Callable[[EncoderConfig], nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"encoder {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def names() -> list[str]:
    return sorted(_REGISTRY)


def build(config: EncoderConfig) -> nn.Module:
    """A freshly initialised encoder; its ``out_dim`` attribute is the embedding size d.
    With ``config.input_view`` > 0 it is a :class:`WithInputView` around the trunk, whose
    statistics (buffers) come from :func:`fit_input_view` or a saved state dict."""
    try:
        factory = _REGISTRY[config.name]
    except KeyError:
        raise KeyError(f"unknown encoder {config.name!r}; known: {', '.join(names())}") from None
    trunk = factory(config)
    return WithInputView(trunk, config) if config.input_view > 0 else trunk


def learned_part(Z: np.ndarray, input_view: int) -> np.ndarray:
    """The trunk's columns of embeddings ``Z`` (N, d) from an encoder whose input view has
    ``input_view`` components (all columns without one). Selection strategies that work on the pool's
    geometry (clusters, coverage, distances) use this part: TypiClust's first 10 / 20 picks gave the
    learner 63.5 / 72.1 % on Fashion-MNIST from the trunk's part against 60.6 / 69.4 % from all
    columns (5 seeds); the input view is for the classifier."""
    return np.ascontiguousarray(Z[:, : Z.shape[1] - input_view]) if input_view else Z


def trunk_of(encoder: nn.Module) -> nn.Module:
    """The trained network inside an encoder (the encoder itself without an input view)."""
    return encoder.trunk if isinstance(encoder, WithInputView) else encoder


def trunk_state(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The trunk's weights out of an encoder state dict, with or without an input view."""
    if not any(k.startswith("trunk.") for k in state_dict):
        return dict(state_dict)
    return {k[len("trunk.") :]: v for k, v in state_dict.items() if k.startswith("trunk.")}


class WithInputView(nn.Module):
    """The trunk's embedding, standardised with the pool's statistics, next to a fixed linear
    view of the input: its top ``k`` principal components, whitened, computed on a
    ``side`` x ``side`` thumbnail (area-averaged) of the pool. Output (N, d + k).

    Why: a few minutes of self-supervised training give features that generalise but forget
    coarse appearance (overall shape, brightness layout) that a linear model on raw pixels
    uses well; the two views are complementary. Measured on Fashion-MNIST (docs/models_zoo.md):
    +2 to +4 points for the service's learner at 10-200 labels. Nothing here is trained: the
    buffers are statistics of the pool (:func:`fit_input_view`), fine-tuning leaves them alone.
    """

    def __init__(self, trunk: nn.Module, config: EncoderConfig) -> None:
        super().__init__()
        self.trunk = trunk
        d, k, side = trunk.out_dim, config.input_view, config.input_view_side
        dim = config.in_channels * side * side
        self.side = side
        self.register_buffer("h_mean", torch.zeros(d))
        self.register_buffer("h_std", torch.ones(d))
        self.register_buffer("v_mean", torch.zeros(dim))
        self.register_buffer("v_proj", torch.zeros(k, dim))
        self.out_dim = d + k

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) in [0, 1] -> (N, C * side * side) thumbnails."""
        return F.adaptive_avg_pool2d(x, self.side).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = (self.trunk(x) - self.h_mean) / self.h_std  # (N, d)
        v = (self.view(x) - self.v_mean) @ self.v_proj.T  # (N, k)
        return torch.cat([h, v], dim=1)


@torch.no_grad()
def fit_input_view(
    trunk: nn.Module, config: EncoderConfig, x: torch.Tensor, k: int, seed: int = 0, sample: int = 20000
) -> tuple[EncoderConfig, dict[str, torch.Tensor]]:
    """Statistics for a :class:`WithInputView` around a trained ``trunk`` from the adapted uint8
    pool ``x`` (N, C, S, S) (a seeded sample of at most ``sample`` images): the embedding's
    mean/std and the thumbnail PCA (eigendecomposition of the covariance, whitened by the
    square root of each eigenvalue, floored at 1e-3 of the largest). Returns the wrapped config and its full state dict."""
    side = min(config.image_size, 32)
    if len(x) > sample:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:sample]]
    cfg = EncoderConfig(**{**config.to_dict(), "input_view": 0, "input_view_side": 0})
    k = int(min(k, cfg.in_channels * side * side, max(len(x) - 1, 1)))
    cfg.input_view, cfg.input_view_side = k, side
    model = WithInputView(trunk.cpu().eval(), cfg)
    h, views = [], []
    for start in range(0, len(x), 2048):
        xb = x[start : start + 2048].float() / 255
        h.append(model.trunk(xb))
        views.append(model.view(xb))
    h, t = torch.cat(h).double(), torch.cat(views).double()  # (n, d), (n, D)
    model.h_mean.copy_(h.mean(0))
    model.h_std.copy_(h.std(0).clamp_min(1e-6))
    mean = t.mean(0)
    evals, evecs = torch.linalg.eigh((t - mean).T @ (t - mean) / max(len(t) - 1, 1))  # ascending
    evals, evecs = evals.flip(0)[:k], evecs.flip(1)[:, :k]
    # Whitening divides by sqrt(eigenvalue): a floor at 1e-3 of the top one keeps near-empty
    # directions (tiny pools, flat images) from blowing rounding noise up.
    floor = 1e-3 * float(evals[0]) + 1e-12
    model.v_mean.copy_(mean)
    model.v_proj.copy_((evecs / evals.clamp_min(floor).sqrt()).T)
    return cfg, {key: v.detach().contiguous().clone() for key, v in model.state_dict().items()}


class _Normalise(nn.Module):
    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """``depth`` conv-BN-ReLU blocks, 2x2 max-pooling after each of the first three,
    widths w, 2w, 4w, 8w, 8w..., global average pooling: d = 8w (128 at w=16, ~0.1 M
    parameters). The first block is kept narrow because at full resolution it costs most of
    the CPU time; capacity goes to the cheap low-resolution blocks."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.normalise = _Normalise(config.mean, config.std)
        layers: list[nn.Module] = []
        cin, w = config.in_channels, config.width
        for i in range(config.depth):
            cout = w * 2 ** min(i, 3)
            layers.append(_conv_bn(cin, cout))
            if i < 3:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(self.normalise(x))  # (N, d, s, s)
        return h.mean(dim=(2, 3))  # (N, d)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-18-style encoder (two basic blocks per stage) with width multiplier
    ``width/64``; a 3x3 stem without max-pooling for images >= 64 px keeps detail that the
    ImageNet 7x7 stride-2 stem would throw away at these sizes."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.normalise = _Normalise(config.mean, config.std)
        w = config.width
        # Large inputs get a stride-2 stem so compute stays CPU-sized.
        stem_stride = 2 if config.image_size > 64 else 1
        self.stem = _conv_bn(config.in_channels, w, stride=stem_stride)
        blocks: list[nn.Module] = []
        cin = w
        for stage in range(config.depth):
            cout = w * 2**stage
            stride = 1 if stage == 0 else 2
            blocks += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(self.normalise(x)))  # (N, d, s, s)
        return h.mean(dim=(2, 3))  # (N, d)


register("cnn")(SmallCNN)
register("resnet")(ResNet)


def image_channels(images: np.ndarray) -> int:
    """1 for grey arrays ((N,H,W) or (N,H,W,1)), 3 for colour ((N,H,W,3|4))."""
    if images.ndim == 3 or (images.ndim == 4 and images.shape[3] == 1):
        return 1
    if images.ndim == 4 and images.shape[3] in (3, 4):
        return 3
    raise ValueError(f"images must be (N,H,W) or (N,H,W,C) with C in 1,3,4; got shape {images.shape}")


def input_spec(images: np.ndarray, encoder: str = "cnn") -> tuple[int, int]:
    """(in_channels, image_size) an encoder pretrained on ``images`` will use."""
    lo, hi = _SIZE_LIMITS.get(encoder, (16, 64))
    side = max(images.shape[1], images.shape[2])
    return image_channels(images), int(min(max(side, lo), hi))


def adapt_images(images: np.ndarray, channels: int, size: int) -> torch.Tensor:
    """uint8 (N,H,W) or (N,H,W,C) -> uint8 tensor (N, channels, size, size) by the module rule.

    Stays uint8 so a large pool costs one byte per value; convert batches with ``/ 255``.
    """
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim == 3:
        x = x.unsqueeze(-1)  # (N, H, W) -> (N, H, W, 1)
    x = x[..., :3].permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W), alpha dropped
    out = torch.empty((x.shape[0], channels, size, size), dtype=torch.uint8)
    for start in range(0, x.shape[0], 4096):  # chunks bound the float copy's memory
        xb = x[start : start + 4096].float()
        if xb.shape[1] == 1 and channels == 3:
            xb = xb.expand(-1, 3, -1, -1)
        elif xb.shape[1] == 3 and channels == 1:
            luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            xb = (xb * luma).sum(1, keepdim=True)  # (B, 3, H, W) -> (B, 1, H, W)
        if xb.shape[2:] != (size, size):
            xb = F.interpolate(xb, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + 4096] = xb.round().clamp(0, 255).to(torch.uint8)
    return out


def channel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of a uint8 (N, C, S, S) tensor, in [0, 1] units."""
    sample = x[: min(len(x), 10000)].float() / 255
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return mean.tolist(), std.tolist()
