import numpy as np
import pytest
import torch

from models_zoo.export import export_learner
from models_zoo.train import PretrainConfig, pretrain
from models_zoo.transfer import Learner, LearnerConfig, LinearProbe, choose_mode, label_spreading, uses_images


def _two_moons_like(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    Z = rng.normal(0, 0.3, (n, 5)).astype(np.float32)
    Z[:, 0] += 3 * y  # class = side of the first coordinate
    Z[:, 1] += 3  # away from the origin, where cosine similarity is meaningful
    return Z, y


def test_label_spreading_labels_clusters_from_one_label_each():
    Z, y = _two_moons_like()
    labels = np.full(len(y), -1)
    first = [int(np.flatnonzero(y == c)[0]) for c in (0, 1)]
    labels[first] = y[first]
    P = label_spreading(Z, labels, 2, k=10)
    assert P.shape == (len(y), 2)
    np.testing.assert_allclose(P.sum(1), 1, atol=1e-5)
    assert (P.argmax(1) == y).mean() > 0.95


def test_linear_probe_handles_unseen_classes_and_folds_the_scaler():
    Z, y = _two_moons_like()
    probe = LinearProbe().fit(Z, y)
    p = probe.predict_proba(Z, n_classes=3)
    assert p.shape == (len(y), 3) and np.all(p[:, 2] == 0)
    W, b = probe.linear_weights_full(3)
    logits = Z @ W.T + b
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), 1).numpy(), p, atol=1e-4)


def test_rule_picks_finetune_only_with_many_labels_and_an_encoder():
    cfg = LearnerConfig(finetune_min_labels=100, second_view=None, consistency_steps=0)
    assert choose_mode(99, True, cfg) == "propagate"
    assert choose_mode(100, True, cfg) == "finetune"
    assert choose_mode(10_000, False, cfg) == "propagate"
    assert choose_mode(5, True, LearnerConfig(mode="probe")) == "probe"


def test_with_the_second_view_the_rule_fine_tunes_later():
    # Propagation with the HOG view stays ahead of fine-tuning up to ~3,000 labels (measured); where
    # the view cannot act (off, or a pool too large for its features) the threshold stays 1,000.
    cfg = LearnerConfig(consistency_steps=0)
    assert (cfg.finetune_min_labels, cfg.finetune_min_labels_with_view) == (1000, 3000)
    assert choose_mode(2999, True, cfg, pool_size=20_000) == "propagate"
    assert choose_mode(3000, True, cfg, pool_size=20_000) == "finetune"
    assert choose_mode(1000, True, cfg, pool_size=300_000) == "finetune"  # over second_view_max_pool
    assert choose_mode(1000, True, LearnerConfig(consistency_steps=0, second_view=None)) == "finetune"
    assert uses_images(1500, True, cfg, pool_size=20_000)  # the view's HOG features, not fine-tuning


def test_rule_adds_consistency_training_below_the_finetune_threshold_where_it_runs():
    from models_zoo.transfer import consistency_steps

    cfg = LearnerConfig(finetune_min_labels=100, finetune_min_labels_with_view=100, consistency_steps=50)
    assert choose_mode(99, True, cfg) == "consistency" and uses_images(99, True, cfg)
    assert choose_mode(100, True, cfg) == "finetune"
    assert choose_mode(99, False, cfg) == "propagate" and not uses_images(99, False, cfg)
    # the default: on where CUDA is present, off on a CPU
    assert consistency_steps(LearnerConfig()) == (5 if torch.cuda.is_available() else 0)
    assert not uses_images(99, True, LearnerConfig(consistency_steps=0, second_view=None))
    assert uses_images(100, True, LearnerConfig(consistency_steps=0))  # HOG features of the images
    assert not uses_images(99, True, LearnerConfig(consistency_steps=0))  # below second_view_min_labels
    assert not uses_images(100, True, LearnerConfig(consistency_steps=0), pool_size=300_000)  # too many
    assert not uses_images(99, False, LearnerConfig(consistency_steps=0))  # no encoder: features only


def test_learner_on_features_gives_probs_predictions_and_mc_samples():
    Z, y = _two_moons_like()
    labels = np.full(len(y), -1)
    labels[:10] = y[:10]
    learner = Learner(config=LearnerConfig(mc_samples=4)).fit(Z, labels, n_classes=2)
    assert learner.mode_ == "propagate"
    p = learner.predict_proba(Z)
    assert p.shape == (len(y), 2) and p.dtype == np.float32
    assert (learner.predict(Z) == y).mean() > 0.9
    mc = learner.mc_proba(Z)
    assert mc.shape == (4, len(y), 2)
    assert mc.std(0).max() > 0  # the samples differ: an epistemic signal


