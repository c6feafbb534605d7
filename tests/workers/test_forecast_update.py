"""The forecast a retrain stores: the stop rule over the model versions that scored the same stop set."""

from __future__ import annotations

import numpy as np
import pytest

from labelling.models import Annotation, EncoderVersion, Image, ModelVersion
from workers.jobs.training import _update_forecast

pytestmark = pytest.mark.django_db


def _version(project, encoder, stop_set: dict, labels: int = 0) -> ModelVersion:
    return ModelVersion.objects.create(
        project=project,
        encoder_version=encoder,
        mode="propagate",
        artifact_key="m",
        train_label_count=labels,
        metrics={"stop_set": stop_set},
    )


def _stop_rule_after(project, last: ModelVersion) -> dict:
    """The stop rule's state the forecast update stores on ``last``, the newest version."""
    _update_forecast(project, last)
    last.refresh_from_db()
    return last.metrics["forecast"]["stop_rule"]


def _measured(project, encoder, labels, accuracies, audit_labels) -> ModelVersion:
    """Model versions at ``labels`` training labels with these audit accuracies, each measured on
    ``audit_labels`` audit images (one count, or one per version); the newest."""
    counts = audit_labels if isinstance(audit_labels, list) else [audit_labels] * len(labels)
    for n, acc, m in zip(labels, accuracies, counts, strict=True):
        last = ModelVersion.objects.create(
            project=project, encoder_version=encoder, mode="propagate", artifact_key="m",
            train_label_count=n, metrics={"audit_accuracy": acc, "audit_labels": m},
        )  # fmt: skip
    return last


def test_stop_rule_leaves_out_the_stop_set_items_labelled_for_each_version(project):
    # Four versions agree everywhere except on the 30 stop-set items each one was trained on (their
    # predictions turn to their labels): a settled model, which the rule must see as settled.
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    ids = list(range(1000, 1500))
    pred, labelled = np.random.default_rng(0).integers(0, 3, 500), np.zeros(500, bool)
    # An older version scored another stop set (drawn afresh since): not compared.
    _version(project, encoder, {"ids": list(range(3000, 3500)), "predictions": ((pred + 1) % 3).tolist()})
    versions = []
    for r in range(4):
        new = np.arange(30 * r, 30 * (r + 1))
        pred, labelled = pred.copy(), labelled.copy()
        pred[new], labelled[new] = (pred[new] + 1) % 3, True
        versions.append(
            _version(
                project,
                encoder,
                {"ids": ids, "predictions": pred.tolist(), "labelled": labelled.tolist()},
                labels=100 * (r + 1),
            )
        )
    _update_forecast(project, versions[-1])
    versions[-1].refresh_from_db()
    state = versions[-1].metrics["forecast"]["stop_rule"]
    assert state["kappas"] == [1.0, 1.0, 1.0] and state["fired"] is True
    assert state["labels"] == [200, 300, 400] and state["spacing"] == 100


def test_stop_rule_counts_every_item_for_versions_that_did_not_record_labels(project):
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    ids = list(range(200))
    base = np.arange(200) % 4
    changed = base.copy()
    changed[:20] = (changed[:20] + 1) % 4
    _version(project, encoder, {"ids": ids, "predictions": base.tolist()}, labels=100)
    last = _version(project, encoder, {"ids": ids, "predictions": changed.tolist()}, labels=200)
    _update_forecast(project, last)
    last.refresh_from_db()
    state = last.metrics["forecast"]["stop_rule"]
    assert len(state["kappas"]) == 1 and state["kappas"][0] < 0.9 and state["fired"] is False


def test_stop_rule_compares_versions_a_fixed_number_of_labels_apart(project):
    # A retrain every 20 labels: 16 versions from 100 to 400 labels, each changing 2 % of the stop
    # set. Consecutive versions would agree at kappa ~0.97 and the rule would run on 15 kappas; it
    # compares the versions at 100, 200, 300 and 400 labels (each 5 x 2 % apart) instead.
    from workers.jobs.training import STOP_RULE_SPACING

    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    ids = list(range(1000))
    pred = np.arange(1000) % 5
    versions = []
    for r in range(16):
        pred = pred.copy()
        pred[20 * r : 20 * (r + 1)] = (pred[20 * r : 20 * (r + 1)] + 1) % 5
        versions.append(
            _version(project, encoder, {"ids": ids, "predictions": pred.tolist()}, labels=100 + 20 * r)
        )
    _update_forecast(project, versions[-1])
    versions[-1].refresh_from_db()
    state = versions[-1].metrics["forecast"]["stop_rule"]
    assert STOP_RULE_SPACING == 100
    assert state["labels"] == [200, 300, 400]
    assert len(state["kappas"]) == 3 and all(0.85 < k < 0.9 for k in state["kappas"])  # 100 changed of 1000
    assert state["fired"] is False


