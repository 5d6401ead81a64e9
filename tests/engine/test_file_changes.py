"""Recordings that change or move after import: a changed file is read again before scoring (new checksum,
features computed again, named); moved files are re-pointed by `earmark relocate`, by re-importing the
moved folder, or by looking for them in a folder, and every new file's checksum is checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from engine.data.changes import refresh_changed
from engine.data.importers import import_source
from engine.detectors import runs
from engine.jobs import Progress
from engine.store import Project
from engine.store.relocate import locate_missing, missing_clips
from tests.helpers import write_wav

REPO = Path(__file__).resolve().parents[2]


def earmark(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.main", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )


def noise(seconds: float, seed: int, level: float = 0.1) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * 16000))).astype(np.float32)


def recordings(folder: Path) -> Path:
    rows = ["relative_path,clip_id,machine_type,section_id,split,label"]
    for i in range(4):
        write_wav(folder / "train" / f"train_{i}.wav", noise(1.0, i))
        rows.append(f"train/train_{i}.wav,train_{i},pump,00,train,normal")
    for i in range(2):
        write_wav(folder / "test" / f"test_{i}.wav", noise(1.0, 10 + i))
        rows.append(f"test/test_{i}.wav,test_{i},pump,00,test,normal")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder


def cached_features(project: Project) -> set[str]:
    return {p.stem for p in (project.artifacts / "features").rglob("*.npy")}


def test_a_file_changed_after_import_is_read_again_when_scored(tmp_path):
    folder = recordings(tmp_path / "recordings")
    with Project.create(tmp_path / "plant") as project:
        import_source(project, folder)
        session = runs.Session(project)
        runs.fit(session, "knn")
        first = {d.clip_id: d.score for d in runs.score(session, "knn").detections}
        old = project.clip("test_0")
        assert old.checksum in cached_features(project)

        write_wav(folder / "test" / "test_0.wav", noise(1.5, 77, level=0.6))  # overwritten with other audio
        progress = Progress()
        second = {d.clip_id: d.score for d in runs.score(session, "knn", progress=progress).detections}

        new = project.clip("test_0")
        assert new.checksum != old.checksum and new.duration_s == 1.5
        assert new.qa.rms > old.qa.rms + 10  # louder: the QA figures were measured again
        assert old.checksum not in cached_features(project) and new.checksum in cached_features(project)
        assert second["test_0"] != first["test_0"] and second["test_1"] == first["test_1"]
        assert any(line.startswith("test_0: re-read changed file test_0.wav") for line in progress.problems)
        assert len(progress.problems) == 1  # the unchanged clips pass with one stat each, unmentioned

        again = Progress()
        runs.score(session, "knn", progress=again)
        assert again.problems == []  # read once: the next run takes it as it is


def test_a_file_only_touched_is_not_read_as_changed(tmp_path):
    folder = recordings(tmp_path / "recordings")
    with Project.create(tmp_path / "plant") as project:
        import_source(project, folder)
        session = runs.Session(project)
        runs.fit(session, "knn")
        before = project.clip("test_1")
        os.utime(folder / "test" / "test_1.wav", (1_000_000_000, 1_000_000_000))
        progress = Progress()
        runs.score(session, "knn", progress=progress)

        assert progress.problems == []
        after = project.clip("test_1")
        assert after.checksum == before.checksum and after.file_mtime == 1_000_000_000


def test_relocate_repoints_moved_recordings_and_refuses_a_different_file(tmp_path):
    old, new = tmp_path / "old-disk", tmp_path / "new-disk"
    recordings(old)
    project = tmp_path / "plant"
    earmark("new", project)
    earmark("import", project, old)
    shutil.move(str(old), str(new))
    write_wav(new / "train" / "train_3.wav", noise(1.0, 1234))  # tampered: same name, other audio
    (new / "test" / "test_1.wav").unlink()  # lost

    moved = earmark("relocate", project, old, new)

    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.startswith("Re-pointed 4 clip(s); 0 already in place; 1 with different content")
    assert "1 not found" in moved.stdout
    assert f"train_3: {new / 'train' / 'train_3.wav'} (checksum differs; not re-pointed)" in moved.stderr
    assert f"not found: test_1: {new / 'test' / 'test_1.wav'}" in moved.stderr
    with Project.open(project) as opened:
        paths = {c.clip_id: c.path for c in opened.clips()}
    assert paths["train_0"] == str((new / "train" / "train_0.wav").resolve())
    assert paths["train_3"] == str(old.resolve() / "train" / "train_3.wav")  # left as it was

    nothing = earmark("relocate", project, tmp_path / "elsewhere", new)
    assert nothing.returncode == 1 and "no clip of" in nothing.stderr


def test_reimporting_a_moved_folder_updates_the_paths(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    recordings(old)
    with Project.create(tmp_path / "plant") as project:
        import_source(project, old)
        shutil.move(str(old), str(new))
        report = import_source(project, new)

        assert report.added == 0 and report.already_present == 6 and report.repointed == 6
        assert "6 moved clip(s) re-pointed" in report.lines()[0]
        assert all(Path(c.path).is_relative_to(new.resolve()) for c in project.clips())
        checked = Progress()
        assert len(refresh_changed(project, project.clips(), checked)) == 6 and checked.problems == []

        copy = tmp_path / "copy"
        shutil.copytree(new, copy)
        assert import_source(project, copy).repointed == 0  # the clips' own files still exist: kept


def test_missing_recordings_are_found_in_a_folder_by_name_and_checksum(tmp_path):
    old = recordings(tmp_path / "old")
    with Project.create(tmp_path / "plant") as project:
        import_source(project, old)
        scattered = tmp_path / "backup" / "2026"
        shutil.move(str(old), str(scattered))
        write_wav(scattered / "test" / "test_0.wav", noise(1.0, 555))  # not the same recording any more
        assert len(missing_clips(project)) == 6

        report = locate_missing(project, tmp_path / "backup")

        assert report.repointed == 5 and [c for c, _ in report.mismatched] == ["test_0"]
        assert [c.clip_id for c in missing_clips(project)] == ["test_0"]


def test_a_project_from_before_file_stamps_opens_and_gets_them_at_the_first_score(tmp_path):
    import sqlite_utils

    from engine.store import migrations

    folder = recordings(tmp_path / "recordings")
    with Project.create(tmp_path / "plant") as project:
        import_source(project, folder)
        rows = project.db.execute_returning_dicts("SELECT * FROM clips")
    older = tmp_path / "older"
    older.mkdir()
    db = sqlite_utils.Database(older / "project.sqlite")
    for step in migrations.MIGRATIONS[:2]:  # a project written before the stamps and channel were kept
        step(db)
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '2'), ('application', 'earmark')")
    for row in rows:
        db["clips"].insert({k: v for k, v in row.items() if k not in ("file_size", "file_mtime", "channel")})
    db.conn.commit()
    db.conn.close()

    # A recording of that older project changed on disk after its import (and before any stamp was kept).
    write_wav(folder / "test" / "test_1.wav", noise(1.0, 99, level=0.6))
    with Project.open(older) as project:
        assert all(c.file_size is None and c.channel is None for c in project.clips())
        old_checksum = project.clip("test_1").checksum
        session = runs.Session(project)
        runs.fit(session, "knn")  # each run checks the unstamped clips it reads by checksum, once
        progress = Progress()
        runs.score(session, "knn", progress=progress)
        assert [line.split(" (")[0] for line in progress.problems] == ["test_1: re-read changed file test_1.wav"]
        assert all(c.file_size == os.path.getsize(c.path) for c in project.clips())
        assert project.clip("test_1").checksum != old_checksum  # the changed one was read again, not trusted


def test_a_training_recording_changed_on_disk_makes_its_group_stale_and_a_missing_one_is_said(tmp_path):
    from engine.store.clip_fields import stale_models

    folder = recordings(tmp_path / "recordings")
    with Project.create(tmp_path / "plant") as project:
        import_source(project, folder)
        session = runs.Session(project)
        [model] = runs.fit(session, "knn")
        runs.score(session, "knn")
        lanes = {p.name for p in (project.artifacts).rglob("*.npz")}
        write_wav(folder / "train" / "train_0.wav", noise(1.0, 55, level=0.5))
        runs.score(session, "knn")  # scoring reads only the clips it scores
        assert stale_models(project) == []
        refresh_changed(project, project.clips(split="train"), Progress(), session.cache)
        assert stale_models(project) == [(model.model_id, "knn", "pump/section_00")]

        write_wav(folder / "test" / "test_0.wav", noise(1.0, 56, level=0.5))
        runs.score(session, "knn")
        assert len({p.name for p in project.artifacts.rglob("*.npz")}) == len(lanes)  # the old lane went

        shutil.move(folder / "test" / "test_1.wav", tmp_path / "elsewhere.wav")
        progress = Progress()
        runs.score(session, "knn", progress=progress)  # its features are cached: it is scored, and said missing
        assert [line for line in progress.problems if "not found where they were imported (test_1.wav)" in line]
        assert "earmark relocate" in progress.problems[-1]


def test_a_labelled_recording_changed_on_disk_is_read_again_before_the_leak_classifier_cuts_it(tmp_path):
    from engine.audio.feature_cache import FeatureCache
    from engine.classifiers.leak_data import labelled_segments
    from engine.data.leak_toy import generate_leaks
    from engine.detectors.leak.segments import SegmentSettings
    from engine.labels.exchange import import_labels

    data = generate_leaks(tmp_path / "leaks", files_per_class=1, duration_s=2.0, seed=2)
    with Project.create(tmp_path / "plant") as project:
        import_source(project, data)
        import_labels(project, [data / "labels.csv"])
        cache = FeatureCache(project.artifacts / "features")
        labelled_segments(project, "multiclass", SegmentSettings(), cache, Progress())
        clip = project.clips()[0]
        write_wav(Path(clip.path), noise(2.0, 5, level=0.3))
        progress = Progress()

        labelled_segments(project, "multiclass", SegmentSettings(), cache, progress)

        assert project.clip(clip.clip_id).checksum != clip.checksum
        assert any(line.startswith(f"{clip.clip_id}: re-read changed file") for line in progress.problems)
