"""Faults: a worker killed with SIGKILL mid-job, Redis restarted with tasks queued, the web server
killed in the middle of labelling. Real processes throughout: a Celery worker, the embedded Redis,
a web server, the test database shared with them.

The kill test kills the worker's pool process at 10 random steps of a pretraining and at 10
random moments of a finetuning (``FAULT_KILLS`` changes the number); about a minute.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
from django.core.files.storage import default_storage
from django.db import connection

from bench.common import stop_process
from labelling.models import Annotation, EncoderVersion, Job, ModelVersion, Project, SelectionRound
from labelling.services.training import training_job_request
from tests.conftest import redis_restart, start_worker, wait_for_job, wait_until
from tests.factories import image_bytes, pool, zip_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def kill_pool(worker: subprocess.Popen) -> int:
    """SIGKILL the worker's pool processes (the ones running tasks); the main process stays, sees
    the loss and requeues the task at once (task_reject_on_worker_lost)."""
    children = psutil.Process(worker.pid).children()
    for child in children:
        os.kill(child.pid, signal.SIGKILL)
    return len(children)


class CurrentWatcher(threading.Thread):
    """Samples the project's current encoder and model while faults happen: each one ever current
    must be whole (its artifact stored; an encoder's embeddings complete)."""

    def __init__(self, project_id: int) -> None:
        super().__init__(daemon=True)
        self.project_id = project_id
        self.seen_encoders: list[int] = []
        self.seen_models: list[int] = []
        self.partial: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                project = Project.objects.get(pk=self.project_id)
                if project.current_encoder_id and project.current_encoder_id not in self.seen_encoders:
                    self.seen_encoders.append(project.current_encoder_id)
                    ev = EncoderVersion.objects.get(pk=project.current_encoder_id)
                    shards = ev.embeddings.get("shards") or []
                    if not default_storage.exists(ev.artifact_key) or not shards:
                        self.partial.append(f"encoder {ev.id} current before it was whole")
                    elif not all(default_storage.exists(k) for k in shards):
                        self.partial.append(f"encoder {ev.id} current with missing shards")
                if project.current_model_id and project.current_model_id not in self.seen_models:
                    self.seen_models.append(project.current_model_id)
                    mv = ModelVersion.objects.get(pk=project.current_model_id)
                    keys = [
                        mv.artifact_key,
                        mv.predictions_key,
                        mv.artifact_key.replace(".joblib", ".torchscript.pt"),
                    ]
                    if not all(default_storage.exists(k) for k in keys):
                        self.partial.append(f"model {mv.id} current before its files were stored")
                time.sleep(0.05)
        finally:
            connection.close()


def _deliveries(worker, kind: str) -> int:
    """How many times the worker's main process has received a ``workers.<kind>`` task."""
    return len(re.findall(rf"Task workers\.{kind}\[[^\]]+\] received", worker.log_path.read_text()))


def _step(job_id: int) -> int:
    """The training step a pretrain job last reported ("step 37, loss ...")."""
    match = re.match(r"step (\d+)", Job.objects.get(pk=job_id).message)
    return int(match.group(1)) if match else 0


def _kill_at_random_steps(job: Job, worker, *, max_steps: int, kills: int, rng: random.Random) -> int:
    """Kill the pool when pretraining reaches each of ``kills`` random steps (a redelivered run
    resumes from its last checkpoint, so every step is reached again); returns the kills made."""
    landed = 0
    for target in sorted(rng.sample(range(3, max_steps - 3), kills)):
        wait_until(lambda t=target: _step(job.id) >= t or Job.objects.get(pk=job.id).is_finished,
                   timeout=180, worker=worker, what=f"step {target}", every=0.01)  # fmt: skip
        if Job.objects.get(pk=job.id).is_finished:
            break
        landed += kill_pool(worker) > 0
        Job.objects.filter(pk=job.id).update(message="killed by the test")  # step counts again from here
    return landed


def _kill_after_delivery(
    job: Job, worker, *, kills: int, rng: random.Random, window: tuple[float, float]
) -> int:
    """Kill the pool ``kills`` times, each a random moment after the task was (re)delivered, while
    the job runs; returns the kills that landed on the running job."""
    landed = 0
    delivery = 1  # wait for this delivery of the task before the next kill
    for _ in range(kills):
        wait_until(lambda n=delivery: _deliveries(worker, job.kind) >= n, timeout=90, worker=worker,
                   what=f"delivery {delivery} of the {job.kind} task", every=0.01)  # fmt: skip
        time.sleep(rng.uniform(*window))
        if Job.objects.get(pk=job.id).is_finished:
            break
        delivered = _deliveries(worker, job.kind)
        landed += kill_pool(worker) > 0
        # The main process notices the loss, requeues the task at once and forks a new pool
        # process, which receives the task again: that is the next delivery.
        delivery = delivered + 1
    return landed


def test_kill_9_at_random_points_in_pretrain_and_finetune(celery_worker, users, project):
    kills = int(os.environ.get("FAULT_KILLS", 10))
    rng = random.Random(8)
    Project.objects.filter(pk=project.pk).update(cycle_every=1_000_000, audit_fraction=0.0)
    pool(project, 64)
    watcher = CurrentWatcher(project.id)
    watcher.start()
    try:
        # --- pretrain: checkpoints every 5 steps, so every kill has one to resume from.
        max_steps = 30 + 10 * kills
        pretrain = training_job_request(
            project=project, kind="pretrain",
            params={"max_steps": max_steps, "batch_size": 32, "checkpoint_every": 5},
        )  # fmt: skip
        landed = _kill_at_random_steps(pretrain, celery_worker, max_steps=max_steps, kills=kills, rng=rng)
        pretrain = wait_for_job(pretrain.id, timeout=300, worker=celery_worker)
        assert pretrain.state == "succeeded", pretrain.error
        assert landed == kills, f"only {landed} of {kills} kills landed during pretraining"
        versions = EncoderVersion.objects.filter(project=project)
        assert versions.count() == 1 and versions.get().job_id == pretrain.id
        meta = versions.get().metadata
        assert meta["resumed_from_step"] > 0, meta  # the last run started from a checkpoint
        assert meta["steps"] == max_steps, meta  # ...and did not redo the steps before it
        wait_until(
            lambda: SelectionRound.objects.filter(project=project).exists(),
            timeout=180, worker=celery_worker, what="embed and the cold-start round",
        )  # fmt: skip

        # --- finetune: label 12 items, then kill the pool at random points of the training.
        from labelling.services.queue import assignment_submit, assignments_reserve

        labels = list(project.label_classes.values_list("id", flat=True))
        for i in range(12):
            (held,) = assignments_reserve(
                project=Project.objects.get(pk=project.pk), annotator=users["annotator"]
            )
            assignment_submit(assignment_id=held.id, annotator=users["annotator"], label_id=labels[i % 3])
        models_before = ModelVersion.objects.filter(project=project).count()
        finetune = training_job_request(project=project, kind="finetune")
        # A warm pool process finetunes in well under a second; a fresh one first imports torch.
        landed_ft = _kill_after_delivery(finetune, celery_worker, kills=kills,
                                           rng=rng, window=(0.0, 0.15))  # fmt: skip
        finetune = wait_for_job(finetune.id, timeout=300, worker=celery_worker)
        assert finetune.state == "succeeded", finetune.error
        assert ModelVersion.objects.filter(project=project).count() == models_before + 1
        model = ModelVersion.objects.get(job=finetune)
        assert Project.objects.get(pk=project.pk).current_model_id == model.id
        time.sleep(0.3)  # one more sample of the watcher
    finally:
        watcher.stop.set()
        watcher.join(5)
    assert watcher.partial == []
    assert len(watcher.seen_encoders) == 1 and len(watcher.seen_models) == 1, (watcher.seen_encoders,
                                                                               watcher.seen_models)  # fmt: skip
    assert landed_ft == kills, f"only {landed_ft} of {kills} kills landed during finetuning"
    # Nothing half-written left in storage: every checkpoint and temp file was replaced or removed.
    leftovers = [p for p in Path(default_storage.location).rglob("*") if p.suffix in (".tmp", ".part")]
    assert leftovers == []


def _pretrain_stopped_at_a_checkpoint(project, tmp_path, env, params, stop):
    """A worker starts a pretraining of ``params``; at its first checkpoint ``stop(worker)`` ends the
    worker (killed outright if it is still running then). Returns the job and its checkpoint path."""
    from workers.jobs.training import pretrain_checkpoint_path

    pool(project, 32)
    first = start_worker(env_extra=env, log_path=tmp_path / "w1.log")
    first.log_path = tmp_path / "w1.log"
    job = training_job_request(project=project, kind="pretrain", params=params)
    checkpoint = pretrain_checkpoint_path(job)
    try:
        wait_until(checkpoint.exists, timeout=120, worker=first, what="a first checkpoint")
        stop(first)
    finally:
        if first.poll() is None:
            first.kill()
    return job, checkpoint


def _resumed_by_the_next_worker(job, project, tmp_path, env) -> None:
    """A second worker finishes the job, from the checkpoint the first one left."""
    second = start_worker(env_extra=env, log_path=tmp_path / "w2.log")
    second.log_path = tmp_path / "w2.log"
    try:
        done = wait_for_job(job.id, timeout=240, worker=second)
    finally:
        stop_process(second, timeout=20)
    assert done.state == "succeeded", done.error
    assert EncoderVersion.objects.get(project=project).metadata["resumed_from_step"] > 0


def test_whole_worker_killed_task_comes_back_after_the_visibility_timeout(redis_server, transactional_db,
                                                                          settings, tmp_path, users, project):  # fmt: skip
    """kill -9 of the main worker process and its pool: nobody requeues the task, Redis re-delivers
    it to the next worker once the visibility timeout (CELERY_VISIBILITY_TIMEOUT, 12 h in
    production, 8 s here) has passed since delivery; it resumes from its checkpoint."""
    env = {"MEDIA_ROOT": str(settings.MEDIA_ROOT), "CELERY_VISIBILITY_TIMEOUT": "8"}

    def kill_all(worker) -> None:
        for proc in [*psutil.Process(worker.pid).children(), psutil.Process(worker.pid)]:
            os.kill(proc.pid, signal.SIGKILL)
        worker.wait(10)

    params = {"max_steps": 20, "batch_size": 16, "checkpoint_every": 5}
    job, _ = _pretrain_stopped_at_a_checkpoint(project, tmp_path, env, params, kill_all)
    _resumed_by_the_next_worker(job, project, tmp_path, env)


def test_a_worker_stopped_with_sigterm_hands_its_job_back(redis_server, transactional_db, settings, tmp_path,
                                                           users, project):  # fmt: skip
    """SIGTERM (docker stop, a redeploy): the worker stops within seconds instead of waiting for a
    pretraining to end (killed when the stop's grace ran out, its job showed "running" for the 12 h
    of the visibility timeout and blocked the project's training); the job goes back to the queue
    and the next worker resumes it from its checkpoint."""
    env = {"MEDIA_ROOT": str(settings.MEDIA_ROOT)}  # the production visibility timeout: no redelivery

    def terminate(worker) -> None:
        worker.terminate()
        worker.wait(30)  # by itself: the job stops at its next check

    params = {"max_minutes": 0.3, "batch_size": 16, "checkpoint_every": 5}
    job, checkpoint = _pretrain_stopped_at_a_checkpoint(project, tmp_path, env, params, terminate)
    job.refresh_from_db()
    assert job.state == "queued" and job.deliveries == 0, (job.state, job.message, job.deliveries)
    assert "worker stopped" in job.message and checkpoint.exists()
    assert Job.objects.filter(project=project, state="running").count() == 0
    _resumed_by_the_next_worker(job, project, tmp_path, env)


def _redis(socket_path: Path, command: bytes) -> int:
    """One Redis command with an integer answer, over the unix socket."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(socket_path))
        s.sendall(command + b"\r\n")
        return int(s.recv(64).split(b"\r\n")[0].lstrip(b":"))


def _queue_length(socket_path: Path) -> int:
    return _redis(socket_path, b"LLEN celery")


def test_redis_restarted_with_tasks_queued(redis_server, transactional_db, settings, tmp_path, users, project,
                                           client_for):  # fmt: skip
    """Tasks queued while no worker runs survive a Redis restart (append-only file), and a running
    worker reconnects after Redis comes back."""
    engineer = client_for(users["engineer"])

    def import_zip(seed: int) -> int:
        data = zip_bytes({f"{seed}-{i}.png": image_bytes(seed=seed * 10 + i) for i in range(3)})
        from django.core.files.uploadedfile import SimpleUploadedFile

        response = engineer.post(
            f"/api/projects/{project.id}/imports",
            {"file": SimpleUploadedFile("z.zip", data)},
            format="multipart",
        )
        assert response.status_code == 202, response.content
        return response.json()["id"]

    # The session's Redis may hold tasks earlier tests queued for jobs of their (gone) databases.
    _redis(redis_server, b"DEL celery")
    queued = [import_zip(seed) for seed in range(3)]
    assert _queue_length(redis_server) == 3
    redis_restart(redis_server, down_for=1.0)
    assert _queue_length(redis_server) == 3, "queued tasks lost in the restart"

    worker = start_worker(env_extra={"MEDIA_ROOT": str(settings.MEDIA_ROOT)}, log_path=tmp_path / "w.log")
    worker.log_path = tmp_path / "w.log"
    try:
        for job_id in queued:
            assert wait_for_job(job_id, timeout=120, worker=worker).state == "succeeded"
        # Redis goes away under a connected, idle worker and comes back: the worker reconnects.
        redis_restart(redis_server, down_for=3.0)
        later = import_zip(7)
        assert wait_for_job(later, timeout=120, worker=worker).state == "succeeded"
    finally:
        stop_process(worker, timeout=20)
    from labelling.models import Image

    assert Image.objects.filter(project=project).count() == 12


def test_web_server_killed_mid_labelling(transactional_db, settings, tmp_path, users, project):
    """kill -9 of the web server between two labels: the submitted label is stored, and after the
    restart the annotator gets the item they were holding, not a new one."""
    from rest_framework.authtoken.models import Token

    from bench.annotate import Http, Server
    from tests.factories import queue_round

    images = pool(project, 5)
    queue_round(project, images)
    token = Token.objects.create(user=users["annotator"]).key
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "DEV_SERVER": "1",
        "LOG_LEVEL": "WARNING",
    }
    if db["ENGINE"] == "django.db.backends.sqlite3":
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    label = project.label_classes.first().id
    next_url = f"/api/projects/{project.id}/queue/next"

    with Server("runserver", env=env, log_path=tmp_path / "web1.log") as server:
        http = Http(server.port, token)
        status, first = http.call("GET", next_url)
        assert status == 200 and first["assignment"]
        status, answer = http.call(
            "POST", f"/api/assignments/{first['assignment']['id']}/submit", {"label": label}
        )
        assert status == 201
        status, held = http.call("GET", next_url)
        assert status == 200 and held["assignment"]
        http.close()
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)

    with Server("runserver", env=env, log_path=tmp_path / "web2.log") as server:
        http = Http(server.port, token)
        status, again = http.call("GET", next_url)
        assert status == 200
        assert again["assignment"]["id"] == held["assignment"]["id"], "the reservation did not survive"
        assert again["assignment"]["image"]["id"] == held["assignment"]["image"]["id"]
        status, second = http.call(
            "POST", f"/api/assignments/{held['assignment']['id']}/submit", {"label": label}
        )
        assert status == 201
        # The label given before the crash, re-sent (a retry): the same annotation, not a second.
        status, repeat = http.call(
            "POST", f"/api/assignments/{first['assignment']['id']}/submit", {"label": label}
        )
        assert status == 200 and repeat["annotation_id"] == answer["annotation_id"]
        http.close()
    assert set(Annotation.objects.values_list("id", flat=True)) == {
        answer["annotation_id"],
        second["annotation_id"],
    }