def test_stop_rule_fires_at_the_projects_threshold(project):
    # Four versions 100 labels apart, each changing 1 % of a 1,000-item stop set: kappa ~0.989,
    # under the default 0.99 and over a project's 0.985.
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    ids, pred, versions = list(range(1000)), np.arange(1000) % 5, []
    for r in range(4):
        pred = pred.copy()
        pred[10 * r : 10 * (r + 1)] = (pred[10 * r : 10 * (r + 1)] + 1) % 5
        versions.append(
            _version(project, encoder, {"ids": ids, "predictions": pred.tolist()}, labels=100 * r)
        )
    for threshold, fired in ((0.99, False), (0.985, True)):
        project.stop_kappa = threshold
        project.save()
        _update_forecast(project, versions[-1])
        versions[-1].refresh_from_db()
        state = versions[-1].metrics["forecast"]["stop_rule"]
        assert 0.985 < state["mean_kappa"] < 0.99 and state["threshold"] == threshold
        assert state["fired"] is fired


def test_forecast_counts_training_images_and_converts_the_budget(project, users):
    # Audit accuracies at 100-400 training images; a pool of 1,000 images. Two labels per image and
    # a 20 % audit slice: a training image costs 2 / 0.8 = 2.5 labels. Of a budget of 1,000 labels,
    # 100 are spent (50 more were imported, which spend none): the 900 left buy 360 images, so the
    # budget ends at 400 + 360 = 760 training images, and the forecast there is the curve's at 760.
    from models_zoo.forecast import fit_learning_curve

    Image.objects.bulk_create(
        [Image(project=project, sha256=f"{i:064x}", storage_key=f"k/{i}", width=1, height=1, format="PNG")
         for i in range(1000)]
    )  # fmt: skip
    label = project.label_classes.first()
    for k, image in enumerate(Image.objects.order_by("id")[:150]):
        Annotation.objects.create(image=image, annotator=users["annotator"], label=label, imported=k >= 100)
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    project.annotations_per_image, project.audit_fraction, project.label_budget = 2, 0.2, 1000
    project.target_accuracy = 0.8
    project.save()
    labels, accs = [100, 200, 300, 400], [0.60, 0.68, 0.72, 0.74]
    last = _measured(project, encoder, labels, accs, 50)
    curve = fit_learning_curve(np.array(labels, float), np.array(accs), seed=0, evaluated=np.full(4, 50.0))

    def stored() -> dict:
        _update_forecast(project, last)
        last.refresh_from_db()
        return last.metrics["forecast"]

    got = stored()
    assert got["label_budget"] == 1000 and got["target_accuracy"] == 0.8 and got["pool_images"] == 1000
    assert got["budget_images"] == pytest.approx(760) and got["pool_ends_first"] is False
    assert got["accuracy_at_budget"] == pytest.approx(list(curve.accuracy_at(760)))
    reach = curve.labels_to_reach(0.8)
    if reach is not None:  # an infinite bound is stored as None (JSON has no inf)
        assert got["labels_to_target"] == [v if np.isfinite(v) else None for v in reach]
    # Labels given while the retrain ran are spent and will train the next model: the end counts
    # from the 450 training images labelled now, not the model's 400 (a re-check: 9 images short).
    Image.objects.filter(pk__in=list(Image.objects.order_by("id").values_list("id", flat=True)[:450])).update(
        status="labelled"
    )
    assert stored()["budget_images"] == pytest.approx(810)
    Image.objects.update(status="unlabelled")
    # A budget that would buy more images than the pool holds ends with the pool.
    project.label_budget = 5000
    project.save()
    got = stored()
    assert got["budget_images"] == 1000 and got["pool_ends_first"] is True
    assert got["accuracy_at_budget"] == pytest.approx(list(curve.accuracy_at(1000)))
    # A budget already spent: no figure "when it runs out" (it has), and no mark.
    project.label_budget = 100
    project.save()
    got = stored()
    assert got["budget_spent"] is True and "accuracy_at_budget" not in got and "budget_images" not in got


