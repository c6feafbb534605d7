"""Encoder artifacts: weights + config + metadata in one file, and embedding with them.

The file is a ``torch.save`` of plain dicts and tensors, loaded with ``weights_only=True``
(no pickled code), written atomically (temp file + ``os.replace``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models_zoo import encoders
from models_zoo.device import pick_device

FORMAT = "models_zoo.encoder/1"


def data_hash(images: np.ndarray) -> str:
    """A short content hash of an image array (shape, dtype and bytes)."""
    h = hashlib.sha256()
    h.update(str((images.shape, str(images.dtype))).encode())
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()[:16]


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` to a temp file in the target folder, then ``os.replace``: a reader (or a
    worker killed mid-write) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


MAX_IMAGE_SIZE = 512
MAX_PARAMETERS = 100_000_000


def check_config(config: encoders.EncoderConfig) -> None:
    """ValueError unless ``config`` names an encoder this library can build within bounds."""
    if config.in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, not {config.in_channels!r}")
    for name in ("width", "depth", "image_size", "input_view", "input_view_side"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
    if not 1 <= config.image_size <= MAX_IMAGE_SIZE:
        raise ValueError(f"image_size {config.image_size} is outside 1-{MAX_IMAGE_SIZE}")
    if config.input_view_side > MAX_IMAGE_SIZE or config.input_view > MAX_IMAGE_SIZE**2:
        raise ValueError("the input view is larger than any image this library embeds")
    try:
        with torch.device("meta"):  # shapes only: no memory for the weights
            count = sum(p.numel() for p in encoders.build(config).parameters())
    except ValueError:
        raise
    except Exception as exc:  # an unknown encoder name, a depth its family does not have
        raise ValueError(f"cannot build that encoder ({type(exc).__name__}: {exc})") from None
    if count > MAX_PARAMETERS:
        raise ValueError(f"that encoder has {count:,} weights, over the limit of {MAX_PARAMETERS:,}")


@dataclass
class EncoderArtifact:
    """A pretrained encoder.

    config:     the :class:`~models_zoo.encoders.EncoderConfig` to rebuild it.
    state_dict: its weights.
    metadata:   method, data_hash, steps, seconds, images_per_s and anything else useful.
    """

    config: encoders.EncoderConfig
    state_dict: dict[str, torch.Tensor]
    metadata: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return self.build().out_dim

    def build(self) -> nn.Module:
        """The encoder with these weights, in eval mode, on the CPU."""
        model = encoders.build(self.config)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def save(self, path: str | os.PathLike) -> None:
        payload = {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "state_dict": self.state_dict,
            "metadata": self.metadata,
        }
        atomic_save(payload, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EncoderArtifact:
        """Read an artifact; its config is checked before anything is built from it (a file of a few
        bytes could name an encoder too large for memory, and a worker building it was killed on
        every delivery): at most MAX_IMAGE_SIZE px, 1 or 3 channels, MAX_PARAMETERS weights
        (counted on torch's meta device, which allocates nothing), and the weights given must be
        the ones that encoder has."""
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{path} is not a models_zoo encoder artifact")
        try:
            config = encoders.EncoderConfig(**payload["config"])
        except (TypeError, KeyError) as exc:
            raise ValueError(f"the encoder config is not one this library writes ({exc})") from None
        check_config(config)
        return cls(config, payload["state_dict"], payload["metadata"])

    def adapt(self, images: np.ndarray) -> torch.Tensor:
        """uint8 images of any size/channels -> uint8 (N, C, S, S) for this encoder."""
        return encoders.adapt_images(images, self.config.in_channels, self.config.image_size)

    def embed(
        self, images: np.ndarray, batch_size: int = 1024, device: str | torch.device | None = None
    ) -> np.ndarray:
        """Embeddings (N, d) float32 of uint8 images (N,H,W) or (N,H,W,C), computed in chunks."""
        return embed_tensor(self.build(), self.adapt(images), batch_size, device)


@torch.no_grad()
def embed_tensor(
    encoder: nn.Module, x: torch.Tensor, batch_size: int = 1024, device: str | torch.device | None = None
) -> np.ndarray:
    """Embeddings (N, d) float32 of an adapted uint8 tensor (N, C, S, S), in chunks."""
    dev = pick_device(device)
    encoder = encoder.to(dev, memory_format=torch.channels_last).eval()
    out = np.empty((x.shape[0], encoder.out_dim), dtype=np.float32)
    for start in range(0, x.shape[0], batch_size):
        xb = (x[start : start + batch_size].to(dev).float() / 255).contiguous(
            memory_format=torch.channels_last
        )
        out[start : start + batch_size] = encoder(xb).cpu().numpy()
    return out