@pytest.fixture(scope="module")
def tiny_artifact():
    from tests.models_zoo.conftest import blobs_images

    X, y = blobs_images()
    cfg = PretrainConfig(width=8, batch_size=32, max_minutes=None, max_steps=3)
    return X, y, pretrain(X, cfg)


@pytest.mark.parametrize(
    "mode", ["propagate", "propagate+hog", "propagate+hog+rgb", "finetune", "consistency"]
)
def test_export_round_trips_to_the_same_outputs(tiny_artifact, tmp_path, mode, monkeypatch):
    X, y, art = tiny_artifact
    hog = mode.startswith("propagate+hog")
    if mode.endswith("+rgb"):  # colour images at twice the side, for the grey encoder (a transfer)
        X = np.stack([X, (X * 0.8).astype(np.uint8), (255 - X) // 3], -1).repeat(2, 1).repeat(2, 2)
    if hog:  # the HOG view joins whatever cross-validation says: it is exported too
        import models_zoo.transfer

        monkeypatch.setattr(models_zoo.transfer, "second_view_helps", lambda *a, **k: (True, [0.0, 1.0, 1.0]))
        mode = "propagate"
    labels = np.where(np.arange(len(y)) % 4 == 0, y, -1)
    ft = {"epochs": 1, "min_steps": 3, "batch_size": 16}
    cons = {"batch_size": 8, "unlabelled_ratio": 2}
    cfg = LearnerConfig(
        mode=mode,
        finetune=ft,
        consistency_steps=3,
        consistency=cons,
        mc_samples=3,
        second_view="hog" if hog else None,
        second_view_min_labels=1,
    )
    learner = Learner(art, cfg).fit(X, labels, n_classes=3)
    assert learner.mode_ == mode
    assert (learner.view_weight_ > 0) == hog
    expected = learner.predict_proba(X[:7])
    assert learner.mc_proba(X[:7]).shape == (3, 7, 3)
    path = tmp_path / "model.pt"
    export_learner(learner, path)
    scripted = torch.jit.load(str(path))  # plain torch: no models_zoo code needed
    x = torch.from_numpy(X[:7]).float()
    x = (x.permute(0, 3, 1, 2) if x.ndim == 4 else x.unsqueeze(1)) / 255  # (N, C, H, W) in [0, 1]
    out = scripted(x)
    assert not out.requires_grad  # .numpy() works as it is
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-4)


def test_label_spreading_on_a_pool_above_the_exact_limit_uses_approximate_neighbours():
    # 25,000 rows (> EXACT_MAX): neighbours come from k-means cells, not an O(N^2) search; they
    # match the exact ones, and one label per cluster still reaches the whole cluster.
    import faiss

    from models_zoo.selection.geometry import EXACT_MAX
    from models_zoo.transfer import knn_graph

    rng = np.random.default_rng(0)
    n, c = 25_000, 10
    assert n > EXACT_MAX
    centres = rng.standard_normal((c, 16)).astype(np.float32) * 4
    y = rng.integers(0, c, n)
    Z = centres[y] + rng.standard_normal((n, 16)).astype(np.float32)
    sims, ids = knn_graph(Z, 10)
    assert sims.shape == ids.shape == (n, 10) and not (ids == np.arange(n)[:, None]).any()
    Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    q = rng.choice(n, 300, replace=False)
    _, exact = faiss.knn(np.ascontiguousarray(Zn[q]), np.ascontiguousarray(Zn), 11)
    recall = np.mean([len(set(ids[a]) & set(exact[j, 1:])) / 10 for j, a in enumerate(q)])
    assert recall > 0.9
    labels = np.full(n, -1)
    for k in range(c):
        labels[np.flatnonzero(y == k)[0]] = k
    P = label_spreading(Z, labels, c, k=10)
    assert (P.argmax(1) == y).mean() > 0.98


def _bars(n_per_class: int = 40, size: int = 12, seed: int = 0):
    """Grey images whose class survives flips and crops: a horizontal bar, a vertical bar or a
    centre square, plus noise (the corner blobs of ``blobs_images`` change class when flipped)."""
    rng = np.random.default_rng(seed)
    X, y, m = [], [], size // 2
    for c in range(3):
        for _ in range(n_per_class):
            im = rng.integers(0, 60, (size, size))
            if c == 0:
                im[m - 1 : m + 1, 1:-1] += 180
            elif c == 1:
                im[1:-1, m - 1 : m + 1] += 180
            else:
                im[m - 3 : m + 3, m - 3 : m + 3] += 180
            X.append(np.clip(im, 0, 255))
            y.append(c)
    return np.array(X, dtype=np.uint8), np.array(y)


def test_consistency_training_learns_the_pool_from_few_labels_and_repeats_by_seed():
    from models_zoo.transfer import ConsistencyTuner

    X, y = _bars()
    art = pretrain(X, PretrainConfig(width=8, batch_size=32, max_minutes=None, max_steps=3))
    labels = np.full(len(y), -1)
    for c in range(3):
        labels[np.flatnonzero(y == c)[:2]] = c  # 2 labels per class, no probe head to start from
    x = art.adapt(X)

    def fit(steps, seed=0):
        opts = dict(batch_size=6, unlabelled_ratio=4, threshold=0.5, seed=seed, device="cpu")  # exact repeats
        return ConsistencyTuner(art, steps=steps, **opts).fit(x, labels, 3)

    untrained = (fit(0).predict_proba(x).argmax(1) == y).mean()
    tuner = fit(100)
    assert 0.0 < tuner.mask_rate_ <= 1.0  # confident pool images took part
    assert untrained < 0.6 and (tuner.predict_proba(x).argmax(1) == y).mean() > 0.95
    np.testing.assert_array_equal(fit(100).predict_proba(x[:5]), tuner.predict_proba(x[:5]))
    with pytest.raises(ValueError, match="at least one label"):
        ConsistencyTuner(art, steps=1).fit(x, np.full(len(y), -1), 3)


def test_consistency_training_reports_progress_and_stops_when_asked():
    from models_zoo.train import TrainingCancelled
    from models_zoo.transfer import ConsistencyTuner

    X, y = _bars(n_per_class=10)
    art = pretrain(X, PretrainConfig(width=8, batch_size=16, max_minutes=None, max_steps=1))
    labels = np.where(np.arange(len(y)) % 5 == 0, y, -1)
    opts = dict(steps=200, batch_size=4, unlabelled_ratio=2, device="cpu")
    calls = []
    ConsistencyTuner(art, **opts).fit(art.adapt(X), labels, 3, progress=lambda f, m: calls.append((f, m)))
    assert calls == [
        (0.5, "consistency training: step 100 of 200"),
        (1.0, "consistency training: step 200 of 200"),
    ]
    with pytest.raises(TrainingCancelled, match="step 100"):
        ConsistencyTuner(art, **opts).fit(art.adapt(X), labels, 3, should_stop=lambda: True)


def test_fine_tuning_reports_progress_and_stops_when_asked(tiny_artifact):
    from models_zoo.train import TrainingCancelled
    from models_zoo.transfer import FineTuner

    X, y, art = tiny_artifact
    opts = dict(epochs=1, min_steps=200, batch_size=8, device="cpu")
    calls = []
    FineTuner(art, **opts).fit(art.adapt(X), y, 3, progress=lambda f, m: calls.append((f, m)))
    assert calls == [(0.5, "fine-tuning: step 100 of 200"), (1.0, "fine-tuning: step 200 of 200")]
    with pytest.raises(TrainingCancelled, match="fine-tuning stopped at step 100"):
        FineTuner(art, **opts).fit(art.adapt(X), y, 3, should_stop=lambda: True)


@pytest.mark.parametrize("mode", ["propagate", "consistency"])
def test_a_learner_says_which_step_it_is_on_and_stops_between_steps(tiny_artifact, mode):
    # A propagate fit on a large pool takes minutes with nothing to count steps of: it reports each
    # step as it starts (the second view's folds one by one), over [0, 1], and a cancel is honoured
    # before the next. Consistency training's own steps come after, in the same [0, 1].
    from models_zoo.train import TrainingCancelled

    X, y, art = tiny_artifact
    labels = np.where(np.arange(len(y)) % 4 == 0, y, -1)
    cfg = LearnerConfig(
        mode=mode, second_view="hog", second_view_min_labels=1, consistency_steps=100,
        consistency={"batch_size": 8, "unlabelled_ratio": 2},
    )  # fmt: skip
    calls = []
    Learner(art, cfg).fit(X, labels, n_classes=3, progress=lambda f, what: calls.append((f, what)))
    fractions, steps = [f for f, _ in calls], [what for _, what in calls]
    assert fractions == sorted(fractions) and fractions[0] >= 0 and fractions[-1] <= 1
    assert steps[0] == f"spreading {np.count_nonzero(labels >= 0)} labels over the pool"
    assert [s for s in steps if s.startswith("judging")] == [
        f"judging the second view: fold {k} of 5" for k in range(1, 6)
    ]
    assert "fitting the embedding's probe to the spread labels" in steps
    if mode == "consistency":
        assert steps[-1] == "consistency training: step 100 of 100" and fractions[-1] == 1.0
        assert max(f for f, s in calls if not s.startswith("consistency")) <= 0.1
    asked = []

    def stop_at_the_third_fold() -> bool:
        asked.append(1)
        return len(asked) > 4  # spreading, HOG, folds 1 and 2 go ahead

    with pytest.raises(TrainingCancelled, match="stopped before judging the second view: fold 3 of 5"):
        Learner(art, cfg).fit(X, labels, n_classes=3, should_stop=stop_at_the_third_fold)