def test_a_target_the_curve_reaches_only_beyond_the_pool_is_out_of_reach(project, client_for, users):
    # A curve that creeps up by a point per doubling reaches 85 % only after far more training images
    # than the 60 the pool holds: not "reachable" with a count of hundreds of thousands, but out of
    # reach, with the reason in the metrics' note. The same curve with a reachable target counts.
    from tests import factories

    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    factories.pool(project, 60)
    last = _measured(project, encoder, [10, 20, 40], [0.70, 0.71, 0.72], 1000)
    api = client_for(users["admin"])
    for target, reachable in ((0.85, False), (0.715, True)):
        project.target_accuracy = target
        project.save()
        _update_forecast(project, last)
        last.refresh_from_db()
        stored = last.metrics["forecast"]
        assert stored["pool_images"] == 60 and stored["reachable"] is reachable
        shown = api.get(f"/api/projects/{project.id}/metrics").json()["forecast"]
        assert shown["reachable"] is reachable
        if reachable:
            assert shown["more_labels_to_target"][0] is not None and shown["note"] == ""
        else:
            assert stored["labels_to_target"][0] > 60  # the curve's own figure is kept
            assert shown["more_labels_to_target"] is None and shown["more_images_to_target"] is None
            assert "the pool holds 60" in shown["note"]


def test_projection_runs_from_the_last_count_to_the_budget_or_past_the_target(project):
    # 70 pool images (none audit), audit accuracies at 5-20 training images. A budget of 40 labels
    # (none spent) at 1 / 0.8 labels per image buys 32 more images: the curve ahead runs from 20 to
    # 52. Without a
    # budget it runs to a little past the far end of the target's interval, never past the pool.
    from models_zoo.forecast import fit_learning_curve
    from tests.factories import pool
    from workers.jobs.training import PROJECTION_POINTS

    pool(project, 70)
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    project.annotations_per_image, project.audit_fraction, project.label_budget = 1, 0.2, 40
    project.target_accuracy = 0.99
    project.save()
    labels, accs = [5, 10, 15, 20], [0.50, 0.62, 0.68, 0.71]
    last = _measured(project, encoder, labels, accs, 1000)
    curve = fit_learning_curve(np.array(labels, float), np.array(accs), seed=0, evaluated=np.full(4, 1000.0))

    def projection():
        _update_forecast(project, last)
        last.refresh_from_db()
        return last.metrics["forecast"]["projection"]

    ahead = projection()
    assert len(ahead["labels"]) == PROJECTION_POINTS
    assert ahead["labels"][0] == 20 and ahead["labels"][-1] == pytest.approx(52, abs=0.05)
    point, low, high = curve.band(np.array(ahead["labels"]))
    assert ahead["accuracy"] == pytest.approx(point.tolist(), abs=1e-3)  # labels stored to 0.1
    assert ahead["low"] == pytest.approx(low.tolist(), abs=1e-3)  # labels stored to 0.1
    assert ahead["high"] == pytest.approx(high.tolist(), abs=1e-3)  # labels stored to 0.1
    assert last.metrics["forecast"]["accuracy_at_budget"][0] == pytest.approx(ahead["accuracy"][-1], abs=1e-4)

    project.label_budget, project.target_accuracy = None, 0.72
    project.save()
    reach = curve.labels_to_reach(0.72)
    assert reach is not None and np.isfinite(reach[2]) and 1.1 * reach[2] < 70
    assert projection()["labels"][-1] == pytest.approx(1.1 * reach[2], abs=0.05)
    project.target_accuracy = 0.99  # never reached, no budget: 3x the labels so far, within the pool
    project.save()
    assert projection()["labels"][-1] == 60
    Image.objects.filter(id__in=list(Image.objects.values_list("id", flat=True)[:25])).delete()  # 45 left
    assert projection()["labels"][-1] == 45


