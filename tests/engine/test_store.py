"""The project store: a real SQLite file that survives reopening, refuses what it cannot read, and keeps
each batch of writes whole."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import sqlite_utils

from engine.audio.io import QA
from engine.data.clip import Clip
from engine.errors import ProjectError
from engine.store import Project
from engine.store.migrations import LATEST_VERSION, migrate, schema_version


def _clip(n: int, **fields) -> Clip:
    base = dict(
        clip_id=f"fan/test/clip_{n}",
        path=f"/data/clip_{n}.wav",
        sample_rate=16000,
        duration_s=10.0,
        machine_type="fan",
        section_id="00",
        domain="source",
        split="test",
        label="anomaly",
        attributes={"speed_level": "2"},
        anomaly_regions=((1.0, 1.5), (4.0, 6.0)),
        qa=QA(-20.0, 0.5, 0.0, 0.1),
        checksum=f"sum{n}",
        format="WAV/PCM_16",
    )
    base.update(fields)
    return Clip(**base)


def test_a_new_project_is_a_folder_with_a_wal_database_and_artifacts(tmp_path):
    with Project.create(tmp_path / "plant") as project:
        assert (tmp_path / "plant" / "project.sqlite").is_file()
        assert (tmp_path / "plant" / "artifacts").is_dir()
        assert project.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert {"meta", "clips", "regions", "label_classes", "models", "jobs", "scores"} <= set(
            project.db.table_names()
        )


def test_default_label_classes_have_colours_and_shortcuts(project):
    classes = project.label_classes()
    assert [c.name for c in classes] == ["LEAK", "NORMAL", "QUIET", "RANDOM", "MECHANICAL"]
    assert [c.shortcut for c in classes] == ["1", "2", "3", "4", "5"]
    assert len({c.colour for c in classes}) == 5 and all(c.colour.startswith("#") for c in classes)


def test_migrations_applied_twice_change_nothing(project):
    before = project.db.execute("SELECT count(*) FROM label_classes").fetchone()[0]
    schema = project.db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()

    assert migrate(project.db) == LATEST_VERSION
    assert schema_version(project.db) == LATEST_VERSION
    assert project.db.execute("SELECT count(*) FROM label_classes").fetchone()[0] == before
    assert project.db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema


def test_clips_and_their_truth_regions_survive_reopening(tmp_path):
    clip = _clip(1)
    with Project.create(tmp_path / "p") as project:
        project.add_clips([clip, _clip(2, label="normal", anomaly_regions=())], source="test")
    with Project.open(tmp_path / "p") as reopened:
        assert reopened.clip("fan/test/clip_1") == clip
        assert reopened.clip("fan/test/clip_1").attributes == {"speed_level": "2"}
        assert [c.clip_id for c in reopened.clips(label="normal")] == ["fan/test/clip_2"]
        truth = reopened.db.execute("SELECT label, kind FROM regions").fetchall()
        assert truth == [("anomaly", "truth"), ("anomaly", "truth")]


def test_a_batch_with_one_bad_row_writes_nothing(project):
    project.add_clips([_clip(1)], source="test")
    with pytest.raises(sqlite3.IntegrityError):
        project.add_clips([_clip(2), _clip(3), _clip(1, checksum="other")], source="test")  # clip_1 again
    assert [c.clip_id for c in project.clips()] == ["fan/test/clip_1"]
    assert project.db.execute("SELECT count(*) FROM regions").fetchone()[0] == 2


def test_each_thread_has_its_own_connection_and_sees_the_others_writes(project):
    seen = {}

    def worker():
        seen["db"] = project.db
        project.add_clips([_clip(7)], source="thread")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["db"] is not project.db
    assert project.clip_ids() == {"fan/test/clip_7"}


def test_opening_something_that_is_not_a_project_is_a_clear_error(tmp_path):
    with pytest.raises(ProjectError, match="no project at .*earmark new"):
        Project.open(tmp_path / "nothing")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "project.sqlite").write_text("hello, I am not a database " * 100)
    with pytest.raises(ProjectError, match="not an Earmark project"):
        Project.open(tmp_path / "text")
    (tmp_path / "other").mkdir()
    sqlite_utils.Database(tmp_path / "other" / "project.sqlite")["birds"].insert({"name": "wren"})
    with pytest.raises(ProjectError, match="not an Earmark project"):
        Project.open(tmp_path / "other")


def test_a_project_from_a_newer_version_is_refused_untouched(tmp_path):
    Project.create(tmp_path / "p").close()
    db = sqlite_utils.Database(tmp_path / "p" / "project.sqlite")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(LATEST_VERSION + 1)])
    db.conn.commit()
    db.close()

    with pytest.raises(ProjectError, match="newer Earmark"):
        Project.open(tmp_path / "p")
    db = sqlite_utils.Database(tmp_path / "p" / "project.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(LATEST_VERSION + 1)


def test_creating_over_an_existing_project_is_refused(tmp_path):
    with Project.create(tmp_path / "p") as project:
        project.add_clips([_clip(1)], source="test")
    with pytest.raises(ProjectError, match="already holds a project"):
        Project.create(tmp_path / "p")
    with Project.open(tmp_path / "p" / "project.sqlite") as project:  # the file itself opens too
        assert project.count_clips() == 1


def test_jobs_are_recorded_with_how_they_ended_and_interrupted_ones_are_marked(project):
    from engine.store import job_log

    done = job_log.start(project, "fit", {"detector": "knn"})
    job_log.finish(project, done, "done")
    cut_short = job_log.start(project, "score")  # the process dies here
    assert job_log.recover(project) == 1
    rows = {row["job_id"]: row for row in job_log.jobs(project)}
    assert rows[done]["status"] == "done" and rows[done]["finished_at"]
    assert rows[cut_short]["status"] == "failed" and "interrupted" in rows[cut_short]["message"]
    with pytest.raises(ValueError):
        job_log.finish(project, done, "finished")
