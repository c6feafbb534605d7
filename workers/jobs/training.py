"""Training jobs: pretrain -> embed (chunked, a Celery group) -> select at cold start, and the
cycle finetune -> predict -> select after every K labels.

Each step writes its artifact whole, verifies it, then creates the version row and switches the
project's current pointer in one transaction. Steps are keyed by the Job they serve, so a task
delivered twice (a worker killed mid-way) finds its own earlier output and carries on.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labelling.catalog import MIN_PRETRAIN_POOL, NEEDS_MODEL
from labelling.models import (
    Annotation,
    EncoderVersion,
    Image,
    Job,
    ModelVersion,
    Project,
    QueueItem,
    SelectionRound,
)
from labelling.models.image import ImageStatus
from labelling.models.job import JobKind, JobState
from labelling.selectors.metrics import (
    given_labels,
    labelled_training_images,
    newest_per_count,
    wilson_interval,
)
from labelling.services.jobs import job_fail, job_finish, job_is_cancelled, job_progress
from labelling.services.queue import Pick, queue_fill
from labelling.services.training import encoder_version_publish, job_follow_up, model_version_publish
from workers.jobs.base import PENDING, JobCancelled
from workers.jobs.pool import decode_images, images_for, pool_array, pool_images
from workers.jobs.storage import load_npy, local_copy, scratch_dir, store_file, store_npy
from workers.runtime import cpu_threads
from workers.shutdown import JobHandedBack, worker_stopping

log = logging.getLogger(__name__)

EMBED_CHUNK = 4096
# Pool images whose predictions every model version stores for the stop rule: the size it was
# measured at. Its kappa need not be labelled, so it can be large (Bloodgood & Grothendieck 2015):
# over random stop sets of 1,000 / 2,000 / 5,000 the round it fires at spread by 1.7 / 1.1 / 0.8
# rounds (docs/selection.md, "Stop rule"), at ~35 KB of metrics per version for 2,000.
STOP_SET_SIZE = 2000
# The stop rule compares model versions at least this many training labels apart, whatever the
# retrain cadence: kappa between versions 20 labels apart (the default cycle) rose to 0.99 about
# 500 labels before the accuracy plateau, 100 apart after it (docs/selection.md, "Stop rule").
STOP_RULE_SPACING = 100
# Audit labels the newest model version must have been measured on before a forecast is made: with
# 5, an accuracy reads 100 % (44-100 %) and the curve says the target is reached (a review's finding).
MIN_AUDIT_FOR_FORECAST = 10


def _torch_setup() -> None:
    import torch

    torch.set_num_threads(cpu_threads())


def _stopper(job_id: int, every: float = 2.0):
    last = [0.0, False]

    def should_stop() -> bool:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0], last[1] = now, job_is_cancelled(job_id=job_id) or worker_stopping(every=0)
        return last[1]

    return should_stop


# --- pretrain -------------------------------------------------------------------------------------


def pretrain(job: Job, progress) -> dict[str, Any]:
    from models_zoo.artifact import EncoderArtifact
    from models_zoo.train import CheckpointMismatch, PretrainConfig, TrainingCancelled
    from models_zoo.train import pretrain as zoo_pretrain

    _torch_setup()
    existing = EncoderVersion.objects.filter(job=job).first()
    if existing is not None:  # redelivered after the version was written: only the follow-up is left
        return _after_pretrain(job, existing)
    project = job.project
    params = job.params
    progress(0.0, "decoding the pool", force=True)
    ids, X = pool_array(project, progress=lambda f: progress(0.05 * f, "decoding the pool"))
    if len(ids) < MIN_PRETRAIN_POOL:
        raise ValueError(f"the pool has {len(ids)} images; pretraining needs at least {MIN_PRETRAIN_POOL}")
    init = None
    parent = None
    if params.get("from_encoder"):
        parent = EncoderVersion.objects.get(pk=params["from_encoder"])
        with local_copy(parent.artifact_key) as path:
            init = EncoderArtifact.load(path)
    if params.get("upload_key"):
        with local_copy(params["upload_key"]) as path:
            try:
                init = EncoderArtifact.load(path)
            except Exception as exc:
                raise ValueError(
                    f"the uploaded file is not a models_zoo encoder checkpoint ({exc})"
                ) from None
        if not params.get("max_minutes") and not params.get("max_steps"):
            return _publish_encoder(job, project, init, X, source="upload", parent=None, pretrain_config={})
    cfg = PretrainConfig(
        method=params.get("method", "simclr"),
        max_minutes=params.get("max_minutes", settings.PRETRAIN_MINUTES),
        max_steps=params.get("max_steps"),
        batch_size=min(int(params.get("batch_size", 256)), max(8, len(ids))),
        seed=int(params.get("seed", 0)),
        threads=cpu_threads(),
        checkpoint_every=int(params.get("checkpoint_every", 50)),
    )
    checkpoint = pretrain_checkpoint_path(job)
    resumed_from = _checkpoint_step(checkpoint)
    if resumed_from:
        progress(0.05, f"resuming from the checkpoint at step {resumed_from}", force=True)
    started = time.monotonic()

    def report(fraction: float, info: dict) -> None:
        speed = info.get("images_per_s")
        message = f"step {info.get('step', '?')}, loss {info.get('loss', float('nan')):.3f}"
        if speed:
            message += f", {speed:,.0f} images/s"
        job_progress(job_id=job.id, fraction=0.05 + 0.9 * fraction, message=message)

    try:
        try:
            artifact = zoo_pretrain(
                X, cfg, checkpoint_path=checkpoint, progress=report, should_stop=_stopper(job.id), init=init
            )
        except CheckpointMismatch:
            # Left by another run (other pool or config): not this job's progress; start over.
            log.warning("discarding checkpoint %s written for other data or config", checkpoint)
            checkpoint.unlink(missing_ok=True)
            resumed_from = 0
            artifact = zoo_pretrain(
                X, cfg, checkpoint_path=checkpoint, progress=report, should_stop=_stopper(job.id), init=init
            )
    except TrainingCancelled:
        if worker_stopping(every=0):
            raise JobHandedBack() from None  # the checkpoint just written is where the next worker resumes
        checkpoint.unlink(missing_ok=True)  # a cancelled job never resumes
        raise JobCancelled() from None
    except Exception:
        checkpoint.unlink(missing_ok=True)  # nor does a failed one (a killed worker raises nothing)
        raise
    artifact.metadata.update(
        {
            "job": job.id,
            "pool_size": int(len(ids)),
            "wall_seconds": time.monotonic() - started,
            "resumed_from_step": resumed_from,
        }
    )
    checkpoint.unlink(missing_ok=True)
    source = "transfer" if (parent or params.get("upload_key")) else "pretrain"
    return _publish_encoder(
        job, project, artifact, X, source=source, parent=parent, pretrain_config=cfg.to_dict()
    )


def pretrain_checkpoint_path(job: Job) -> Path:
    """Where this job's pretraining checkpoints go: keyed by the job and its creation time, so a
    job of a recreated database can never pick up another job's file."""
    return scratch_dir() / f"pretrain-job-{job.id}-{int(job.created_at.timestamp())}.pt"