def test_no_forecast_until_the_newest_version_has_enough_audit_labels(project):
    # Audit accuracies 0 %, 100 %, 100 %, 100 % on 1, 2, 3 and 5 audit images (a review saw the
    # dashboard say "target reached" from these): no forecast, and the note says what it waits for.
    # With 40 audit images on the newest version, the fit counts each point's audit images: its
    # interval is no narrower than the newest measurement's own.
    from tests.factories import pool
    from workers.jobs.training import MIN_AUDIT_FOR_FORECAST

    pool(project, 120)
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    project.target_accuracy = 0.85
    project.save()
    last = _measured(project, encoder, [20, 40, 60, 80], [0.0, 1.0, 1.0, 1.0], [1, 2, 3, 5])
    _update_forecast(project, last)
    last.refresh_from_db()
    stored = last.metrics["forecast"]
    assert MIN_AUDIT_FOR_FORECAST == 10 and "labels_to_target" not in stored
    assert stored["error"].startswith("it waits for 10 audit labels on the newest model version (5 so far)")
    last.metrics = {**last.metrics, "audit_accuracy": 0.9, "audit_labels": 40}
    last.save()
    _update_forecast(project, last)
    last.refresh_from_db()
    ahead = last.metrics["forecast"]["projection"]
    low, high = ahead["low"][0], ahead["high"][0]  # at the newest count, 80 labels
    assert high - low > 0.1  # 36 of 40 right: its own 80 % interval is about 0.84-0.94


def test_stop_rule_keeps_its_history_when_the_pool_loses_an_image(project):
    # The pool embedded again without two flagged images: the newest version scored the stop set
    # less those two; the rule compares every version on the images they all scored (it restarted
    # from nothing before: a review's "fired: true" became "kappas: []").
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    ids = list(range(1000, 1300))
    pred = (np.arange(300) % 3).tolist()
    for n in (100, 200, 300):
        _version(project, encoder, {"ids": ids, "predictions": pred}, labels=n)
    kept = [i for k, i in enumerate(ids) if k not in (5, 7)]
    last = _version(
        project,
        encoder,
        {"ids": kept, "predictions": [p for k, p in enumerate(pred) if k not in (5, 7)]},
        400,
    )
    state = _stop_rule_after(project, last)
    assert state["kappas"] == [1.0, 1.0, 1.0] and state["fired"] is True


def test_versions_at_one_label_count_are_one_point_of_the_curve(project):
    # A finetune or a hand-run cycle without new labels measures the same labels again: counted as
    # independent points they flipped a forecast with no label added (a review).
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    last = _measured(project, encoder, [100, 200, 200, 200], [0.7, 0.8, 0.81, 0.79], 40)
    _update_forecast(project, last)
    last.refresh_from_db()
    assert last.metrics["forecast"]["points"] == 2 and "labels_to_target" not in last.metrics["forecast"]
    last = _measured(project, encoder, [300], [0.85], 40)
    _update_forecast(project, last)
    last.refresh_from_db()
    assert last.metrics["forecast"]["points"] == 3


