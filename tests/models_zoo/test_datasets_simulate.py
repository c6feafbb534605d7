import json

import numpy as np
import pytest

from models_zoo import datasets, simulate
from models_zoo.forecast import plateau_round
from tests.conftest import require


def test_npz_with_and_without_test_split(tmp_path):
    X = np.random.default_rng(0).integers(0, 255, (20, 6, 6, 3), dtype=np.uint8)
    y = np.arange(20) % 2
    np.savez(tmp_path / "a.npz", X=X, y=y, X_test=X[:4], y_test=y[:4])
    a = datasets.load(str(tmp_path / "a.npz"))
    assert a.X.shape == (20, 6, 6, 3) and len(a.X_test) == 4
    np.savez(tmp_path / "b.npz", X=X, y=y)
    b = datasets.load(str(tmp_path / "b.npz"))
    assert len(b.X) + len(b.X_test) == 20 and b.X.dtype == np.uint8


def test_image_folder(tmp_path):
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(5):
            size = (10, 12) if i else (8, 8)  # one odd size gets resized to the common one
            Image.fromarray(np.full(size, 40 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    ds = datasets.load(str(tmp_path))
    assert ds.classes == ["cat", "dog"]
    assert ds.X.shape[1:] == (10, 12) and len(ds.X) + len(ds.X_test) == 10


def test_digits_and_fashion_mnist():
    d = datasets.load_digits()
    assert d.X.dtype == np.uint8 and d.X.shape[1:] == (8, 8) and d.X.max() == 255
    require(
        (datasets.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(), "Debian's dataset-fashion-mnist"
    )
    f = datasets.load_fashion_mnist(pool_size=100)
    assert f.X.shape == (100, 28, 28) and f.X_test.shape == (10000, 28, 28) and f.n_classes == 10


def test_balanced_selection_tops_up_the_rarest_class():
    y = np.array([0] * 50 + [1] * 5 + [2] * 50)
    mask = np.zeros(len(y), bool)
    mask[:4] = True  # four labels of class 0 already
    picked = simulate.balanced_selection(y, mask, 8, seed=0)
    counts = np.bincount(y[np.concatenate([np.arange(4), picked])], minlength=3)
    assert len(set(picked)) == 8 and not mask[picked].any()
    assert counts.tolist() == [4, 4, 4]


def test_normalised_auc_of_a_flat_curve_is_its_height():
    assert simulate.normalised_auc([10, 20, 50], [0.5, 0.5, 0.5]) == pytest.approx(0.5)


def _quick(tmp_path, out, *extra: str) -> list[str]:
    """Simulator arguments for a quick digits run (5 pretraining steps, cached under tmp_path), the
    results written to ``out``; ``extra`` adds or overrides (a later --seeds wins)."""
    return ["--data", "digits", "--seeds", "1", "--pretrain-steps", "5", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(out), *extra]  # fmt: skip


def test_simulator_end_to_end_on_digits(tmp_path):
    out, png = tmp_path / "r.json", tmp_path / "c.png"
    argv = _quick(tmp_path, out, "--strategies", "random,balanced", "--budgets", "10,30", "--seeds", "2")
    argv += ["--plot", str(png)]
    assert simulate.main(argv) == 0
    result = json.loads(out.read_text())
    assert set(result["pretrain"]) >= {"method", "seconds", "steps", "images_per_s"}
    assert len(result["records"]) == 2 * 2 * 2
    for r in result["records"]:
        assert set(r) >= {"features", "strategy", "budget", "seed", "accuracy"}
        assert r["features"] == "ssl:simclr" and 0 <= r["accuracy"] <= 1
    assert png.stat().st_size > 0
    # the pretraining is cached: a second run reuses the encoder
    assert len(list((tmp_path / "cache").glob("encoder-*.pt"))) == 1
    assert simulate.main(argv + ["--features", "pixels", "--seeds", "1"]) == 0
    assert json.loads(out.read_text())["records"][0]["features"] == "pixels"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--strategies", "random,nope"], "unknown strategies ['nope']"),
        (["--budgets", "10,x"], "give whole label counts"),
        (["--strategies", "auto@x"], "'x' is not a number"),
        (["--budgets", "0"], "budgets are label counts >= 1"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--method", "nope"], "unknown SSL method 'nope'"),
        (["--data", "/no/such.npz"], "no such file or folder"),
        (["--consistency-steps", "-1"], "--consistency-steps must be >= 0"),
        (["--stop-set", "-5"], "--stop-set must be >= 0"),
    ],
)
def test_simulator_rejects_bad_arguments_with_a_usage_error(extra, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        simulate.main(["--data", "digits", *extra])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_simulator_runs_consistency_training_when_asked(tmp_path):
    # Off by default on a CPU; --consistency-steps turns it on (a GPU's default is 10,000 steps).
    out = tmp_path / "r.json"
    argv = _quick(tmp_path, out, "--budgets", "20", "--seeds", "1", "--consistency-steps", "2")
    assert simulate.main(argv) == 0
    assert [r["learner"] for r in json.loads(out.read_text())["records"]] == ["consistency"]


def test_auto_variants_share_typiclusts_fits_up_to_their_switch(tmp_path):
    # auto@K switches at K labels per class (10 classes): up to the switch its rounds are TypiClust's,
    # and the simulator reuses those fits (same seed, same labels) instead of repeating them.
    out = tmp_path / "r.json"
    argv = _quick(tmp_path, out, "--strategies", "typiclust,auto@2:margin,auto@inf", "--budgets", "10,20,40")
    assert simulate.main(argv) == 0
    rows = {(r["strategy"], r["budget"]): r for r in json.loads(out.read_text())["records"]}
    assert len(rows) == 9
    for b in (10, 20):  # auto@2 switches once 20 labels are in: its selection for 40 differs
        assert rows["auto@2:margin", b] == {**rows["typiclust", b], "strategy": "auto@2:margin"}
    for b in (10, 20, 40):
        assert rows["auto@inf", b] == {**rows["typiclust", b], "strategy": "auto@inf"}


def test_simulator_judges_the_second_view_on_pool_samples_and_carries_its_decision(tmp_path, monkeypatch):
    # As the service does: the labels a random or typical pick brought in judge the second view,
    # and each round's learner gets the previous round's decision.
    calls = []

    class Spy(simulate.Learner):
        def fit(self, X, labels, *args, judge=None, view_before=None, **kwargs):
            calls.append((labels.copy(), judge.copy(), view_before))
            out = super().fit(X, labels, *args, judge=judge, view_before=view_before, **kwargs)
            calls[-1] += (self.view_decision,)
            return out

    monkeypatch.setattr(simulate, "Learner", Spy)
    out = tmp_path / "r.json"
    argv = _quick(tmp_path, out, "--strategies", "typiclust,margin", "--budgets", "10,100,150")
    assert simulate.main(argv) == 0
    records = json.loads(out.read_text())["records"]
    assert [r["view"] for r in records] == [c[3] for c in calls]
    assert [c[3] is None for c in calls] == [True, False, False] * 2  # judged from 100 labels
    typiclust, margin = calls[:3], calls[3:]
    for labels, judge, _, _ in typiclust:
        np.testing.assert_array_equal(judge, labels >= 0)
    first = margin[0][0] >= 0  # margin's first batch is random: it judges; its own picks do not
    for _, judge, _, _ in margin:
        np.testing.assert_array_equal(judge, first)
    for campaign in (typiclust, margin):
        assert [c[2] for c in campaign] == [None] + [c[3] for c in campaign[:-1]]


def test_simulator_judges_the_stop_rule_against_the_plateau(tmp_path):
    # --stop-set keeps each round's predictions on pool items and reports, per campaign, the kappas
    # (over the items not yet labelled), where the rule fires and where test accuracy levelled off.
    out = tmp_path / "r.json"
    budgets = [10, 20, 30, 40, 50, 60, 70, 80]  # below 100 labels, where the second view starts
    argv = _quick(tmp_path, out, "--strategies", "random,margin", "--budgets", ",".join(map(str, budgets)))
    assert simulate.main(argv + ["--stop-set", "300"]) == 0
    result = json.loads(out.read_text())
    assert [(r["strategy"], r["seed"]) for r in result["stop_rule"]] == [("random", 0), ("margin", 0)]
    for r in result["stop_rule"]:
        assert r["stop_set"] == 300 and r["budgets"] == budgets and len(r["kappas"]) == len(budgets) - 1
        curve = [x["accuracy"] for x in result["records"] if x["strategy"] == r["strategy"]]
        assert r["accuracy"] == curve
        assert r["plateau_labels"] == budgets[plateau_round(curve)]
        assert all(-1 <= k <= 1 for k in r["kappas"])
        means = [np.mean(r["kappas"][i - 3 : i]) for i in range(3, len(budgets))]  # mean at round i
        if r["fired_labels"] is None:
            assert r["rounds_after_plateau"] is None and max(means) < 0.99
        else:
            fired = budgets.index(r["fired_labels"])
            assert means[fired - 3] >= 0.99 and all(m < 0.99 for m in means[: fired - 3])
            assert r["rounds_after_plateau"] == fired - plateau_round(curve)
    # without it the results have no stop-rule entry
    assert simulate.main(_quick(tmp_path, out, "--budgets", "20")) == 0
    assert "stop_rule" not in json.loads(out.read_text())