def _checkpoint_step(path: Path) -> int:
    """The step a checkpoint left by an interrupted run of this job reached (0: none)."""
    if not path.exists():
        return 0
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["state"]["step"])
    except Exception:  # an unreadable checkpoint is started over, not trusted
        path.unlink(missing_ok=True)
        return 0


def _publish_encoder(job, project, artifact, X, *, source, parent, pretrain_config) -> dict[str, Any]:
    from models_zoo.artifact import EncoderArtifact

    key = f"encoders/{project.id}/job-{job.id}.pt"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "encoder.pt"
        artifact.save(local)
        check = EncoderArtifact.load(local)  # verify before anything points at it
        z = check.embed(X[:2])
        if not np.isfinite(z).all():
            raise ValueError("the trained encoder produces non-finite embeddings")
        store_file(local, key)
    with transaction.atomic():
        version, _ = EncoderVersion.objects.get_or_create(
            job=job,
            defaults={
                "project": project,
                "source": source,
                "parent": parent,
                "artifact_key": key,
                "config": {**artifact.config.to_dict(), "pretrain": _jsonable(pretrain_config)},
                "metadata": _jsonable(artifact.metadata),
            },
        )
    return _after_pretrain(job, version)


def _unless_cancelled(job_id: int) -> None:
    """Call inside the transaction that makes a job's work visible (a current model, a queued round,
    the follow-up job): holds the job's row so a cancel waits for the commit, and raises
    JobCancelled if the job was cancelled already, or deleted with its project (the transaction then
    rolls back)."""
    state = Job.objects.select_for_update().filter(pk=job_id).values_list("state", flat=True).first()
    if state is None or state == JobState.CANCELLED:  # None: deleted with its project
        raise JobCancelled()