def test_the_stop_set_stays_as_the_pool_grows_or_loses_a_few_images(project):
    from workers.jobs.training import STOP_SET_SIZE, _stop_set_rows

    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    ids = np.arange(5000, 5000 + 3 * STOP_SET_SIZE)
    first = _stop_set_rows(project, ids)  # no version yet: a draw
    assert len(first) == STOP_SET_SIZE
    _version(project, encoder, {"ids": ids[first].tolist(), "predictions": [0] * len(first)})
    grown = np.concatenate([ids, np.arange(90_000, 90_500)])
    assert ids[first].tolist() == grown[_stop_set_rows(project, grown)].tolist()  # images added
    for gone in (3, STOP_SET_SIZE // 5):  # its images embedded no more (flagged): others take their place
        fewer = np.delete(ids, first[:gone])
        now = fewer[_stop_set_rows(project, fewer)].tolist()
        assert len(now) == STOP_SET_SIZE and now[: STOP_SET_SIZE - gone] == ids[first[gone:]].tolist()
        assert not set(now[STOP_SET_SIZE - gone :]) & set(ids[first].tolist())


def test_a_small_pool_that_grows_keeps_its_stop_set_and_tops_it_up(project):
    # A review: a project of 1,000 images had its whole pool as the stop set; past 2,000 images it was
    # drawn afresh and the kappa history restarted. Now it is kept and topped up to 2,000, and each
    # version is compared with the one before on the images both scored.
    from workers.jobs.training import STOP_SET_SIZE, _stop_set_rows

    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    small = np.arange(1000, 2000)
    rows = _stop_set_rows(project, small)
    assert sorted(small[rows].tolist()) == small.tolist()  # the whole pool
    pred = (np.arange(1000) % 3).tolist()
    for n in (100, 200, 300):
        _version(project, encoder, {"ids": small[rows].tolist(), "predictions": pred}, labels=n)
    big = np.concatenate([small, np.arange(50_000, 53_000)])
    rows = _stop_set_rows(project, big)
    assert len(rows) == STOP_SET_SIZE and big[rows][:1000].tolist() == small.tolist()
    last = _version(
        project, encoder, {"ids": big[rows].tolist(), "predictions": pred + [1] * 1000}, labels=400
    )
    state = _stop_rule_after(project, last)
    assert state["kappas"] == [1.0, 1.0, 1.0] and state["fired"] is True


def test_earlier_versions_are_scored_against_the_audit_labels_as_they_are_now(project):
    # A review: two versions measured against wrong audit labels (a careless annotator's, taken in a
    # tie) kept their low points after a reviewer fixed the labels; the fit called a met target out
    # of reach. Versions that kept their audit predictions are scored again at each retrain, and the
    # page's curve shows those scores.
    from labelling.selectors.metrics import learning_curve

    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    audit_ids = list(range(7000, 7020))
    truth = [i % 3 for i in range(20)]
    wrong_then = truth[:14] + [(t + 1) % 3 for t in truth[14:]]  # 6 of 20 labels wrong at the time
    for n in (100, 200):
        ModelVersion.objects.create(
            project=project, encoder_version=encoder, mode="probe", artifact_key="m", train_label_count=n,
            metrics={"audit_accuracy": 0.7, "audit_labels": 20,
                     "audit_predictions": {"ids": audit_ids, "predicted": truth}},  # it predicted the truth
        )  # fmt: skip
    old = ModelVersion.objects.create(  # from before predictions were kept: as it was measured
        project=project, encoder_version=encoder, mode="probe", artifact_key="m", train_label_count=50,
        metrics={"audit_accuracy": 0.5, "audit_labels": 20},
    )  # fmt: skip
    last = ModelVersion.objects.create(
        project=project, encoder_version=encoder, mode="probe", artifact_key="m", train_label_count=300,
        metrics={"audit_accuracy": 1.0, "audit_labels": 20,
                 "audit_predictions": {"ids": audit_ids, "predicted": truth}},
    )  # fmt: skip
    _update_forecast(project, last, dict(zip(audit_ids, truth, strict=True)))
    last.refresh_from_db()
    rescored = last.metrics["forecast"]["rescored"]
    assert rescored == {str(v.id): [20, 20] for v in ModelVersion.objects.exclude(pk=old.pk)}
    curve = {p["labels"]: p["accuracy"] for p in learning_curve(project)}
    assert curve == {100: 1.0, 200: 1.0, 50: 0.5, 300: 1.0}
    # Against the labels as they were (6 wrong), the same versions score 70 %.
    _update_forecast(project, last, dict(zip(audit_ids, wrong_then, strict=True)))
    last.refresh_from_db()
    assert {p["labels"]: p["accuracy"] for p in learning_curve(project)}[100] == 0.7


def test_versions_scored_on_todays_audit_images_share_them_in_the_interval(project):
    # Every version kept its predictions for the same 20 audit images: the forecast's interval
    # redraws those images once for all points (an easy slice lifts every point), so it is the fit
    # with the versions' per-image outcomes, wider than one drawing each point's count on its own.
    # A version from before predictions were kept puts it back on the counts alone.
    from models_zoo.forecast import fit_learning_curve

    Image.objects.bulk_create(
        [Image(project=project, sha256=f"{i:064x}", storage_key=f"k/{i}", width=1, height=1, format="PNG")
         for i in range(1000)]
    )  # fmt: skip
    project.label_budget, project.audit_fraction = 2000, 0.0
    project.save()
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    audit_ids = list(range(7000, 7020))
    truth = [i % 3 for i in range(20)]
    labels, right = [20, 40, 60, 80, 100], [10, 12, 14, 15, 16]
    for n, k in zip(labels, right, strict=True):  # right on the first k audit images
        predicted = truth[:k] + [(t + 1) % 3 for t in truth[k:]]
        last = ModelVersion.objects.create(
            project=project, encoder_version=encoder, mode="probe", artifact_key="m", train_label_count=n,
            metrics={"audit_accuracy": k / 20, "audit_labels": 20,
                     "audit_predictions": {"ids": audit_ids, "predicted": predicted}},
        )  # fmt: skip
    outcomes = (np.arange(20)[None, :] < np.array(right)[:, None]).astype(float)
    n, acc = np.array(labels, float), np.array(right) / 20
    shared = fit_learning_curve(n, acc, seed=0, outcomes=outcomes).accuracy_at(1000)
    alone = fit_learning_curve(n, acc, seed=0, evaluated=np.full(5, 20.0)).accuracy_at(1000)

    def at_budget() -> list[float]:
        _update_forecast(project, last, dict(zip(audit_ids, truth, strict=True)))
        last.refresh_from_db()
        return last.metrics["forecast"]["accuracy_at_budget"]

    assert at_budget() == pytest.approx(list(shared))
    assert shared[2] - shared[1] > alone[2] - alone[1]
    first = ModelVersion.objects.order_by("id").first()
    first.metrics.pop("audit_predictions")
    first.save()
    assert at_budget() == pytest.approx(list(alone))


def test_only_a_change_the_forecast_answers_for_queues_its_refit(project, client_for, users):
    # The target and the budget, and the labels per image where a budget converts them: a refit of a
    # fitted forecast. The stop rule's threshold is judged when the page is read, labels per image
    # without a budget convert the stored curve then too, and a name changes no number.
    from labelling.models import Job
    from labelling.services.projects import project_update
    from labelling.services.training import forecast_if_stale

    def refits() -> int:
        return Job.objects.filter(project=project, kind="forecast").count()

    eng = client_for(users["engineer"])
    refused = eng.post(f"/api/projects/{project.id}/jobs", {"kind": "forecast"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "no_model"
    project_update(project=project, target_accuracy=0.7, label_budget=None)
    assert refits() == 0  # no model version: nothing to refit
    encoder = EncoderVersion.objects.create(project=project, artifact_key="e", embeddings={"shards": ["s"]})
    last = _measured(project, encoder, [100, 200, 300], [0.6, 0.7, 0.75], 20)
    _update_forecast(project, last)
    assert last.metrics["forecast"]["target_accuracy"] == 0.7
    project_update(project=project, stop_kappa=0.95, name="Renamed", annotations_per_image=2)
    assert refits() == 0
    project_update(project=project, label_budget=900)
    job = Job.objects.get(project=project, kind="forecast")
    assert job.params == {"trigger": "settings"} and job.state == "queued"
    project_update(project=project, target_accuracy=0.8)  # coalesced into the refit on its way
    assert refits() == 1
    # The refit stores a forecast for the settings as they are now: nothing more is asked for, until
    # a change lands after a job read them (the target, here, saved behind the service's back).
    Job.objects.filter(pk=job.pk).update(state="succeeded")
    _update_forecast(project, last)
    assert forecast_if_stale(project) is None
    project_update(project=project, audit_fraction=0.2)  # labels per image, with a budget
    assert refits() == 2
    Job.objects.filter(project=project).update(state="succeeded")
    _update_forecast(project, last)
    project.target_accuracy = 0.95
    project.save(update_fields=["target_accuracy"])
    refit = forecast_if_stale(project)
    assert refit.kind == "forecast" and refits() == 3
    # A refit and the training jobs stand side by side, neither merged into the other: a retrain
    # asked for during a refit was lost in it, and a refit asked for during a pretraining that was
    # then cancelled never came (a review).
    from labelling.services.training import training_job_request

    cycle = training_job_request(project=project, kind="cycle", params={"trigger": "review"}, coalesce=True)
    assert cycle.kind == "cycle" and cycle.id != refit.id
    Job.objects.filter(pk=refit.pk).update(state="succeeded")
    project_update(project=project, target_accuracy=0.9)
    assert refits() == 4 and Job.objects.get(pk=cycle.pk).state == "queued"
    again = eng.post(f"/api/projects/{project.id}/jobs", {"kind": "forecast"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_running"
