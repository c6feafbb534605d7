"""The assignment rules under concurrency, on PostgreSQL: 32 annotators, each a thread with its own
user and token, hammer next + submit through real HTTP against gunicorn for a bounded time, with a
label budget smaller than the queue. Then the database is asked, by SQL: nobody held an item
another was holding (beyond the overlap), every 2xx submit has its row, the budget held.
"""

from __future__ import annotations

import pytest

from bench.annotate import Server, closed_loop, migrate, overlapping_holds, seed, server_env
from tests.pg import postgres  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ANNOTATORS = 32
BUDGET = 300
# Over the 2 x max_connections (200) labels of room under which the budget lock turns exclusive:
# the first 600 labels are checked under a shared lock, the last 400 exclusively (_budget_lock).
SHARED_BUDGET = 1000
PER_ANNOTATOR = 12  # without a budget
SECONDS = 30  # upper bound; the run ends once the budget is spent and every client saw it


@pytest.mark.parametrize(
    ("per_image", "budget"),
    [(1, BUDGET), (2, BUDGET), (1, None), (1, SHARED_BUDGET)],
    ids=["overlap1-budget", "overlap2-budget", "overlap1-no-budget", "overlap1-budget-shared-then-exclusive"],
)
def test_32_annotators_never_collide_lose_nothing_and_keep_the_budget(postgres, tmp_path, per_image, budget):  # noqa: F811
    # Without a budget reservations take no project-wide lock (only item row locks), so that case
    # runs too: each annotator stops after PER_ANNOTATOR labels instead.
    url = postgres.create_database(f"concurrency_{per_image}_{budget}")
    env = server_env(database_url=url, var_dir=tmp_path / "var", debug=False)
    migrate(env)
    data = seed(
        env=env, images=3 * (budget or BUDGET), annotators=ANNOTATORS, budget=budget, per_image=per_image
    )
    with Server("gunicorn", env=env, log_path=tmp_path / "gunicorn.log", workers=3, threads=8) as server:
        logs, _elapsed = closed_loop(
            port=server.port,
            project=data["project"],
            tokens=data["tokens"],
            labels=data["labels"],
            seconds=SECONDS * (3 if budget == SHARED_BUDGET else 1),
            max_labels=10_000 if budget else PER_ANNOTATOR,
            double_submit_every=5,  # every 5th label is sent twice, like a double click
        )
    log_tail = (tmp_path / "gunicorn.log").read_text()[-2000:]

    # Every request answered 2xx: no 5xx, no deadlock, no 409 (a reservation always fits the budget).
    assert {k: v for log in logs for k, v in log.statuses.items()} == {}, log_tail
    assert sum(log.repeats for log in logs) > 0
    assert sum(log.repeats_wrong for log in logs) == 0
    # As the clients saw it: never more holders at once than the overlap, never the same image twice.
    assert overlapping_holds(logs, per_image=per_image) == 0
    for log in logs:
        images = [image for image, *_ in log.holds]
        assert len(images) == len(set(images)), f"annotator {log.client} got an image twice"

    with postgres.connect(url.rsplit("/", 1)[1]) as conn:
        stored = set(
            conn.execute(
                "SELECT a.assignment_id, a.id, a.label_id FROM labelling_annotation a"
                " JOIN labelling_image i ON i.id = a.image_id WHERE i.project_id = %s",
                (data["project"],),
            ).fetchall()
        )
        over_held = conn.execute(
            "SELECT s.item_id FROM labelling_assignment s JOIN labelling_queueitem q ON q.id = s.item_id"
            " WHERE s.project_id = %s AND s.state IN ('active', 'submitted')"
            " GROUP BY s.item_id, q.annotations_needed HAVING COUNT(*) > q.annotations_needed",
            (data["project"],),
        ).fetchall()
        over_labelled = conn.execute(
            "SELECT a.image_id FROM labelling_annotation a JOIN labelling_image i ON i.id = a.image_id"
            " WHERE i.project_id = %s GROUP BY a.image_id HAVING COUNT(DISTINCT a.annotator_id) < COUNT(*)"
            " OR COUNT(*) > %s",
            (data["project"], per_image),
        ).fetchall()
        # The budget's counter (AnnotationCount) agrees with the rows, annotator by annotator, and so
        # does its count of the day (unless the run crossed midnight UTC).
        miscounted = conn.execute(
            "SELECT c.annotator_id FROM labelling_annotationcount c WHERE c.project_id = %s AND (c.annotations"
            " <> (SELECT COUNT(*) FROM labelling_annotation a JOIN labelling_image i ON i.id = a.image_id"
            " WHERE i.project_id = c.project_id AND a.annotator_id = c.annotator_id)"
            " OR (c.day = (now() AT TIME ZONE 'UTC')::date AND c.day = (SELECT MIN(a.created_at AT TIME ZONE 'UTC')::date"
            "  FROM labelling_annotation a JOIN labelling_image i ON i.id = a.image_id"
            "  WHERE i.project_id = c.project_id AND a.annotator_id = c.annotator_id)"
            "  AND c.on_day <> c.annotations))",
            (data["project"],),
        ).fetchall()
        counted = conn.execute(
            "SELECT COALESCE(SUM(annotations), 0) FROM labelling_annotationcount WHERE project_id = %s",
            (data["project"],),
        ).fetchone()[0]
    assert miscounted == [] and counted == len(stored)
    acked = {entry for log in logs for entry in log.acked}
    created = sum(log.labels for log in logs)
    assert over_held == [] and over_labelled == []
    assert acked - stored == set(), "2xx submits without their annotation row"
    assert len(stored) == created  # and no row nobody was told about
    if budget is None:
        assert created == ANNOTATORS * PER_ANNOTATOR
        return
    assert len(stored) <= budget
    assert len(stored) == budget, f"the run was meant to spend the whole budget; only {len(stored)} labels"
    assert {log.empty_reason for log in logs} == {"budget_exhausted"}


def test_queue_races_only_postgresql_shows(postgres, tmp_path):  # noqa: F811
    # pg_queue_races.py, run by pytest in a subprocess with the cluster as its database.
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": postgres.url("postgres"), "VAR_DIR": str(tmp_path / "var")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/labelling/pg_queue_races.py", "-q", "-p", "no:cacheprovider"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "3 passed in" in run.stdout, run.stdout[-2000:]
