"""The pretraining loop shared by every self-supervised method.

:func:`pretrain` takes a uint8 pool, a :class:`PretrainConfig` and optional hooks
(progress callback, cancellation, checkpoint path, a starting artifact) and returns an
:class:`~models_zoo.artifact.EncoderArtifact`. It knows nothing about any method beyond
``loss = method(view1, view2)`` and ``method.on_step_end()``.

Budget: ``max_steps`` and/or ``max_minutes``; the learning rate follows a cosine schedule
over the fraction of the budget used (steps or wall-clock, whichever is further along), so
a time budget still ends at a small learning rate. Wall-clock counts across resumes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from models_zoo import encoders, ssl
from models_zoo.artifact import EncoderArtifact, atomic_save, data_hash
from models_zoo.augment import AugmentConfig, augment
from models_zoo.device import configure, pick_device

ProgressFn = Callable[[float, dict], None]


class TrainingCancelled(Exception):
    """``should_stop()`` returned True; a checkpoint was written if a path was given."""


class CheckpointMismatch(ValueError):
    """The checkpoint at the given path belongs to other data or another config."""


@dataclass
class PretrainConfig:
    """Defaults chosen by measurement on 2 CPU cores (see docs/models_zoo.md).

    method / method_options: registered SSL method and its keyword options.
    encoder, width, depth:   encoder family and size (see :mod:`models_zoo.encoders`).
    image_size, in_channels: ``None`` picks them from the pool by the adaptation rule.
    batch_size:              images per step (each gives two views).
    lr, weight_decay:        AdamW; the encoder's lr follows a cosine schedule with warm-up.
    max_minutes, max_steps:  budget; whichever is reached first ends training.
    checkpoint_every:        steps between atomic checkpoints (when a path is given).
    input_view:              k > 0 appends k whitened principal components of the input to the
                             embedding (:class:`~models_zoo.encoders.WithInputView`); 0: off.
    seed:                    the only source of randomness.
    threads, device:         torch CPU threads (None: torch default) and device (None: auto).
    """

    method: str = "simclr"
    method_options: dict = field(default_factory=dict)
    encoder: str = "cnn"
    width: int = 16
    depth: int = 4
    image_size: int | None = None
    in_channels: int | None = None
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    max_minutes: float | None = 5.0
    max_steps: int | None = None
    input_view: int = 32
    checkpoint_every: int = 100
    progress_every: int = 10
    seed: int = 0
    threads: int | None = None
    device: str | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict:
        return asdict(self)


def _budget_fraction(cfg: PretrainConfig, step: int, seconds: float) -> float:
    parts = []
    if cfg.max_steps is not None:
        parts.append(step / max(cfg.max_steps, 1))
    if cfg.max_minutes is not None:
        parts.append(seconds / max(cfg.max_minutes * 60, 1e-9))
    return min(max(parts), 1.0) if parts else 1.0


def _lr_at(cfg: PretrainConfig, step: int, fraction: float) -> float:
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * fraction))


def pretrain(
    images: np.ndarray,
    config: PretrainConfig | None = None,
    *,
    checkpoint_path: str | os.PathLike | None = None,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    init: EncoderArtifact | None = None,
) -> EncoderArtifact:
    """Self-supervised pretraining of an encoder on an unlabelled uint8 pool.

    images:          (N,H,W) or (N,H,W,C) uint8, any size (adapted by the encoders rule).
    checkpoint_path: written atomically every ``checkpoint_every`` steps and on cancel;
                     if it exists, training resumes from it (same data and config required).
    progress:        called as ``progress(fraction, {"step", "loss", "images_per_s", ...})``.
    should_stop:     polled every step; True checkpoints and raises :class:`TrainingCancelled`.
    init:            start from this artifact's weights and input spec (transfer).
    """
    cfg = config or PretrainConfig()
    if cfg.max_steps is None and cfg.max_minutes is None:
        raise ValueError("set max_steps or max_minutes")
    configure(cfg.threads)
    device = pick_device(cfg.device)
    dhash = data_hash(images)

    if init is not None:
        # The trunk is what trains; an input view is refitted to this pool at the end.
        enc_cfg = encoders.EncoderConfig(**{**init.config.to_dict(), "input_view": 0, "input_view_side": 0})
    else:
        channels, size = encoders.input_spec(images, cfg.encoder)
        enc_cfg = encoders.EncoderConfig(
            name=cfg.encoder,
            width=cfg.width,
            depth=cfg.depth,
            in_channels=cfg.in_channels or channels,
            image_size=cfg.image_size or size,
        )
    x = encoders.adapt_images(images, enc_cfg.in_channels, enc_cfg.image_size)  # (N, C, S, S) uint8
    if init is None:
        # The pool's own statistics; a transferred encoder keeps those it was trained with.
        enc_cfg.mean, enc_cfg.std = encoders.channel_stats(x)

    torch.manual_seed(cfg.seed)  # parameter initialisation
    encoder = encoders.build(enc_cfg)
    if init is not None:
        encoder.load_state_dict(encoders.trunk_state(init.state_dict))
    # channels_last: ~1.5x faster convolutions on CPU (measured), same results.
    method = ssl.build(cfg.method, encoder, **cfg.method_options).to(
        device, memory_format=torch.channels_last
    )
    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator(device=device).manual_seed(cfg.seed)
    g_cpu = torch.Generator().manual_seed(cfg.seed + 1)  # batch order

    n = x.shape[0]
    bs = min(cfg.batch_size, n)
    state = {
        "step": 0,
        "seconds": 0.0,
        "perm": torch.randperm(n, generator=g_cpu),
        "pos": 0,
        "loss": float("nan"),
    }
    fingerprint = {"data_hash": dhash, "config": cfg.to_dict(), "encoder": enc_cfg.to_dict()}

    if checkpoint_path is not None and Path(checkpoint_path).exists():
        ck = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        if ck["fingerprint"]["data_hash"] != dhash or ck["fingerprint"]["config"] != fingerprint["config"]:
            raise CheckpointMismatch(f"{checkpoint_path} was written for other data or another config")
        method.load_state_dict(ck["method"])
        opt.load_state_dict(ck["optimizer"])
        g.set_state(ck["rng"])
        g_cpu.set_state(ck["rng_cpu"])
        state = ck["state"]

    def save_checkpoint() -> None:
        if checkpoint_path is None:
            return
        atomic_save(
            {
                "fingerprint": fingerprint,
                "method": method.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": g.get_state(),
                "rng_cpu": g_cpu.get_state(),
                "state": state,
            },
            checkpoint_path,
        )

    method.train()
    t_start = time.perf_counter() - state["seconds"]
    window_t, window_imgs = time.perf_counter(), 0
    speed = float("nan")
    while True:
        seconds = time.perf_counter() - t_start
        fraction = _budget_fraction(cfg, state["step"], seconds)
        if fraction >= 1.0:
            break
        if should_stop is not None and should_stop():
            state["seconds"] = seconds
            save_checkpoint()
            raise TrainingCancelled(f"stopped at step {state['step']}")
        if state["pos"] + bs > n:
            state["perm"], state["pos"] = torch.randperm(n, generator=g_cpu), 0
        idx = state["perm"][state["pos"] : state["pos"] + bs]
        state["pos"] += bs
        xb = (x[idx].to(device).float() / 255).contiguous(memory_format=torch.channels_last)  # (B, C, S, S)
        v1 = augment(xb, cfg.augment, g).contiguous(memory_format=torch.channels_last)
        v2 = augment(xb, cfg.augment, g).contiguous(memory_format=torch.channels_last)
        for group in opt.param_groups:
            group["lr"] = _lr_at(cfg, state["step"], fraction)
        loss = method(v1, v2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        method.on_step_end()
        state["step"] += 1
        state["loss"] = float(loss.detach())
        window_imgs += bs
        if state["step"] % cfg.progress_every == 0:
            now = time.perf_counter()
            speed = window_imgs / max(now - window_t, 1e-9)
            window_t, window_imgs = now, 0
            if progress is not None:
                info = {"step": state["step"], "loss": state["loss"], "images_per_s": speed}
                progress(_budget_fraction(cfg, state["step"], now - t_start), info)
        if state["step"] % cfg.checkpoint_every == 0:
            state["seconds"] = time.perf_counter() - t_start
            save_checkpoint()

    seconds = time.perf_counter() - t_start
    state["seconds"] = seconds
    save_checkpoint()
    images_seen = state["step"] * bs
    metadata = {
        "method": cfg.method,
        "data_hash": dhash,
        "steps": state["step"],
        "seconds": round(seconds, 2),
        "images_per_s": round(images_seen / max(seconds, 1e-9), 1),
        "final_loss": state["loss"],
        "config": cfg.to_dict(),
        "init": init.metadata.get("data_hash") if init is not None else None,
    }
    if progress is not None:
        progress(1.0, {"step": state["step"], "loss": state["loss"], "images_per_s": speed, "done": True})
    encoder = method.encoder.cpu().eval()
    if cfg.input_view > 0:
        enc_cfg, state_dict = encoders.fit_input_view(encoder, enc_cfg, x, cfg.input_view, seed=cfg.seed)
    else:
        state_dict = {k: v.detach().contiguous().clone() for k, v in encoder.state_dict().items()}
    return EncoderArtifact(enc_cfg, state_dict, metadata)
