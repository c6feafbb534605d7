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
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT:
            raise ValueError(f"{path} is not a models_zoo encoder artifact")
        return cls(encoders.EncoderConfig(**payload["config"]), payload["state_dict"], payload["metadata"])

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
