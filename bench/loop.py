"""`make bench-loop`: the whole service loop on a Fashion-MNIST pool, timed.

Imports a 60k-image pool through a real Celery worker, pretrains (self-supervised, CPU budget),
embeds, and waits for the first queue; then a simulated annotator labels 100 training images
through the queue services (answers from the hidden reference labels), cycles retrain by
themselves, and the audit-slice accuracy is read back. Writes bench/results/loop.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import stop_process

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pool", type=int, default=60_000)
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "digits"])
    parser.add_argument("--pretrain-minutes", type=float, default=3.0)
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--audit-fraction", type=float, default=0.2)
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "labelling.settings",
            "VAR_DIR": str(work),
            "PRETRAIN_MINUTES": str(args.pretrain_minutes),
            "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{work / 'db.sqlite3'}"),
        }
    )
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from bench.common import write_results
    from labelling.models import Image, Job, ModelVersion, SelectionRound
    from labelling.models.image import ImageStatus
    from labelling.models.job import JobKind
    from labelling.services.jobs import job_create
    from labelling.services.projects import membership_set, project_create
    from labelling.services.queue import assignment_submit, assignments_reserve
    from labelling.services.training import training_job_request
    from workers import embedded_redis
    from workers.jobs.imports import DATASETS

    call_command("migrate", verbosity=0)
    redis = embedded_redis.start(settings.REDIS_SOCKET)
    worker_log = open(work / "worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "worker", "--concurrency", "1", "--loglevel", "INFO",
         "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=os.environ.copy(), stdout=worker_log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def wait_job(job_id: int, what: str) -> Job:
        last = ""
        while True:
            job = Job.objects.get(pk=job_id)
            line = f"  {what}: {job.state} {job.progress:.0%} {job.message}"
            if line != last:
                print(line, flush=True)
                last = line
            if job.is_finished:
                if job.state != "succeeded":
                    raise SystemExit(f"{what} {job.state}: {job.error}")
                return job
            if worker.poll() is not None:
                raise SystemExit(f"worker died; see {work / 'worker.log'}")
            time.sleep(1)

    try:
        User = get_user_model()
        admin = User.objects.create_user("bench-admin")
        annotator = User.objects.create_user("bench-annotator")
        project = project_create(
            name="bench loop", labels=DATASETS[args.dataset], created_by=admin,
            audit_fraction=args.audit_fraction, cycle_every=20, batch_size=50,
        )  # fmt: skip
        membership_set(project=project, user=annotator, role="annotator")
        t0 = time.monotonic()
        imp = job_create(
            project=project,
            kind=JobKind.IMPORT_DATASET,
            params={"dataset": args.dataset, "limit": args.pool, "with_reference_labels": True},
        )
        wait_job(imp.id, "import")
        t_import = time.monotonic() - t0
        pre = training_job_request(project=project, kind="pretrain", params={})
        wait_job(pre.id, "pretrain")
        t_pretrain = time.monotonic() - t0 - t_import
        while not SelectionRound.objects.filter(project=project).exists():
            for job in Job.objects.filter(project=project).exclude(state__in=["succeeded"]):
                if job.state in ("failed", "cancelled"):
                    raise SystemExit(f"{job.kind} {job.state}: {job.error}")
            time.sleep(1)
        t_queue = time.monotonic() - t0
        print(
            f"first queue ready after {t_queue:.0f} s (import {t_import:.0f} s, pretrain {t_pretrain:.0f} s)"
        )

        # The simulated annotator: answers from the hidden reference labels.
        train_labels = audit_labels = 0
        while train_labels < args.labels:
            held = assignments_reserve(project=project, annotator=annotator)
            if not held:
                time.sleep(0.5)
                continue
            image = held[0].item.image
            assignment_submit(
                assignment_id=held[0].id, annotator=annotator, label_id=image.reference_label_id
            )
            if held[0].item.is_audit:
                audit_labels += 1
            else:
                train_labels += 1
        print(f"{train_labels} training and {audit_labels} audit labels given; final retrain")
        while Job.objects.filter(project=project, state__in=["queued", "running"]).exists():
            time.sleep(1)
        final = training_job_request(project=project, kind="cycle", params={})
        wait_job(final.id, "final cycle")
        model = ModelVersion.objects.filter(project=project).order_by("-id").first()
        m = model.metrics
        # Also against the hidden reference of every image the model did not train on.
        pool = Image.objects.filter(project=project, predicted_by=model).exclude(status=ImageStatus.LABELLED)
        correct = sum(1 for p, r in pool.values_list("predicted_label_id", "reference_label_id") if p == r)
        record = {
            "pool_size": args.pool,
            "dataset": args.dataset,
            "seconds_to_first_queue": round(t_queue, 1),
            "seconds_import": round(t_import, 1),
            "seconds_pretrain": round(t_pretrain, 1),
            "pretrain_minutes_budget": args.pretrain_minutes,
            "training_labels": model.train_label_count,
            "audit_labels": m.get("audit_labels"),
            "audit_accuracy_at_100": m.get("audit_accuracy"),
            "audit_interval": m.get("audit_interval"),
            "pool_reference_accuracy_at_100": correct / max(pool.count(), 1),
            "model_mode": model.mode,
        }
        path = write_results("loop", [record])
        print()
        print(f"{'pool':>8} {'to first queue':>15} {'audit acc @100':>15} {'pool acc @100':>14}")
        print(
            f"{args.pool:>8} {t_queue:>14.0f}s {record['audit_accuracy_at_100'] or 0:>15.1%} "
            f"{record['pool_reference_accuracy_at_100']:>14.1%}"
        )
        print(f"wrote {path}")
    finally:
        stop_process(worker)
        embedded_redis.stop(redis)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
