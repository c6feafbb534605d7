import os

from workers.jobs.storage import store_file


def test_store_file_removes_temp_copies_left_by_dead_writers(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    src = tmp_path / "model.bin"
    src.write_bytes(b"new model")
    folder = tmp_path / "media" / "models" / "1"
    folder.mkdir(parents=True)
    dead = folder / ".job-1.joblib.4194309.tmp"  # above the largest pid Linux allows: a dead writer
    live = folder / f".job-1.joblib.{os.getppid()}.tmp"  # a running writer's copy stays
    dead.write_bytes(b"half a model")
    live.write_bytes(b"in progress")
    store_file(src, "models/1/job-1.joblib")
    assert (folder / "job-1.joblib").read_bytes() == b"new model"
    assert not dead.exists() and live.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(["job-1.joblib", live.name])