def _after_pretrain(job: Job, version: EncoderVersion) -> dict[str, Any]:
    with transaction.atomic():
        _unless_cancelled(job.id)
        if not Job.objects.filter(params__after_job=job.id, kind=JobKind.EMBED).exists():
            job_follow_up(job=job, kind=JobKind.EMBED, params={"encoder_version": version.id})
    meta = version.metadata
    done = (
        "taken from the uploaded checkpoint as it is"  # an upload without further training
        if version.source == "upload"
        else f"trained ({meta.get('steps')} steps)"
    )
    return {
        "encoder_version": version.id,
        "steps": meta.get("steps"),
        "images_per_s": meta.get("images_per_s"),
        "_message": f"encoder #{version.id} {done}; embedding the pool next",
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


# --- embed (a Celery group of chunks) -------------------------------------------------------------


def _embedding_keys(version: EncoderVersion, job_id: int, n_chunks: int) -> tuple[str, list[str]]:
    # One set per embed job: a chunk redelivered to the same job finds its shard and skips it, while
    # embedding the pool again (it grew, or lost a flagged image) never reuses an older job's rows.
    base = f"embeddings/{version.project_id}/ev-{version.id}/job-{job_id}"
    return f"{base}/ids.npy", [f"{base}/shard-{i:05d}.npy" for i in range(n_chunks)]


def embed(job: Job, progress) -> Any:
    """Fix the pool's image order, then hand one task per chunk to the workers (a group)."""
    from celery import group

    from workers import tasks

    version = EncoderVersion.objects.get(pk=job.params["encoder_version"])
    ids, _X = pool_array(version.project)  # also warms the decoded-pool cache for the chunks
    n_chunks = max(1, math.ceil(len(ids) / EMBED_CHUNK))
    ids_key, _ = _embedding_keys(version, job.id, n_chunks)
    store_npy(ids, ids_key)
    Job.objects.filter(pk=job.id).update(result={"chunks": n_chunks, "images": int(len(ids))})
    progress(0.0, f"embedding {len(ids):,} images in {n_chunks} chunks", force=True)
    transaction.on_commit(
        lambda: group(tasks.embed_chunk.s(job.id, i) for i in range(n_chunks)).apply_async()
    )
    return PENDING


def embed_chunk(job_id: int, index: int) -> None:
    """Embed one chunk (skipped if its shard exists), then finish the job if it was the last."""
    from models_zoo.artifact import EncoderArtifact

    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.is_finished:
        return
    try:
        version = EncoderVersion.objects.get(pk=job.params["encoder_version"])
        n_chunks = int(job.result["chunks"])
        ids_key, shard_keys = _embedding_keys(version, job_id, n_chunks)
        from django.core.files.storage import default_storage

        if not default_storage.exists(shard_keys[index]):
            _torch_setup()
            ids = load_npy(ids_key)[index * EMBED_CHUNK : (index + 1) * EMBED_CHUNK]
            with local_copy(version.artifact_key) as path:
                artifact = EncoderArtifact.load(path)
            images = list(Image.objects.filter(pk__in=ids.tolist()).order_by("id"))
            # RGB at the encoder's side; the artifact adapts channels by models_zoo's one rule.
            X = decode_images(images, artifact.config.image_size, 3)
            store_npy(artifact.embed(X).astype(np.float32), shard_keys[index])
        done = sum(default_storage.exists(k) for k in shard_keys)
        job_progress(job_id=job_id, fraction=done / n_chunks, message=f"{done} of {n_chunks} chunks embedded")
        if done == n_chunks:
            _finish_embed(job_id, version, ids_key, shard_keys)
    except Exception as exc:
        log.exception("embedding chunk %s of job %s failed", index, job_id)
        job_fail(job_id=job_id, error=f"{type(exc).__name__}: {exc}")


def _finish_embed(job_id: int, version: EncoderVersion, ids_key: str, shard_keys: list[str]) -> None:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.is_finished:  # another chunk finished it first
            return
        first = load_npy(shard_keys[0])
        embedded = load_npy(ids_key)
        count = len(embedded)
        before = version.embeddings or {}
        stale = [k for k in [before.get("ids_key"), *before.get("shards", [])] if k and k != ids_key]
        stale = [k for k in stale if k not in shard_keys]
        version.embeddings = {
            "dim": int(first.shape[1]),
            "count": count,
            "ids_key": ids_key,
            "shards": shard_keys,
            "max_image_id": int(embedded.max()) if count else 0,  # images past it came since
        }
        version.save(update_fields=["embeddings"])
        encoder_version_publish(project=job.project, version=version)
        project = job.project
        cold = project.current_model_id is None
        follow = job_follow_up(job=job, kind=JobKind.SELECT if cold else JobKind.CYCLE)
        job_finish(
            job_id=job_id,
            result={**job.result, "encoder_version": version.id, "next_job": follow.id},
            message=f"{count:,} images embedded; encoder #{version.id} is current",
        )
        transaction.on_commit(lambda: _forget(stale))  # the previous embedding's files


def _forget(keys: list[str]) -> None:
    from django.core.files.storage import default_storage

    for key in keys:
        default_storage.delete(key)


def embeddings_with_new_images(job: Job, version: EncoderVersion, progress) -> tuple[np.ndarray, np.ndarray]:
    """(ids, Z) of ``version``'s embedding, first extended by the pool images added since it was made
    (an upload, an import): without this they would never be selected, and their labels never train.
    The new rows are appended (the earlier rows keep their places), stored as one more shard and a
    new ids file, and published in one transaction; a job cancelled meanwhile changes nothing."""
    from models_zoo.artifact import EncoderArtifact

    ids, Z = load_embeddings(version)
    known = set(ids.tolist())
    new = [im for im in pool_images(version.project) if im.id not in known]
    if not new:
        return ids, Z
    progress(0.01, f"embedding {len(new):,} images added since the pool was embedded", force=True)
    stop = _stopper(job.id)
    with local_copy(version.artifact_key) as path:
        artifact = EncoderArtifact.load(path)
    parts = []
    for s in range(0, len(new), EMBED_CHUNK):
        if stop():
            raise JobHandedBack() if worker_stopping(every=0) else JobCancelled()
        X = decode_images(new[s : s + EMBED_CHUNK], artifact.config.image_size, 3)
        parts.append(artifact.embed(X).astype(np.float32))
    added = np.concatenate(parts)
    if added.shape[1] != Z.shape[1] or not np.isfinite(added).all():
        raise ValueError(f"encoder #{version.id} gave the new images unusable embeddings")
    all_ids = np.concatenate([ids, np.array([im.id for im in new], dtype=np.int64)])
    base = f"embeddings/{version.project_id}/ev-{version.id}/job-{job.id}"
    written = [f"{base}/ids.npy", f"{base}/added-{len(ids)}.npy"]
    store_npy(all_ids, written[0])
    store_npy(added, written[1])
    try:
        with transaction.atomic():
            _unless_cancelled(job.id)
            locked = EncoderVersion.objects.select_for_update().get(pk=version.pk)
            before = locked.embeddings or {}
            if before.get("ids_key") != version.embeddings.get("ids_key"):  # embedded again meanwhile
                raise ValueError("the pool's embedding changed while this job extended it: run the job again")
            locked.embeddings = {
                **before,
                "count": int(len(all_ids)),
                "max_image_id": int(all_ids.max()),
                "ids_key": written[0],
                "shards": [*before["shards"], written[1]],
            }
            locked.save(update_fields=["embeddings"])
            # The old ids file: nothing reads it now (a model's pool_ids_key only names it, to tell
            # whether its stored scores follow the current rows).
            stale = before["ids_key"]
            if stale != locked.embeddings["ids_key"]:
                transaction.on_commit(lambda: _forget([stale]))
    except Exception:  # cancelled (JobCancelled) or failed: the files written for it go with it
        _forget(written)
        raise
    version.embeddings = locked.embeddings
    return all_ids, np.concatenate([Z, added])


def load_embeddings(version: EncoderVersion) -> tuple[np.ndarray, np.ndarray]:
    """(ids (N,), embeddings (N, d) float32) of an encoder version."""
    emb = version.embeddings
    if not emb.get("shards"):
        raise ValueError(f"encoder #{version.id} has no embeddings yet")
    ids = load_npy(emb["ids_key"])
    Z = np.concatenate([load_npy(k) for k in emb["shards"]]).astype(np.float32)
    return ids, Z


# --- labels ---------------------------------------------------------------------------------------


def pool_labels(project: Project, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(training labels, audit labels), each (N,) int class index, -1 where none.

    With several annotations per image the majority wins (ties: the earliest label), unless a
    person reviewed the image (the Review page): then their label is the image's. Audit images'
    labels only ever go to the second array: they never train a model. An audit image whose
    annotators are tied and that nobody reviewed has no audit label: it measures nothing until
    someone decides it (a review: with the earlier of two disagreeing labels taken, a careless
    annotator who always labelled first put the audit accuracy 16 points below the model's).
    """
    order = {
        lc_id: i
        for i, lc_id in enumerate(project.label_classes.order_by("order", "id").values_list("id", flat=True))
    }
    position = {int(image_id): i for i, image_id in enumerate(ids)}
    votes: dict[int, Counter] = {}
    audit: dict[int, bool] = {}
    rows = (
        Annotation.objects.filter(image__project=project)
        .exclude(image__status=ImageStatus.FLAGGED)  # flagged after a co-annotator labelled it
        .order_by("id")
        .values_list("image_id", "label_id", "image__is_audit")
    )
    for image_id, label_id, is_audit in rows:
        votes.setdefault(image_id, Counter())[order[label_id]] += 1
        audit[image_id] = is_audit
    reviewed = dict(
        Image.objects.filter(project=project, reviewed_label__isnull=False)
        .exclude(status=ImageStatus.FLAGGED)
        .values_list("id", "reviewed_label_id")
    )
    train = np.full(len(ids), -1, dtype=np.int64)
    held_out = np.full(len(ids), -1, dtype=np.int64)
    for image_id, counter in votes.items():
        i = position.get(image_id)
        if i is None:
            continue
        if image_id in reviewed:
            label = order[reviewed[image_id]]
        else:
            (label, top), *rest = counter.most_common(2)
            if audit[image_id] and rest and rest[0][1] == top:
                continue  # a tie on an audit image: left out of the measurement until decided
        (held_out if audit[image_id] else train)[i] = label
    return train, held_out


def pool_sample_labels(project: Project, ids: np.ndarray, train: np.ndarray) -> np.ndarray:
    """(N,) bool: the training labels whose image a strategy that samples the pool queued (random,
    typicality or coverage picks, ``auto``'s cold phase): the learner judges its second view on
    these, not on the boundary items an uncertainty strategy picks (``Learner.fit``'s ``judge``)."""
    from models_zoo.selection import samples_pool

    position = {int(image_id): i for i, image_id in enumerate(ids)}
    queued_by: dict[int, str] = {}  # the latest queue item of each image is the one it was labelled from
    rows = (
        QueueItem.objects.filter(project=project, round__isnull=False)
        .order_by("id")
        .values_list("image_id", "round__strategy")
    )
    for image_id, strategy in rows:
        queued_by[image_id] = strategy
    mask = np.zeros(len(ids), dtype=bool)
    for image_id, strategy in queued_by.items():
        i = position.get(image_id)
        if i is not None:
            mask[i] = samples_pool(strategy.removeprefix("auto:"))
    return mask & (train >= 0)


def live_view_decision(project: Project, version: EncoderVersion) -> bool | None:
    """Whether the live model judged the second view helpful (its ``view`` metric), if it was
    trained on encoder ``version``'s embeddings; None where it did not judge it, predates the
    metric or read another encoder's embeddings (the next fit then decides afresh)."""
    live = project.current_model
    if live is None or live.encoder_version_id != version.id:
        return None
    return live.metrics.get("view")


# --- finetune -> predict -> select ----------------------------------------------------------------


def cycle(job: Job, progress) -> dict[str, Any]:
    """The kinds finetune, predict, select and cycle all run here, doing their part of the chain."""
    steps = {
        JobKind.FINETUNE: ("finetune", "predict"),
        JobKind.PREDICT: ("predict",),
        JobKind.SELECT: ("select",),
        JobKind.CYCLE: ("finetune", "predict", "select"),
    }[job.kind]
    project = job.project
    version = project.current_encoder
    if version is None:
        raise ValueError("the project has no encoder yet: run a pretrain job first")
    _torch_setup()
    ids, Z = embeddings_with_new_images(job, version, progress)
    train, audit = pool_labels(project, ids)
    result: dict[str, Any] = {"encoder_version": version.id}
    model = project.current_model
    probs = mc = None
    if "finetune" in steps:
        if (train >= 0).sum() == 0:
            result["finetune"] = "skipped: no training labels yet"
        else:
            progress(0.05, f"training on {(train >= 0).sum()} labels", force=True)
            model, probs, mc = _finetune(
                job, version, ids, Z, train, audit, progress=lambda f, msg: progress(0.05 + 0.4 * f, msg)
            )
            result["model_version"] = model.id
    if "predict" in steps and model is not None:
        progress(0.5, "scoring the pool", force=True)
        if probs is None:
            if model.encoder_version_id != version.id:  # its scores are rows of another encoder's pool
                raise ValueError(
                    f"the current model (#{model.id}) was trained on encoder #"
                    f"{model.encoder_version_id}, not the current one (#{version.id}): run a finetune job"
                )
            probs = _probs_over(model, project, version, ids, Z)
        _write_predictions(project, model, ids, probs)
    if "model_version" in result:
        progress(0.7, "looking for possible label mistakes", force=True)
        result["label_suspects"] = _write_label_issues(project, ids, Z, train, audit)
    if "select" in steps:
        progress(0.8, "selecting the next batch", force=True)
        if probs is None and model is not None and model.encoder_version_id == version.id:
            probs = _probs_over(model, project, version, ids, Z)
        rnd = _select(job, project, version, ids, Z, train, audit, probs, mc, model)
        if rnd is None:
            result["select"] = "skipped: every image of the pool is labelled, queued or in the audit slice"
        else:
            result["selection_round"] = rnd.number
            if getattr(rnd, "grown", ""):
                result["round_size"] = rnd.grown
    acc = model.metrics.get("audit_accuracy") if model is not None else None
    parts = []
    if "model_version" in result:
        audit = model.metrics.get("audit_labels")
        on = f" on {audit:,} audit image{'s' if audit != 1 else ''}" if audit else ""
        parts.append(f"model #{model.id}" + (f" (audit accuracy {acc:.1%}{on})" if acc is not None else ""))
    elif "predict" in steps and model is not None:
        parts.append(f"predictions of model #{model.id} written over the pool")
    if "selection_round" in result:
        parts.append(
            f"round {result['selection_round']} queued"
            + (f" ({result['round_size']})" if result.get("round_size") else "")
        )
    elif "select" in result:
        parts.append("nothing left to select: every image of the pool is labelled or queued")
    result["_message"] = "; ".join(parts) or "nothing to do"
    return result


def forecast(job: Job, progress) -> dict[str, Any]:
    """The forecast of the newest model version refitted for the project's target, budget and labels
    per image as they are now, and scored against its audit labels as they are now: an admin who
    changed them saw no forecast until the next retrain, and none came while labelling was paused."""
    project = job.project
    model = project.model_versions.order_by("-id").first()
    if model is None:
        raise ValueError("the project has no model version yet: a forecast comes with the first retrain")
    audit_ids = np.fromiter(
        Image.objects.filter(project=project, is_audit=True).values_list("id", flat=True), dtype=np.int64
    )
    _, audit = pool_labels(project, audit_ids)
    _update_forecast(
        project, model, {int(i): int(c) for i, c in zip(audit_ids, audit, strict=True) if c >= 0}
    )
    made = model.metrics["forecast"]
    return {
        "model_version": model.id,
        "_message": f"forecast of model #{model.id} refitted"
        + (f" (not yet: {made['error']})" if made.get("error") else ""),
    }


def _learner_config(params: dict):
    """The learner's settings for a finetune or cycle job: its defaults, and ``consistency_steps``
    when the job asks (automatic cycles never do)."""
    from models_zoo.transfer import LearnerConfig

    steps = params.get("consistency_steps")
    return LearnerConfig(consistency_steps=None if steps is None else int(steps))


def _finetune(job, version, ids, Z, train, audit, progress=None):
    """progress(fraction, message): the learner's long step (fine-tuning; consistency training on a GPU)."""
    import joblib

    from models_zoo.artifact import EncoderArtifact
    from models_zoo.export import export_learner
    from models_zoo.train import TrainingCancelled
    from models_zoo.transfer import Learner, uses_images

    project = job.project
    existing = ModelVersion.objects.filter(job=job).first()
    if existing is not None:  # redelivered: the version is already written
        return existing, _load_probs(existing), None
    n_classes = project.label_classes.count()
    n_labels = int((train >= 0).sum())
    cfg = _learner_config(job.params)
    with local_copy(version.artifact_key) as path:
        artifact = EncoderArtifact.load(path)
    X = None
    if uses_images(n_labels, True, cfg, pool_size=len(ids)):  # fine-tuning, consistency, the HOG view
        X = images_for(project, ids)  # row for row with the embedding Z
    started = time.monotonic()
    try:
        learner = Learner(artifact, cfg, seed=int(job.params.get("seed", 0))).fit(
            X,
            train,
            n_classes,
            features=Z,
            progress=progress,
            should_stop=_stopper(job.id),
            # The second view: judged on the labels that sample the pool; if the live model took
            # it, it stays unless the evidence against it is significant.
            judge=pool_sample_labels(project, ids, train) if X is not None else None,
            view_before=live_view_decision(project, version),
        )
    except TrainingCancelled:
        if worker_stopping(every=0):
            raise JobHandedBack() from None
        raise JobCancelled() from None
    probs = learner.predict_proba(X, features=Z).astype(np.float32)  # (N, C)
    mc = None
    if project.selection_strategy == "bald":
        mc = learner.mc_proba(X, features=Z).astype(np.float32)  # (T, N, C)
    seconds = time.monotonic() - started

    audited = audit >= 0
    audit_ids = set(Image.objects.filter(project=project, is_audit=True).values_list("id", flat=True))
    audit_rows = np.isin(ids, np.fromiter(audit_ids, dtype=np.int64, count=len(audit_ids))) | audited
    correct = int((probs.argmax(1)[audited] == audit[audited]).sum())
    n_audit = int(audited.sum())
    low, high = wilson_interval(correct, n_audit)
    metrics: dict[str, Any] = {
        "mode": learner.mode_,
        "train_labels": n_labels,
        "audit_labels": n_audit,
        "audit_accuracy": correct / n_audit if n_audit else None,
        "audit_interval": [low, high] if n_audit else None,
        "seconds": seconds,
        "class_counts": np.bincount(train[train >= 0], minlength=n_classes).tolist(),
        # (true class, predicted class, count) for every non-empty cell of the audit slice's
        # confusion matrix: per-class accuracy on the dashboard; bounded by the audit labels.
        "audit_confusion": _confusion_cells(audit[audited], probs.argmax(1)[audited]),
        # What it predicted for each audit image of the pool (labelled or not yet, or tied), so later
        # versions can score it against the audit labels as they are then (a review corrects them,
        # decides a tie); bounded by the audit slice.
        "audit_predictions": {
            "ids": ids[audit_rows].tolist(),
            "predicted": probs.argmax(1)[audit_rows].tolist(),
        },
        # the second view: True / False as judged (held-out accuracy at weights 0, w/2, w), None
        # where this fit did not judge it
        "view": learner.view_decision,
        "view_cv": learner.view_cv_,
        "pool_ids_key": version.embeddings.get("ids_key"),  # the rows its stored probabilities follow
    }
    stop_idx = _stop_set_rows(project, ids)
    metrics["stop_set"] = {
        "ids": ids[stop_idx].tolist(),
        "predictions": probs.argmax(1)[stop_idx].tolist(),
        "labelled": (train[stop_idx] >= 0).tolist(),  # trained on: left out of the next kappa
    }

    base = f"models/{project.id}/job-{job.id}"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "learner.joblib"
        joblib.dump(learner, local)
        check = joblib.load(local)  # verify before anything points at it
        again = check.predict_proba(None if X is None else X[:8], features=Z[:8])
        if not np.allclose(again, probs[:8], atol=1e-4):
            raise ValueError("the saved model does not reproduce its predictions")
        store_file(local, f"{base}.joblib")
        ts = Path(tmp) / "model.ts.pt"
        export_learner(learner, ts)
        store_file(ts, f"{base}.torchscript.pt")
    store_npy(probs, f"{base}.probs.npy")
    with transaction.atomic():
        _unless_cancelled(job.id)
        model, _ = ModelVersion.objects.get_or_create(
            job=job,
            defaults={
                "project": project,
                "encoder_version": version,
                "mode": learner.mode_,
                "artifact_key": f"{base}.joblib",
                "train_label_count": n_labels,
                "metrics": metrics,
                "predictions_key": f"{base}.probs.npy",
            },
        )
        model_version_publish(project=project, version=model, training_labels=n_labels)
    _update_forecast(
        project, model, {int(i): int(c) for i, c in zip(ids[audited], audit[audited], strict=True)}
    )
    return model, probs, mc


def _stop_set_rows(project: Project, ids: np.ndarray) -> np.ndarray:
    """Rows of ``ids`` in the stop set: the newest model version's stop set, less the images no longer
    in the pool, topped up with images drawn from the rest to STOP_SET_SIZE (or the whole pool), so
    that a pool that grows or loses images keeps most of its stop set and the stop rule its history
    (a project starting under 2,000 images had its whole pool as the stop set, drawn afresh once the
    pool doubled). The draws are seeded by the project."""
    size = min(STOP_SET_SIZE, len(ids))
    previous = project.model_versions.order_by("-id").values_list("metrics__stop_set__ids", flat=True).first()
    row = {int(image_id): r for r, image_id in enumerate(ids)}
    kept = [row[int(image_id)] for image_id in previous or [] if int(image_id) in row][:size]
    rng = np.random.default_rng(project.id)
    if len(kept) < size:
        rest = np.setdiff1d(np.arange(len(ids)), np.array(kept, dtype=np.int64))
        kept += np.sort(rng.choice(rest, size=size - len(kept), replace=False)).tolist()
    return np.array(kept, dtype=np.int64)


def _confusion_cells(truth: np.ndarray, predicted: np.ndarray) -> list[list[int]]:
    pairs, counts = (
        np.unique(np.stack([truth, predicted], 1), axis=0, return_counts=True) if len(truth) else ([], [])
    )
    return [[int(t), int(p), int(n)] for (t, p), n in zip(pairs, counts, strict=True)]


def _load_probs(model: ModelVersion) -> np.ndarray:
    return load_npy(model.predictions_key)


def _probs_over(model: ModelVersion, project: Project, version: EncoderVersion, ids, Z) -> np.ndarray:
    """The model's probabilities (N, C) row for row with the embedding (ids, Z): as it stored them
    when it scored this very embedding, else predicted again by the saved model (images were added
    to the pool, or it was embedded again, since the model was trained)."""
    import joblib

    probs = _load_probs(model)
    if len(probs) == len(ids) and model.metrics.get("pool_ids_key") in (
        None,
        version.embeddings.get("ids_key"),
    ):
        return probs  # None: a model from before the key was kept, on an embedding of its size
    with local_copy(model.artifact_key) as path:
        learner = joblib.load(path)
    return learner.predict_proba(images_for(project, ids), features=Z).astype(np.float32)


def _audit_hits(version: ModelVersion, audit_now: dict[int, int]) -> dict[int, bool] | None:
    """{audit image id: whether the version predicted its label as it is now} over the audit images
    it kept a prediction for; None for a version from before they were kept."""
    kept = version.metrics.get("audit_predictions")
    if not kept:
        return None
    return {
        i: audit_now[i] == p for i, p in zip(kept["ids"], kept["predicted"], strict=True) if i in audit_now
    }


def _audit_rescored(versions: list[ModelVersion], audit_now: dict[int, int]) -> dict[str, list]:
    """Each version's audit accuracy against today's audit labels, {version id: [correct, n]}, for
    the versions that kept their audit predictions. An audit label corrected on the Review page, an
    audit image decided or flagged since, changes what every earlier version scored: measured
    against the old labels, a review's curve kept two points 16-20 points low after the labels were
    fixed, and its forecast called a target out of reach that the model had met."""
    out: dict[str, list] = {}
    for v in versions:
        hits = _audit_hits(v, audit_now)
        if hits is not None:
            out[str(v.id)] = [sum(hits.values()), len(hits)]
    return out


def _audit_outcomes(versions: list[ModelVersion], audit_now: dict[int, int]) -> np.ndarray | None:
    """(versions, audit images) float: 1 where a version predicted today's audit label, 0 where it
    did not, NaN where it kept no prediction for the image; None when a version kept none (from
    before they were kept)."""
    column = {image_id: j for j, image_id in enumerate(sorted(audit_now))}
    out = np.full((len(versions), len(column)), np.nan)
    for row, v in enumerate(versions):
        hits = _audit_hits(v, audit_now)
        if hits is None:
            return None
        for image_id, hit in hits.items():
            out[row, column[image_id]] = float(hit)
    return out


def _update_forecast(project: Project, model: ModelVersion, audit_now: dict[int, int] | None = None) -> None:
    """Learning curve, forecast and stop rule over this project's model versions, stored on the
    newest one so the web process only reads them. ``audit_now``: the audit labels as they are now
    ({image id: class}); the versions that kept their audit predictions are scored against them."""
    from models_zoo.forecast import fit_learning_curve, stop_rule_state

    # The settings as they are now, not as the job read them when it started: an admin may have
    # changed the target or budget while it ran (their change queued a refit that waited for it).
    project.refresh_from_db(
        fields=["target_accuracy", "label_budget", "annotations_per_image", "audit_fraction"]
    )
    versions = list(project.model_versions.order_by("id"))
    rescored = _audit_rescored(versions, audit_now) if audit_now is not None else {}

    def measured(v: ModelVersion) -> tuple[float | None, int]:
        if str(v.id) in rescored:
            correct, n = rescored[str(v.id)]
            return (correct / n if n else None), n
        return v.metrics.get("audit_accuracy"), v.metrics.get("audit_labels", 0)

    points = [(v.train_label_count, *measured(v), v) for v in versions if measured(v)[0] is not None]
    points = newest_per_count(points, lambda p: p[0])  # one per label count, the newest version's
    forecast: dict[str, Any] = {"points": len(points)}
    if points and len({p[0] for p in points}) >= 3 and points[-1][2] < MIN_AUDIT_FOR_FORECAST:
        forecast["error"] = (
            f"it waits for {MIN_AUDIT_FOR_FORECAST} audit labels on the newest model version "
            f"({points[-1][2]} so far): a few audit images say little about accuracy"
        )
    elif len({p[0] for p in points}) >= 3:
        try:
            # Each point is an audit accuracy measured on few images: the fit counts how many
            # (shrunk estimates, weights, and their sampling spread in the interval), and when every
            # version scored today's audit images, which ones: the points share their audit images,
            # so the interval redraws those images once for all points.
            outcomes = _audit_outcomes([p[3] for p in points], audit_now) if rescored else None
            counts = np.array([max(1, p[2]) for p in points], float)  # 0: stored before counts
            curve = fit_learning_curve(
                np.array([p[0] for p in points], float),
                np.array([p[1] for p in points], float),
                seed=0,
                evaluated=counts if outcomes is None else None,
                outcomes=outcomes,
            )
            # The curve counts training images; the budget counts labels (several per image, and
            # the audit slice's). The target and budget are kept so the page can tell when an admin
            # changed them since (then the numbers wait for the next version).
            target = project.target_accuracy
            reach = curve.labels_to_reach(target)
            forecast["target_accuracy"] = target
            # A curve that reaches the target only after more training images than the pool holds
            # is out of reach too (a flat curve can put it at hundreds of thousands of labels).
            pool = project.images.filter(is_audit=False).exclude(status=ImageStatus.FLAGGED).count()
            forecast["pool_images"] = pool
            forecast["reachable"] = reach is not None and reach[0] <= pool
            forecast["labels_to_target"] = None if reach is None else [float(v) for v in reach]
            budget_images = None
            if project.label_budget:
                # Where the budget ends, in training images: those trained on now, plus what the
                # labels left buy (imported labels spent none of it), and no more than the pool has.
                used = given_labels(project).count()
                left = max(0, project.label_budget - used)
                forecast["label_budget"] = project.label_budget
                forecast["labels_per_image"] = project.labels_per_training_image()
                forecast["budget_spent"] = left == 0
                if left:
                    # From the training images labelled now, not the model's snapshot: labels given
                    # while this retrain ran are spent and will train the next model (counting from
                    # the snapshot put the end ~9 images short at two annotators' pace, a review).
                    labelled_now = labelled_training_images(project)
                    trained = max(model.train_label_count, labelled_now)
                    ahead = trained + left / project.labels_per_training_image()
                    budget_images = round(min(float(pool), ahead), 1)
                    forecast["budget_images"] = budget_images
                    forecast["pool_ends_first"] = ahead > pool  # labelling stops with the pool
                    forecast["accuracy_at_budget"] = [float(v) for v in curve.accuracy_at(budget_images)]
            forecast["projection"] = _projection(curve, pool, budget_images, reach)
        except Exception as exc:  # a curve that cannot be fitted yet is not a failed job
            forecast["error"] = str(exc)
    # Versions at least STOP_RULE_SPACING labels apart, from the last one whose stop set was drawn
    # afresh (it shares under half of its images with the version before); items labelled for a
    # version are left out of its kappa (versions from before that was recorded count every item).
    stops = [(v.train_label_count, v.metrics["stop_set"]) for v in versions if "stop_set" in v.metrics]
    rounds: list[tuple[int, dict]] = []
    for n, st in stops:
        if rounds and n < rounds[-1][0] + STOP_RULE_SPACING:
            continue
        if rounds and 2 * len(set(rounds[-1][1]["ids"]) & set(st["ids"])) < len(st["ids"]):
            rounds = []  # another stop set (drawn afresh): the history starts again from this version
        rounds.append((n, st))
    state: dict[str, Any] = {"fired": False}
    if len(rounds) >= 2:
        # Each version is compared with the one before on the stop-set images both scored: images
        # added to the pool join the stop set, flagged ones leave it, and the history goes on.
        state = stop_rule_state(
            [np.array(st["predictions"]) for _, st in rounds],
            threshold=project.stop_kappa,
            labelled_per_round=[
                np.array(st.get("labelled", [False] * len(st["ids"])), bool) for _, st in rounds
            ],
            ids_per_round=[np.array(st["ids"], dtype=np.int64) for _, st in rounds],
        )
    state["labels"] = [n for n, _ in rounds[1:]]  # training labels of the later version of each kappa
    state["spacing"] = STOP_RULE_SPACING
    state["threshold"] = project.stop_kappa
    forecast["stop_rule"] = state
    forecast["rescored"] = rescored  # the learning curve shows these, so the page and the fit agree
    model.metrics = {**model.metrics, "forecast": _jsonable(forecast)}  # stop_rule's numpy values too
    model.save(update_fields=["metrics"])


PROJECTION_POINTS = 25


def _projection(curve, pool: int, budget_images: float | None, reach) -> dict[str, list[float]] | None:
    """The fitted curve (point, low, high) from the last measured label count on, for the
    dashboard's chart: up to where the campaign can go (the pool's images, the budget's), or a
    little past where the target is reached (its interval's far end) when that comes first;
    without either, to 3x the labels so far. None when the pool has no unlabelled image left."""
    start = curve.n_last_
    ends = [float(pool)]
    if budget_images:
        ends.append(budget_images)
    if reach is not None:
        ends.append(1.1 * (reach[2] if np.isfinite(reach[2]) else reach[0]))
    end = min(ends) if len(ends) > 1 else min(float(pool), 3 * start)
    end = min(max(end, 1.25 * start), float(pool))  # something to draw, never past the pool
    if end <= start:
        return None
    ns = np.linspace(start, end, PROJECTION_POINTS)
    point, low, high = curve.band(ns)
    return {
        "labels": [round(float(v), 1) for v in ns],
        "accuracy": [round(float(v), 4) for v in point],
        "low": [round(float(v), 4) for v in low],
        "high": [round(float(v), 4) for v in high],
    }


def _write_predictions(project: Project, model: ModelVersion, ids: np.ndarray, probs: np.ndarray) -> None:
    """The current model's view on every image row, for the queue, the UI and the filters.

    Plain parameterised UPDATEs in chunks of 1,000, each its own short transaction with a pause
    after it: on SQLite a writer holding the lock for long, or taking it back at once, would
    starve the annotators' requests (they wait at most 30 s, then fail as "database is locked").
    """
    from django.db import connection

    if probs.shape[0] != len(ids):
        raise ValueError(f"{probs.shape[0]} rows of predictions for {len(ids)} images")
    label_ids = list(project.label_classes.order_by("order", "id").values_list("id", flat=True))
    top2 = (
        np.sort(probs, axis=1)[:, -2:]
        if probs.shape[1] > 1
        else np.concatenate([np.zeros_like(probs), probs], 1)
    )
    predicted = probs.argmax(1)
    table = Image._meta.db_table
    sql = (
        f"UPDATE {table} SET predicted_label_id = %s, confidence = %s, uncertainty = %s, predicted_by_id = %s "
        "WHERE id = %s"
    )
    rows = [
        (
            label_ids[predicted[i]],
            float(top2[i, 1]),
            float(1.0 - (top2[i, 1] - top2[i, 0])),
            model.id,
            int(image_id),
        )
        for i, image_id in enumerate(ids.tolist())
    ]
    for start in range(0, len(rows), 1000):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows[start : start + 1000])
        time.sleep(0.02)  # let waiting writers (annotators' submits) in


def _write_label_issues(project: Project, ids: np.ndarray, Z: np.ndarray, train, audit) -> int:
    """Confident learning over every label, training and audit alike (models_zoo/review.py): each
    labelled image's out-of-fold probability of its label, and the class a suspect more likely is.
    Reviewed images are not listed as suspects (a person decided), but their labels help judge the
    rest. Returns the number of suspects to review."""
    from django.db import connection

    from models_zoo.review import label_issues

    labels = np.where(train >= 0, train, audit)
    rows = np.flatnonzero(labels >= 0)
    label_ids = list(project.label_classes.order_by("order", "id").values_list("id", flat=True))
    issues = label_issues(Z[rows], labels[rows], len(label_ids), seed=0)
    reviewed = set(
        Image.objects.filter(project=project, reviewed_label__isnull=False).values_list("id", flat=True)
    )
    table = Image._meta.db_table
    values = []
    for k, i in enumerate(rows.tolist()):
        image_id = int(ids[i])
        p = issues.p_given[k]
        # A reviewed image keeps what the check says of it (shown on the Reviewed list); the
        # suspects list leaves reviewed images out, so it is not listed again.
        suspect = bool(issues.issue[k])
        values.append(
            (
                None if np.isnan(p) else float(p),
                label_ids[labels[i]],  # the label that probability is of
                label_ids[issues.suggested[k]] if suspect else None,
                image_id,
            )
        )
    with transaction.atomic():  # the last round's suspects that are no longer labelled or suspected
        Image.objects.filter(project=project).exclude(
            label_self_confidence__isnull=True, suspected_label__isnull=True, checked_label__isnull=True
        ).update(label_self_confidence=None, suspected_label=None, checked_label=None)
    sql = (
        f"UPDATE {table} SET label_self_confidence = %s, checked_label_id = %s, suspected_label_id = %s"
        " WHERE id = %s"
    )
    for start in range(0, len(values), 1000):  # short transactions, as _write_predictions
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, values[start : start + 1000])
        time.sleep(0.02)
    return sum(1 for v in values if v[2] is not None and v[3] not in reviewed)


# The labelling pace is read from the newest labels of this long ago, at most PACE_LABELS of them;
# a round keeps this margin over one retrain.
PACE_WINDOW_S = 600
PACE_LABELS = 60
PAUSE_S = 15.0
PACE_MARGIN = 1.5


def labelling_pace(project, *, now) -> float:
    """Labels a second the whole team gives while labelling: the newest labels of the last ten
    minutes (at most 60), from the gaps between them, the pauses (over 15 s and 5x the mean gap)
    left out: a wait for a retrain among them made a count over the window read a slower team,
    so the next round was sized shorter and the team waited again (a scale review: 29 labels a
    minute measured, 55 given). 0 with fewer than 10 such labels."""
    times = list(
        given_labels(project)
        .filter(created_at__gte=now - timedelta(seconds=PACE_WINDOW_S))
        .order_by("-created_at")
        .values_list("created_at", flat=True)[: PACE_LABELS + 1]
    )
    if len(times) < 10:
        return 0.0
    gaps = np.array([(a - b).total_seconds() for a, b in zip(times, times[1:], strict=False)])
    kept = gaps[gaps <= max(PAUSE_S, 5 * float(gaps.mean()))]  # a pause: over 15 s and 5x the mean gap
    return float(len(kept) / max(kept.sum(), 1e-3))


ROUND_MAX = 10_000  # as a select job's batch_size


def round_size(job, project, *, now=None) -> tuple[int, str]:
    """Items the next round queues (before its audit share), and why, when not the project's batch.

    A batch_size the job was given is taken as it is. Otherwise at least the project's batch_size,
    and, in a retrain, enough for annotators to keep labelling until the round after it is queued:
    that round comes after ``cycle_every`` more training images and one more retrain, and at the
    team's pace (:func:`labelling_pace`) a retrain of this one's length (so far) takes ``pace x length`` labels;
    a round shorter than that left annotators waiting at every retrain. The rest of a round nobody
    reached is dropped when the next one is queued, so a longer round costs selection time only.
    Never more than the budget left can label, nor 10,000."""
    asked = job.params.get("batch_size")
    if asked:
        return int(asked), ""
    base = project.batch_size
    if job.kind not in ("cycle", "finetune") or job.started_at is None:
        return base, ""
    now = now or timezone.now()
    per_second = labelling_pace(project, now=now)
    if not per_second:
        return base, ""
    retrain_s = max(0.0, (now - job.started_at).total_seconds())
    during = PACE_MARGIN * per_second * retrain_s / max(1, project.annotations_per_image)  # images
    size = min(ROUND_MAX, max(base, project.cycle_every, math.ceil(during)))
    if project.label_budget is not None:  # no more than the budget left can still label
        left = max(0, project.label_budget - given_labels(project).count())
        size = min(size, max(base, math.ceil(left / max(1, project.annotations_per_image))))
    if size <= base:
        return base, ""
    pace = per_second * 60
    return size, (
        f"{size} images, not {base}: at {pace:.0f} labels a minute a {retrain_s:.0f} s retrain"
        " would empty a shorter queue"
    )


_CLASS_INDEX = re.compile(r"\bclass (\d+)\b")


def _class_named(reason: str, names: list[str]) -> str:
    """A strategy's reason names classes by index ("predicted class 1"): the project's label name."""
    return _CLASS_INDEX.sub(
        lambda m: f'class "{names[int(m.group(1))]}"' if int(m.group(1)) < len(names) else m.group(0), reason
    )


def _select(job, project, version, ids, Z, train, audit, probs, mc, model=None) -> SelectionRound | None:
    """The next round; ``model`` the version whose probabilities (``probs``) rank it: the one this
    job just trained, or the current one (the project row read at the job's start is older)."""
    from models_zoo import selection

    existing = SelectionRound.objects.filter(job=job).first()
    if existing is not None:
        return existing
    requested = job.params.get("strategy") or project.selection_strategy
    strategy = requested
    if strategy in NEEDS_MODEL and probs is None:
        strategy = "auto"  # a cold project has no model to be uncertain with
    if strategy == "bald" and mc is None:
        strategy = "margin"
    # Exclude from selection: anything labelled, audit images, flagged images, items held now.
    status = dict(Image.objects.filter(project=project).values_list("id", "status"))
    is_audit = set(Image.objects.filter(project=project, is_audit=True).values_list("id", flat=True))
    held = set(
        project.queue_items.filter(state="open", annotations_done__gt=0).values_list("image_id", flat=True)
    )
    mask = np.array(
        [
            status.get(int(i)) != ImageStatus.UNLABELLED or int(i) in is_audit or int(i) in held
            for i in ids.tolist()
        ]
    )
    mask |= (train >= 0) | (audit >= 0)
    batch, grown = round_size(job, project)
    if grown:
        log.info("job %s: round of %s", job.id, grown)
    if (~mask).sum() == 0:
        return None  # every image is labelled, queued or audit: a finished pool, not a failed job
    from models_zoo.encoders import learned_part

    chosen = selection.select(
        strategy,
        embeddings=learned_part(Z, int(version.config.get("input_view", 0))),
        labelled_mask=mask,
        batch_size=min(batch, int((~mask).sum())),
        seed=int(job.params.get("seed", 0)) + SelectionRound.objects.filter(project=project).count(),
        probs=probs,
        mc_probs=mc,
        labels=np.where(train >= 0, train, -1),
        n_classes=project.label_classes.count(),
    )
    if strategy == "auto":
        strategy = "auto:" + chosen.strategy  # what auto chose this round, for the dashboard
    names = list(project.label_classes.order_by("order", "id").values_list("name", flat=True))
    picks = [
        Pick(int(ids[i]), float(s), _class_named(r, names))
        for i, s, r in zip(chosen.indices, chosen.scores, chosen.reasons, strict=True)
    ]
    with transaction.atomic():
        _unless_cancelled(job.id)
        Project.objects.select_for_update().get(pk=project.pk)
        number = (
            SelectionRound.objects.filter(project=project)
            .order_by("-number")
            .values_list("number", flat=True)
            .first()
            or 0
        ) + 1
        rnd = SelectionRound.objects.create(
            project=project,
            job=job,
            number=number,
            strategy=strategy,
            requested_strategy=requested,
            model_version=model if probs is not None else None,
            encoder_version=version,
            batch_size=len(picks),
            labels_at_selection=int((train >= 0).sum()),
        )
        queue_fill(project=project, round=rnd, picks=picks, seed=project.id)
    if grown and len(picks) < batch:  # the pool had fewer left to pick: say what was queued
        grown = f"{len(picks)} images, all that was left to pick; {grown.replace(' images, not', ' wanted, not', 1)}"
    rnd.grown = grown  # for the job's message
    return rnd
