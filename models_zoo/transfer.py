"""Transfer: classifiers on top of an encoder, using the unlabelled pool too.

Building blocks, each usable alone:

* :class:`LinearProbe`: scikit-learn logistic regression on standardised frozen
  embeddings (optionally sample-weighted, for pseudo-labels).
* :func:`label_spreading`: labels spread over the pool's k-nearest-neighbour graph
  (Zhou et al., 2004, "Learning with Local and Global Consistency"; graph and weighting as
  in Iscen et al., 2019, "Label Propagation for Deep Semi-supervised Learning").
* :class:`FineTuner`: encoder + dropout + linear head trained end to end, the encoder at a
  lower learning rate, the head started from the linear probe ("LP-FT": Kumar et al., 2022,
  "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution").
* :class:`ConsistencyTuner`: the same model trained on the labels and on the whole pool by
  FixMatch's consistency (Sohn et al., 2020): a strongly augmented image must get the class the
  model gives its weakly augmented twin, where that class is confident. Minutes on a GPU; the
  learner runs it only where CUDA is present (``LearnerConfig.consistency_steps``).

:class:`Learner` is what the service uses: it picks ``propagate`` (label spreading, then a
linear probe fitted to the labels plus confident pseudo-labels; on a GPU followed by consistency
training, ``consistency``) or ``finetune`` by the number of labels (:func:`choose_mode`), and
gives probabilities, predictions and MC samples. Below fine-tuning, a probe on HOG features of the
images (:mod:`models_zoo.views`) joins in where cross-validation on the labels says it helps
(:func:`second_view_helps`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.stats import binom
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from models_zoo.artifact import EncoderArtifact, embed_tensor
from models_zoo.augment import AugmentConfig, augment, cutout, random_resized_crop
from models_zoo.device import pick_device
from models_zoo.train import TrainingCancelled
from models_zoo.views import hog_features

# ----------------------------------------------------------------------------- linear probe


class LinearProbe:
    """Multinomial logistic regression on standardised features.

    C: inverse L2 strength (scikit-learn's). seed: for the solver's tie-breaking.
    Learned: ``scaler_``, ``clf_``, ``classes_``.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> None:
        self.C = C
        self.max_iter = max_iter
        self.seed = seed

    def fit(self, Z: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> LinearProbe:
        self.scaler_ = StandardScaler().fit(Z)
        self.clf_ = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
        self.clf_.fit(self.scaler_.transform(Z), y, sample_weight=sample_weight)
        self.classes_ = self.clf_.classes_
        return self

    def predict_proba(self, Z: np.ndarray, n_classes: int | None = None) -> np.ndarray:
        """(N, C) probabilities; columns for classes never seen in training are zero."""
        p = self.clf_.predict_proba(self.scaler_.transform(Z))  # (N, seen)
        return _expand(p, self.classes_, n_classes)

    def linear_weights_full(self, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """(W (C, d), b (C,)) acting on raw features (the scaler folded in), so that
        ``softmax(z @ W.T + b)`` equals :meth:`predict_proba`; unseen classes get a -30 bias."""
        coef, inter = self.clf_.coef_, self.clf_.intercept_
        if coef.shape[0] == 1:  # binary: scikit-learn keeps one row; make it two logits
            coef, inter = np.vstack([-coef / 2, coef / 2]), np.array([-inter[0] / 2, inter[0] / 2])
        W = coef / self.scaler_.scale_
        b = inter - W @ self.scaler_.mean_
        W_full = np.zeros((n_classes, W.shape[1]), dtype=np.float32)
        b_full = np.full(n_classes, -30.0, dtype=np.float32)
        W_full[self.classes_], b_full[self.classes_] = W, b
        return W_full, b_full

    def mc_proba(
        self, Z: np.ndarray, samples: int, dropout: float, seed: int, n_classes: int | None
    ) -> np.ndarray:
        """(T, N, C) samples with inverted dropout on the standardised input of the fitted
        head, a test-time approximation of MC dropout (Gal and Ghahramani, 2016)."""
        rng = np.random.default_rng(seed)
        Zs = self.scaler_.transform(Z)
        out = []
        for _ in range(samples):
            mask = rng.random(Zs.shape) >= dropout
            out.append(_expand(self.clf_.predict_proba(Zs * mask / (1 - dropout)), self.classes_, n_classes))
        return np.stack(out).astype(np.float32)  # (T, N, C)


def linear_head(W: np.ndarray, b: np.ndarray) -> nn.Linear:
    """A torch linear layer computing ``z @ W.T + b`` (W (C, d), b (C,)), e.g. a probe's, for export."""
    head = nn.Linear(W.shape[1], W.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(W, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(b, dtype=torch.float32))
    return head


def _expand(p: np.ndarray, classes: np.ndarray, n_classes: int | None) -> np.ndarray:
    n_classes = n_classes or int(classes.max()) + 1
    out = np.zeros((p.shape[0], n_classes), dtype=np.float32)
    out[:, classes] = p
    return out


# ----------------------------------------------------------------------------- label spreading


def knn_graph(Z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine k-nearest neighbours of every row (self excluded): (sims (N,k), ids (N,k)).

    Exact up to ``geometry.EXACT_MAX`` rows, approximate (each point searched among the points of
    its 3 nearest k-means cells) above: an exact search is O(N^2 d), ~30 min at 1M rows here.
    """
    import faiss

    from models_zoo.selection import geometry

    faiss.omp_set_num_threads(torch.get_num_threads())  # share the worker's CPU allowance
    Zn = np.ascontiguousarray(
        Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12), dtype=np.float32
    )
    k = min(k, len(Zn) - 1)
    ids, sqd = geometry.knn_graph(Zn, k, seed=0)  # squared distances of unit vectors
    return (1.0 - 0.5 * sqd).astype(np.float32), ids


def spreading_operator(Z: np.ndarray, k: int = 20, alpha: float = 0.99, gamma: float = 3.0) -> sp.csr_matrix:
    """I - alpha S (N, N) sparse, S the symmetrically normalised kNN affinity of Z's rows (cosine
    similarity ** gamma): what :func:`label_spreading` solves with. It depends on Z alone, so one
    fit builds it once for every spreading it does (the second view's folds spread labels over the
    same graph: at 60,000 rows each build took 1.7 s of the kNN search)."""
    n = len(Z)
    sims, ids = knn_graph(Z, k)
    w = np.clip(sims, 0, None) ** gamma  # (N, k)
    rows = np.repeat(np.arange(n), ids.shape[1])
    W = sp.csr_matrix((w.ravel(), (rows, ids.ravel())), shape=(n, n))
    W = W + W.T
    d = np.asarray(W.sum(1)).ravel()
    d_inv_sqrt = 1 / np.sqrt(np.maximum(d, 1e-12))
    S = sp.diags(d_inv_sqrt) @ W @ sp.diags(d_inv_sqrt)
    return (sp.identity(n, format="csr") - alpha * S).tocsr()


def label_spreading(
    Z: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    k: int = 20,
    alpha: float = 0.99,
    gamma: float = 3.0,
    operator: sp.csr_matrix | None = None,
) -> np.ndarray:
    """Class distributions (N, C) for every pool row from the labelled ones.

    labels: (N,) int, -1 where unlabelled. Solves (I - alpha S) F = Y by conjugate
    gradients, S the symmetrically normalised kNN affinity (cosine similarity ** gamma);
    Y puts 1/n_c on each labelled item of class c so frequent classes do not flood the graph.
    Rows with no path to any label come out uniform. ``operator``: :func:`spreading_operator`'s
    result for these Z, k, alpha and gamma, when already built.
    """
    n = len(Z)
    A = operator if operator is not None else spreading_operator(Z, k, alpha, gamma)
    Y = np.zeros((n, n_classes))
    for c in range(n_classes):
        members = labels == c
        if members.any():
            Y[members, c] = 1 / members.sum()
    Fm = np.clip(_block_cg(A, Y, max_iter=50), 0, None)
    total = Fm.sum(1, keepdims=True)
    P = np.where(total > 0, Fm / np.maximum(total, 1e-30), 1 / n_classes)
    labelled = labels >= 0
    P[labelled] = np.eye(n_classes)[labels[labelled]]
    return P.astype(np.float32)


def _block_cg(A: sp.spmatrix, B: np.ndarray, max_iter: int = 50, tol: float = 1e-6) -> np.ndarray:
    """Solve A X = B for symmetric positive definite A, all columns at once (conjugate
    gradients per column, vectorised: one sparse product per iteration for all classes)."""
    X = np.zeros_like(B)
    R = B.copy()
    P = R.copy()
    rs = (R * R).sum(0)  # (C,)
    stop = tol**2 * np.maximum((B * B).sum(0), 1e-30)
    for _ in range(max_iter):
        AP = A @ P  # (N, C)
        step = rs / np.maximum((P * AP).sum(0), 1e-30)
        X += step * P
        R -= step * AP
        rs_new = (R * R).sum(0)
        if np.all(rs_new <= stop):
            break
        P = R + (rs_new / np.maximum(rs, 1e-30)) * P
        rs = rs_new
    return X


# ----------------------------------------------------------------------------- fine-tuning


class _Classifier(nn.Module):
    def __init__(self, encoder: nn.Module, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.out_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.encoder(x)))  # (N, C) logits


class FineTuner:
    """Fine-tune an encoder artifact plus a linear head on labelled images.

    epochs:           passes over the labelled set (at least ``min_steps`` steps in all).
    lr, encoder_lr:   AdamW rates of the head and of the encoder (lower: keep features).
    dropout:          on the embedding before the head; also drives MC-dropout samples.
    crop_scale:       light random-resized-crop + flip augmentation.
    Learned: ``model_`` (encoder + head), ``n_classes_``.
    """

    def __init__(
        self,
        artifact: EncoderArtifact,
        epochs: int = 30,
        min_steps: int = 300,
        batch_size: int = 128,
        lr: float = 2e-3,
        encoder_lr: float = 1e-3,
        weight_decay: float = 1e-4,
        dropout: float = 0.2,
        crop_scale: tuple[float, float] = (0.6, 1.0),
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        self.artifact = artifact
        self.epochs = epochs
        self.min_steps = min_steps
        self.batch_size = batch_size
        self.lr = lr
        self.encoder_lr = encoder_lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.crop_scale = crop_scale
        self.seed = seed
        self.device = device

    def _start(
        self, n_classes: int, head_init: tuple[np.ndarray, np.ndarray] | None, dropout: float
    ) -> tuple[torch.device, torch.Generator, _Classifier, torch.optim.Optimizer]:
        """Device, seeded generator, encoder + head (from the probe's (W, b) if given) in training
        mode, and AdamW with the encoder's lower rate (each group keeps its ``base`` rate)."""
        dev = pick_device(self.device)
        torch.manual_seed(self.seed)
        g = torch.Generator(device=dev).manual_seed(self.seed)
        model = _Classifier(self.artifact.build(), n_classes, dropout)
        if head_init is not None:
            W, b = head_init
            with torch.no_grad():
                model.head.weight.copy_(torch.from_numpy(W))
                model.head.bias.copy_(torch.from_numpy(b))
        model = model.to(dev, memory_format=torch.channels_last).train()
        opt = torch.optim.AdamW(
            [
                {"params": model.encoder.parameters(), "lr": self.encoder_lr, "base": self.encoder_lr},
                {"params": model.head.parameters(), "lr": self.lr, "base": self.lr},
            ],
            weight_decay=self.weight_decay,
        )
        return dev, g, model, opt

    @staticmethod
    def _decay(opt: torch.optim.Optimizer, step: int, steps: int) -> None:
        """Cosine decay of every group's ``base`` rate to zero over ``steps``."""
        for group in opt.param_groups:
            group["lr"] = group["base"] * 0.5 * (1 + math.cos(math.pi * step / steps))

    @staticmethod
    def _report(done: int, steps: int, what: str, progress, should_stop, every: int = 100) -> None:
        """Every ``every`` steps: stop if asked (:class:`TrainingCancelled`), else report progress."""
        if done % every:
            return
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"{what} stopped at step {done}")
        if progress is not None:
            progress(done / steps, f"{what}: step {done:,} of {steps:,}")

    def fit(
        self,
        x: torch.Tensor,
        y: np.ndarray,
        n_classes: int,
        head_init: tuple[np.ndarray, np.ndarray] | None = None,
        progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> FineTuner:
        """x: adapted uint8 images (N, C, S, S); y: (N,) int labels; head_init: (W, b) from a probe.
        progress(fraction, message) every 100 steps; should_stop() as often (then
        :class:`TrainingCancelled`)."""
        dev, g, model, opt = self._start(n_classes, head_init, self.dropout)
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
        n = len(yt)
        bs = min(self.batch_size, n)
        steps = max(self.min_steps, self.epochs * math.ceil(n / bs))
        perm, pos = torch.randperm(n), 0
        for step in range(steps):
            if pos + bs > n:
                perm, pos = torch.randperm(n), 0
            idx = perm[pos : pos + bs]
            pos += bs
            xb = (x[idx].to(dev).float() / 255).contiguous(memory_format=torch.channels_last)
            xb = random_resized_crop(xb, self.crop_scale, (3 / 4, 4 / 3), True, g)
            self._decay(opt, step, steps)
            loss = F.cross_entropy(model(xb), yt[idx].to(dev), label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self._report(step + 1, steps, "fine-tuning", progress, should_stop)
        self.model_ = model.cpu().eval()
        self.n_classes_ = n_classes
        return self

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        return self.mc_proba(x, samples=0, batch_size=batch_size)[0]

    @torch.no_grad()
    def mc_proba(self, x: torch.Tensor, samples: int, batch_size: int = 1024, seed: int = 0) -> np.ndarray:
        """(T, N, C) with dropout on (MC dropout, Gal and Ghahramani, 2016); T=0 gives the
        deterministic (1, N, C) prediction. Features are computed once per chunk."""
        model = self.model_.to(memory_format=torch.channels_last)
        torch.manual_seed(seed)
        t = max(samples, 1)
        out = np.empty((t, x.shape[0], self.n_classes_), dtype=np.float32)
        for start in range(0, x.shape[0], batch_size):
            xb = (x[start : start + batch_size].float() / 255).contiguous(memory_format=torch.channels_last)
            h = model.encoder(xb)  # (B, d)
            for i in range(t):
                hi = F.dropout(h, model.dropout.p, training=True) if samples > 0 else h
                out[i, start : start + batch_size] = F.softmax(model.head(hi), dim=1).numpy()
        return out


class ConsistencyTuner(FineTuner):
    """FixMatch (Sohn et al., 2020, "FixMatch: Simplifying Semi-Supervised Learning with Consistency
    and Confidence") on an encoder artifact: each step takes ``batch_size`` labelled images (light
    crop + flip, cross-entropy on their labels) and ``unlabelled_ratio`` times as many pool images;
    the model labels a weak view of each (crop of 0.8-1 + flip), and where its top class has
    p >= ``threshold`` a strong view (the SimCLR augmentations with crops of 0.3-1, then cutout) is
    trained towards that class. Encoder at a lower rate, head started from the probe, cosine decay.
    Measured (docs/models_zoo.md): Fashion-MNIST, 200 labels, 10,000 steps on an H100 (~100 s):
    +1.9 / +2.9 points over label spreading + probe on two seeds; on 2 CPU cores 1,500 steps took
    3 minutes for +1.1. Prediction, MC dropout and export are :class:`FineTuner`'s.
    """

    def __init__(
        self,
        artifact: EncoderArtifact,
        steps: int = 10_000,
        batch_size: int = 64,
        unlabelled_ratio: int = 7,
        threshold: float = 0.95,
        lr: float = 2e-3,
        encoder_lr: float = 5e-4,
        weight_decay: float = 1e-4,
        dropout: float = 0.2,
        cutout_size: float = 0.4,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        super().__init__(
            artifact, batch_size=batch_size, lr=lr, encoder_lr=encoder_lr, weight_decay=weight_decay,
            dropout=dropout, seed=seed, device=device,
        )  # fmt: skip
        self.steps = steps
        self.unlabelled_ratio = unlabelled_ratio
        self.threshold = threshold
        self.cutout_size = cutout_size

    def fit(
        self,
        x: torch.Tensor,
        labels: np.ndarray,
        n_classes: int,
        head_init: tuple[np.ndarray, np.ndarray] | None = None,
        progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> ConsistencyTuner:
        """x: the whole pool, adapted uint8 (N, C, S, S); labels: (N,) int, -1 where unlabelled.
        progress(fraction, message) is called every 100 steps; should_stop() is asked as often and
        ends the training with :class:`TrainingCancelled`.
        Learned: ``model_`` (encoder + head, on the CPU), ``n_classes_``, ``mask_rate_`` (share of
        the last 100 steps' pool images confident enough to train on)."""
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (x.shape[0],):
            raise ValueError(f"labels must have shape ({x.shape[0]},), got {labels.shape}")
        li, ui = np.flatnonzero(labels >= 0), np.flatnonzero(labels < 0)
        if li.size == 0:
            raise ValueError("need at least one label")
        dev, g, model, opt = self._start(n_classes, head_init, 0.0)  # dropout only for MC samples
        g_batch = torch.Generator().manual_seed(self.seed + 1)  # batch draws, on the CPU with the pool
        y = torch.from_numpy(labels)
        li_t, ui_t = torch.from_numpy(li), torch.from_numpy(ui if ui.size else li)
        n_l, n_u = self.batch_size, self.batch_size * self.unlabelled_ratio
        strong = AugmentConfig(crop_scale=(0.3, 1.0))
        kept: deque[torch.Tensor] = deque(maxlen=100)  # the last 100 steps' confident shares
        for step in range(self.steps):
            # The pool stays where it is (a large one need not fit on the GPU); a batch travels.
            bl = li_t[torch.randint(0, li_t.numel(), (n_l,), generator=g_batch)]
            bu = ui_t[torch.randint(0, ui_t.numel(), (n_u,), generator=g_batch)]
            xl = random_resized_crop(x[bl].to(dev).float() / 255, (0.6, 1.0), (3 / 4, 4 / 3), True, g)
            xu = x[bu].to(dev).float() / 255
            weak = random_resized_crop(xu, (0.8, 1.0), (3 / 4, 4 / 3), True, g)
            hard = cutout(augment(xu, strong, g), self.cutout_size, g)
            self._decay(opt, step, self.steps)
            with torch.no_grad():
                conf, target = F.softmax(model(weak.contiguous(memory_format=torch.channels_last)), 1).max(1)
                mask = (conf >= self.threshold).float()
            logits = model(torch.cat([xl, hard]).contiguous(memory_format=torch.channels_last))
            loss = (
                F.cross_entropy(logits[:n_l], y[bl].to(dev))
                + (F.cross_entropy(logits[n_l:], target, reduction="none") * mask).mean()
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            kept.append(mask.mean().detach())
            self._report(step + 1, self.steps, "consistency training", progress, should_stop)
        model.dropout.p = self.dropout
        self.model_ = model.cpu().eval()
        self.n_classes_ = n_classes
        self.mask_rate_ = float(torch.stack(list(kept)).mean()) if kept else 0.0
        return self


# ----------------------------------------------------------------------------- the learner


@dataclass
class LearnerConfig:
    """mode:                   ``auto`` (by :func:`choose_mode`), ``probe`` (labelled only),
                               ``propagate``, ``consistency`` or ``finetune``.
    finetune_min_labels:      the rule's threshold: fine-tune from this many labels on, where the
                              second view cannot act (off, no images, or a pool over
                              ``second_view_max_pool``).
    finetune_min_labels_with_view: the threshold where it can: propagation with the view stays
                              ahead of fine-tuning for longer (docs/models_zoo.md, crossover).
    knn:                      neighbours per image in the propagation graph.
    alpha:                    label spreading's propagation strength.
    pseudo_label_threshold:   minimum spread confidence for a pool image to join the probe.
    max_pseudo_labels:        at most this many pool images (the most confident) join the
                              probe: logistic regression time grows with it.
    C:                        logistic regression's inverse regularisation.
    dropout, mc_samples:      MC-dropout rate and the default number of samples T.
    finetune:                 keyword options for :class:`FineTuner`.
    consistency_steps:        below ``finetune_min_labels``, this many steps of
                              :class:`ConsistencyTuner` after the probe (needs the images);
                              ``None``: ``CONSISTENCY_STEPS_ON_GPU`` where CUDA is present, 0
                              on a CPU (3 minutes for 1,500 steps on 2 cores, +1.1 points).
    consistency:              keyword options for :class:`ConsistencyTuner`.
    second_view:              ``"hog"``: below ``finetune_min_labels``, a probe on HOG features of the
                              images (:mod:`models_zoo.views`) joins the embedding's when
                              ``second_view_folds``-fold cross-validation on the labels says mixing
                              it in helps (needs the images); ``None``: off.
    second_view_weight:       its weight in the mixture of the two probes' probabilities.
    second_view_min_labels:   fewer labels than this: no cross-validation, no second view.
    second_view_max_pool:     pools larger than this: no second view (its features take D floats
                              an image: 1,296 at 28 px, 5 GB for a million images).
    second_view_p:            when the previous round took the view, cross-validation drops it
                              only at this one-sided sign-test level (:func:`second_view_helps`).
    """

    mode: str = "auto"
    finetune_min_labels: int = 1000
    finetune_min_labels_with_view: int = 3000
    knn: int = 20
    alpha: float = 0.99
    pseudo_label_threshold: float = 0.0
    max_pseudo_labels: int = 10000
    C: float = 1.0
    dropout: float = 0.2
    mc_samples: int = 10
    finetune: dict | None = None
    consistency_steps: int | None = None
    consistency: dict | None = None
    second_view: str | None = "hog"
    second_view_weight: float = 0.5
    second_view_folds: int = 5
    second_view_min_labels: int = 100
    second_view_max_pool: int = 200_000
    second_view_p: float = 0.05


CONSISTENCY_STEPS_ON_GPU = 10_000  # ~100 s on an H100 at 28 px (docs/models_zoo.md)


def choose_mode(n_labels: int, can_finetune: bool, config: LearnerConfig, pool_size: int = 0) -> str:
    """The rule: propagate + probe below the fine-tune threshold, followed by consistency training
    where it runs (``consistency``, see :func:`consistency_steps`); fine-tune from there on. The
    threshold is ``finetune_min_labels_with_view`` where the second view can act on a pool of
    ``pool_size`` images, else ``finetune_min_labels`` (measured crossovers in docs/models_zoo.md)."""
    if config.mode != "auto":
        return config.mode
    if can_finetune and n_labels >= finetune_threshold(can_finetune, config, pool_size):
        return "finetune"
    return "consistency" if can_finetune and consistency_steps(config) > 0 else "propagate"


def finetune_threshold(can_finetune: bool, config: LearnerConfig, pool_size: int = 0) -> int:
    """Labels from which :func:`choose_mode` fine-tunes (on a pool of ``pool_size`` images)."""
    view = view_can_act(can_finetune, config, pool_size)
    return config.finetune_min_labels_with_view if view else config.finetune_min_labels


def view_can_act(can_finetune: bool, config: LearnerConfig, pool_size: int = 0) -> bool:
    """Whether the second view is on and possible on a pool of ``pool_size`` images (an encoder and
    the images at hand), whatever the number of labels."""
    return can_finetune and bool(config.second_view) and pool_size <= config.second_view_max_pool


def consistency_steps(config: LearnerConfig) -> int:
    """Steps of consistency training the config asks for on this machine."""
    if config.consistency_steps is not None:
        return config.consistency_steps
    return CONSISTENCY_STEPS_ON_GPU if torch.cuda.is_available() else 0


def uses_images(n_labels: int, can_finetune: bool, config: LearnerConfig, pool_size: int = 0) -> bool:
    """Whether :meth:`Learner.fit` and its predictions need the pool's images, not only their
    embeddings (fine-tuning and consistency training do, and the second view below fine-tuning, from
    ``second_view_min_labels`` labels on a pool of at most ``second_view_max_pool`` images)."""
    mode = choose_mode(n_labels, can_finetune, config, pool_size)
    view = view_can_act(can_finetune, config, pool_size) and n_labels >= config.second_view_min_labels
    return mode in ("finetune", "consistency") or (mode == "propagate" and view)


def _pseudo_labelled_probe(
    F: np.ndarray, labels: np.ndarray, P: np.ndarray, cfg: LearnerConfig, seed: int
) -> LinearProbe:
    """A probe on features F (N, f) from the labelled items (weight 1) and the most confident
    spread labels P (N, C) of the pool (weight = confidence, at most ``max_pseudo_labels``)."""
    labelled = labels >= 0
    conf = P.max(1)
    pseudo = P.argmax(1)
    keep = labelled | (conf >= cfg.pseudo_label_threshold)
    if keep.sum() > cfg.max_pseudo_labels:
        cut = np.sort(conf[keep & ~labelled])[-cfg.max_pseudo_labels]
        keep &= labelled | (conf >= cut)
    weight = np.where(labelled, 1.0, conf)[keep]
    return LinearProbe(C=cfg.C, seed=seed).fit(F[keep], pseudo[keep], weight)


def second_view_helps(
    Z: np.ndarray,
    H: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    cfg: LearnerConfig,
    seed: int,
    judge: np.ndarray | None = None,
    incumbent: bool | None = None,
    on_fold: Callable[[int, int], None] | None = None,
    operator: sp.csr_matrix | None = None,
) -> tuple[bool, list[float]]:
    """Cross-validation on the labels: each fold's labels are held out, spread over Z's graph from
    the others, and a probe on H is fitted to the others; the held-out accuracy of the spread labels
    alone is compared with their mixture with the probe's probabilities at half and at the full
    ``second_view_weight``. Returns (the view helps, [accuracy at weights 0, w/2, w]).

    judge: (N,) bool, the labelled items whose held-out accuracy counts: labels that sample the
        pool (picked at random or for typicality). Labels an uncertainty strategy picked sit on
        the class boundaries, and there cross-validation turns against a view that helps on the
        pool (docs/models_zoo.md, "Judged on a sample of the pool"). Every label still trains every fold. None, or
        fewer than ``second_view_min_labels`` such items: all labels are judged.
    incumbent: the previous round's decision. None or False: the better held-out accuracy wins
        (the view needs either mixture above the spread labels alone). True: the view stays unless
        a one-sided sign test over the held-out items that the better mixture and the spread
        labels alone get differently rejects it at ``second_view_p``, so noise in the estimate
        does not switch the view on and off between rounds. Only a "yes" is protected: a "no"
        made early on few held-out items would otherwise stick (docs/models_zoo.md).
    on_fold: called as ``on_fold(k, folds)`` before fold k (0-based): progress, or a cancel."""
    labelled = labels >= 0
    judged = labelled & judge if judge is not None else labelled
    if np.count_nonzero(judged) < cfg.second_view_min_labels:
        judged = labelled
    idx = np.flatnonzero(judged)
    np.random.default_rng(seed).shuffle(idx)
    weights = (0.0, cfg.second_view_weight / 2, cfg.second_view_weight)
    right = np.zeros((len(weights), len(labels)), dtype=bool)
    seen = np.zeros(len(labels), dtype=bool)
    for fold in range(cfg.second_view_folds):
        if on_fold is not None:
            on_fold(fold, cfg.second_view_folds)
        held = idx[fold :: cfg.second_view_folds]
        rest = labels.copy()
        rest[held] = -1
        train = rest >= 0
        if held.size == 0 or np.unique(rest[train]).size < 2:
            continue
        P = label_spreading(Z, rest, n_classes, k=cfg.knn, alpha=cfg.alpha, operator=operator)[held]
        ph = LinearProbe(C=cfg.C, seed=seed).fit(H[train], rest[train]).predict_proba(H[held], n_classes)
        for j, w in enumerate(weights):
            right[j, held] = ((1 - w) * P + w * ph).argmax(1) == labels[held]
        seen[held] = True
    n = int(seen.sum())
    acc = (right[:, seen].sum(1) / max(n, 1)).tolist()
    if n == 0:
        return False, acc
    best = 1 + int(np.argmax(acc[1:]))
    if not incumbent:
        return acc[best] > acc[0], acc
    gains = int(np.count_nonzero(right[best] & ~right[0]))  # the mixture right, spread alone wrong
    losses = int(np.count_nonzero(right[0] & ~right[best]))
    return sign_test_p(losses, gains + losses) >= cfg.second_view_p, acc


def sign_test_p(k: int, n: int) -> float:
    """One-sided sign test: the chance of k or more successes in n fair coin flips."""
    return float(binom.sf(k - 1, n, 0.5)) if n > 0 else 1.0


class Learner:
    """The classifier the service trains after each labelling round.

    artifact: an encoder artifact, or ``None`` to work on given features (pixels or any
    embedding; fine-tuning then is unavailable). Inputs to ``fit``/``predict_*`` are uint8
    images (N,H,W[,C]) when an artifact is set, else float features (N, d).
    Learned: ``mode_``, ``n_classes_``, ``probe_``, ``finetuner_``, ``pool_proba_``.
    """

    def __init__(
        self, artifact: EncoderArtifact | None = None, config: LearnerConfig | None = None, seed: int = 0
    ):
        self.artifact = artifact
        self.config = config
        self.seed = seed

    def _features(self, X: np.ndarray) -> np.ndarray:
        if self.artifact is None:
            return np.asarray(X, dtype=np.float32)
        return embed_tensor(self.artifact.build(), self.artifact.adapt(X))

    def fit(
        self,
        X: np.ndarray,
        labels: np.ndarray,
        n_classes: int | None = None,
        features: np.ndarray | None = None,
        progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        judge: np.ndarray | None = None,
        view_before: bool | None = None,
    ) -> Learner:
        """X: the whole pool (images or features); labels: (N,) int, -1 where unlabelled.
        features: precomputed pool embeddings (skips embedding ``X`` again).
        progress, should_stop: passed to fine-tuning or consistency training, the long steps.
        judge, view_before: for the second view's decision (:func:`second_view_helps`'s ``judge``
        and ``incumbent``): which labels sample the pool, and whether the previous round's model
        judged the view helpful (its ``view_decision``); None: all labels judge, no incumbent."""
        cfg = self.config or LearnerConfig()
        labels = np.asarray(labels, dtype=np.int64)
        labelled = labels >= 0
        if not labelled.any():
            raise ValueError("need at least one label")
        self.n_classes_ = n_classes or int(labels.max()) + 1
        Z = features if features is not None else self._features(X)
        self.mode_ = choose_mode(
            int(labelled.sum()), self.artifact is not None and X is not None, cfg, len(labels)
        )
        if self.mode_ in ("finetune", "consistency") and (self.artifact is None or X is None):
            raise ValueError(f"{self.mode_} needs an encoder artifact and the images")
        self.view_weight_, self.view_probe_, self.view_cv_ = 0.0, None, None
        # Before fine-tuning or consistency training (the steps that report their own progress)
        # there are a few steps of seconds to minutes each on a large pool: said as they start, and
        # a cancel is honoured between them. In a propagate fit they span the whole of [0, 1].
        share = 1.0 if self.mode_ == "propagate" else 0.1

        def stage(fraction: float, what: str) -> None:
            if should_stop is not None and should_stop():
                raise TrainingCancelled(f"stopped before {what}")
            if progress is not None:
                progress(share * fraction, what)

        if self.mode_ in ("propagate", "consistency") and not labelled.all():
            stage(0.0, f"spreading {int(labelled.sum()):,} labels over the pool")
            A = spreading_operator(Z, k=cfg.knn, alpha=cfg.alpha)  # one graph for every spreading below
            P = label_spreading(Z, labels, self.n_classes_, k=cfg.knn, alpha=cfg.alpha, operator=A)  # (N, C)
            H = None
            if self._second_view_wanted(X, labels, cfg):
                stage(0.1, "HOG features of the pool (the second view)")
                H = self._second_view(X, labels, cfg)
            if H is not None:
                helps, self.view_cv_ = second_view_helps(
                    Z, H, labels, self.n_classes_, cfg, self.seed, judge=judge, incumbent=view_before,
                    on_fold=lambda k, n: stage(0.2 + 0.4 * k / n, f"judging the second view: fold {k + 1} of {n}"),
                    operator=A,
                )  # fmt: skip
                if helps:
                    # Co-training's idea (Blum and Mitchell 1998): the HOG probe's view of the pool
                    # corrects the spread labels both probes then learn from.
                    w = self.view_weight_ = cfg.second_view_weight
                    ph = LinearProbe(C=cfg.C, seed=self.seed).fit(H[labelled], labels[labelled])
                    P = (1 - w) * P + w * ph.predict_proba(H, self.n_classes_)
                    P[labelled] = np.eye(self.n_classes_)[labels[labelled]]
                    stage(0.65, "fitting the HOG probe to the spread labels")
                    self.view_probe_ = _pseudo_labelled_probe(H, labels, P, cfg, self.seed)
            stage(0.85, "fitting the embedding's probe to the spread labels")
            self.probe_ = _pseudo_labelled_probe(Z, labels, P, cfg, self.seed)
            self.pool_proba_ = P
        else:
            stage(0.0, f"fitting the probe to {int(labelled.sum()):,} labels")
            self.probe_ = LinearProbe(C=cfg.C, seed=self.seed).fit(Z[labelled], labels[labelled])
        self.finetuner_ = None
        after_stages = None if progress is None else (lambda f, what: progress(share + (1 - share) * f, what))
        if self.mode_ == "finetune":
            opts = {"dropout": cfg.dropout, "seed": self.seed, **(cfg.finetune or {})}
            x = self.artifact.adapt(X[labelled])
            self.finetuner_ = FineTuner(self.artifact, **opts).fit(
                x,
                labels[labelled],
                self.n_classes_,
                head_init=self.probe_.linear_weights_full(self.n_classes_),
                progress=after_stages,
                should_stop=should_stop,
            )
        elif self.mode_ == "consistency":
            opts = {"dropout": cfg.dropout, "seed": self.seed, **(cfg.consistency or {})}
            self.finetuner_ = ConsistencyTuner(self.artifact, steps=consistency_steps(cfg), **opts).fit(
                self.artifact.adapt(X),
                labels,
                self.n_classes_,
                head_init=self.probe_.linear_weights_full(self.n_classes_),
                progress=after_stages,
                should_stop=should_stop,
            )
        return self

    @property
    def view_decision(self) -> bool | None:
        """Whether this fit judged the second view helpful, None where it did not judge it (too few
        labels, fine-tuning, no images): what the next round passes as ``view_before``."""
        if getattr(self, "view_cv_", None) is None:
            return None
        return bool(self.view_weight_)

    def _second_view_wanted(self, X: np.ndarray | None, labels: np.ndarray, cfg: LearnerConfig) -> bool:
        return not (
            cfg.second_view != "hog"
            or self.artifact is None
            or X is None
            or len(X) > cfg.second_view_max_pool
            or np.count_nonzero(labels >= 0) < cfg.second_view_min_labels
        )

    def _second_view(self, X: np.ndarray | None, labels: np.ndarray, cfg: LearnerConfig) -> np.ndarray | None:
        """HOG features (N, D) of the images when the second view may be used, else None."""
        if not self._second_view_wanted(X, labels, cfg):
            return None
        return self._hog(X)

    def _hog(self, X: np.ndarray) -> np.ndarray:
        """HOG features of ``X``, kept for the array last given (the very object): a retrain fits on
        the pool, then predicts on it and may draw MC samples, and each computed them again (6 s at
        60,000 images). Not saved with the learner (see __getstate__)."""
        cached = getattr(self, "_hog_cache", None)
        if cached is not None and cached[0] is X:
            return cached[1]
        H = hog_features(self.artifact.adapt(X))
        self._hog_cache = (X, H)
        return H

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_hog_cache", None)
        return state

    def _mix_view(self, p: np.ndarray, X: np.ndarray | None) -> np.ndarray:
        # (..., N, C) probabilities of the embedding's probe, mixed with the HOG probe's if it joined.
        w = getattr(self, "view_weight_", 0.0)  # learners saved before the second view have none
        if not w:
            return p
        if X is None:
            raise ValueError("this model also reads HOG features of the images: pass them")
        ph = self.view_probe_.predict_proba(self._hog(X), self.n_classes_)
        return (1 - w) * p + w * ph

    def predict_proba(self, X: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """(N, C) class probabilities."""
        if self.finetuner_ is not None:
            return self.finetuner_.predict_proba(self.artifact.adapt(X))
        Z = features if features is not None else self._features(X)
        return self._mix_view(self.probe_.predict_proba(Z, self.n_classes_), X)

    def predict(self, X: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """(N,) predicted class."""
        return self.predict_proba(X, features).argmax(1)

    def mc_proba(
        self, X: np.ndarray, samples: int | None = None, features: np.ndarray | None = None
    ) -> np.ndarray:
        """(T, N, C) stochastic predictions for epistemic estimates such as BALD."""
        cfg = self.config or LearnerConfig()
        t = samples or cfg.mc_samples
        if self.finetuner_ is not None:
            return self.finetuner_.mc_proba(self.artifact.adapt(X), t, seed=self.seed)
        Z = features if features is not None else self._features(X)
        return self._mix_view(self.probe_.mc_proba(Z, t, cfg.dropout, self.seed, self.n_classes_), X)

    def torch_head(self) -> nn.Module:
        """The final linear head (on raw embeddings) as a torch module, for export."""
        if self.finetuner_ is not None:
            return self.finetuner_.model_.head
        return linear_head(*self.probe_.linear_weights_full(self.n_classes_))

    def encoder_module(self) -> nn.Module:
        if self.artifact is None:
            raise ValueError("a learner on given features has no encoder to export")
        return self.finetuner_.model_.encoder if self.finetuner_ is not None else self.artifact.build()
