"""A project whose project.sqlite has one damaged page: every command says so in one line and changes
nothing, and `earmark repair` brings back every row that was not on the damaged page. A schema version that
is not a number is named the same way."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.cli import main as cli
from engine.detectors import runs
from engine.errors import ProjectError
from engine.jobs import Progress
from engine.store import Project
from engine.store.labels import Region, add_region, regions
from tests.damage import count_rows, damage_page, settle, table_pages

TABLES = ("clips", "regions", "scores", "models", "label_classes")


@pytest.fixture(scope="module")
def scored_project(tmp_path_factory, toy_dataset) -> Path:
    """A project with clips, the technician's labels and knn's scores, closed as Earmark leaves it."""
    from engine.data.importers import import_source

    folder = tmp_path_factory.mktemp("scored") / "project"
    with Project.create(folder) as project:
        import_source(project, toy_dataset, "metadata")
        for clip in project.clips()[:6]:
            add_region(project, Region(clip.clip_id, 0.1, 0.4, "LEAK"))
        session = runs.Session(project, torch.device("cpu"))
        runs.fit(session, "knn", None, None, Progress())
        runs.score(session, "knn", "test", None, Progress())
    settle(folder / "project.sqlite")
    return folder


@pytest.fixture
def damaged(scored_project, tmp_path) -> tuple[Path, dict[str, int], int]:
    """A copy of the scored project with one page of its clips table overwritten; the rows each table had,
    and how many clips were on the damaged page."""
    folder = tmp_path / "damaged"
    shutil.copytree(scored_project, folder)
    before = {table: count_rows(folder / "project.sqlite", table) for table in TABLES}
    lost = damage_page(folder / "project.sqlite", "clips")
    return folder, before, lost


READING = [
    ["info"],
    ["scores"],
    ["evaluate"],
    ["labels", "export", "{p}", "{out}/labels.csv"],
    ["export", "dcase", "{p}", "{out}/dcase"],
]
WRITING = [
    ["fit", "{p}", "--detector", "knn"],
    ["score", "{p}", "--detector", "knn"],
    ["set", "{p}", "*", "--label", "normal"],
    ["import", "{p}", "{out}"],
]


def _command(words: list[str], folder: Path, out: Path) -> list[str]:
    if len(words) == 1:
        return [words[0], str(folder)]
    return [w.format(p=folder, out=out) for w in words]


def test_every_command_names_the_damaged_project_in_one_line_and_changes_nothing(damaged, tmp_path, capsys):
    folder, _, _ = damaged
    original = (folder / "project.sqlite").read_bytes()
    for words in READING + WRITING:
        status = cli(_command(words, folder, tmp_path))
        err = capsys.readouterr().err.strip()
        assert status == 1, words
        assert len(err.splitlines()) == 1, err
        assert "project.sqlite is damaged" in err and "nothing was changed" in err, err
        assert f"earmark repair {folder}" in err, err
    assert (folder / "project.sqlite").read_bytes() == original


@pytest.mark.parametrize("table", ["clips", "regions", "scores"])
def test_a_damaged_root_page_is_named_in_one_line_too(scored_project, tmp_path, capsys, table):
    folder = tmp_path / "root"
    shutil.copytree(scored_project, folder)
    damage_page(folder / "project.sqlite", table, root=True)
    assert cli(["info", str(folder)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is damaged" in err and "earmark repair" in err, err


def test_damage_met_after_opening_is_named_the_same_way(damaged, tmp_path, capsys, monkeypatch):
    """A page that goes bad while a command runs (quick_check passed at open) still gives the one line."""
    from engine.store import health

    folder, _, _ = damaged
    monkeypatch.setattr(health, "quick_check", lambda conn: [])
    for words in (["info"], ["evaluate"]):  # both read every clip
        assert cli(_command(words, folder, tmp_path)) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is damaged" in err and "earmark repair" in err, err


def test_the_console_script_prints_no_traceback_for_a_damaged_project(damaged):
    folder, _, _ = damaged
    done = subprocess.run(
        [sys.executable, "-m", "app.main", "info", str(folder)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("earmark: error: ") and "is damaged" in done.stderr


def test_repair_recovers_every_row_that_was_not_on_the_damaged_page(damaged, capsys):
    folder, before, lost = damaged
    assert lost > 0
    assert cli(["repair", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"clips: {before['clips'] - lost} row(s) recovered, {lost} lost" in out
    for table in ("regions", "scores", "models", "label_classes"):
        assert f"{table}: {before[table]} row(s) recovered, 0 lost" in out
    copies = list(folder.glob("project.sqlite.damaged-*"))
    assert len(copies) == 1 and str(copies[0]) in out  # the damaged file is kept
    with Project.open(folder) as project:  # opens: quick_check passes
        assert project.count_clips() == before["clips"] - lost
        assert len(regions(project, kinds=("manual",))) == 6  # the technician's labels are all there
        assert project.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert cli(["info", str(folder)]) == 0
    assert cli(["repair", str(folder)]) == 0  # a sound file: nothing to do
    assert "nothing to repair" in capsys.readouterr().out
    assert len(list(folder.glob("project.sqlite.damaged-*"))) == 1


def _clip_rows(database: Path) -> list[tuple]:
    with sqlite3.connect(str(database)) as conn:
        rows = conn.execute("SELECT rowid, * FROM clips ORDER BY rowid").fetchall()
    conn.close()
    return rows


def test_a_damaged_root_page_loses_no_row_and_brings_back_no_deleted_one(scored_project, tmp_path, capsys):
    """SQLite cannot reach the leaf pages under a damaged root page; repair reads them from the file, and
    leaves out what the user had deleted."""
    folder = tmp_path / "root"
    shutil.copytree(scored_project, folder)
    database = folder / "project.sqlite"
    with sqlite3.connect(str(database)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM clips WHERE rowid % 4 = 0")
    conn.close()
    settle(database)
    before = _clip_rows(database)
    assert len(table_pages(database, "clips")) > 1  # a root page above leaf pages
    damage_page(database, "clips", root=True)
    assert cli(["repair", str(folder)]) == 0
    assert f"clips: {len(before)} row(s) recovered, 0 lost" in capsys.readouterr().out
    assert _clip_rows(database) == before  # every value of every clip, and no deleted clip back
    with Project.open(folder) as project:
        assert project.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_damaged_page_of_the_schema_itself_loses_no_clip_and_no_label(scored_project, tmp_path, capsys):
    folder = tmp_path / "schema"
    shutil.copytree(scored_project, folder)
    database = folder / "project.sqlite"
    before = _clip_rows(database)
    labels = count_rows(database, "regions")
    damage_page(database, "sqlite_schema")
    assert cli(["info", str(folder)]) == 1
    assert "is damaged" in capsys.readouterr().err
    assert cli(["repair", str(folder)]) == 0
    assert _clip_rows(database) == before
    assert count_rows(database, "regions") == labels
    assert cli(["info", str(folder)]) == 0


def test_region_ids_are_not_reused_after_a_repair(damaged):
    folder, _, _ = damaged
    with sqlite3.connect(str(folder / "project.sqlite")) as conn:
        before = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'regions'").fetchone()[0]
    conn.close()
    assert cli(["repair", str(folder)]) == 0
    with Project.open(folder) as project:
        seq = project.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'regions'").fetchone()[0]
    assert seq == before


@pytest.mark.parametrize("value", ["abc", "", "5.5"])
def test_a_schema_version_that_is_not_a_number_is_named_and_repair_mends_it(scored_project, tmp_path, capsys, value):
    folder = tmp_path / "edited"
    shutil.copytree(scored_project, folder)
    with sqlite3.connect(str(folder / "project.sqlite")) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [value])
    conn.close()
    with pytest.raises(ProjectError, match="not a number"):
        Project.open(folder)
    assert cli(["info", str(folder)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"schema version {value!r}" in err and "earmark repair" in err
    assert cli(["repair", str(folder)]) == 0
    with Project.open(folder) as project:
        assert project.count_clips() == count_rows(scored_project / "project.sqlite", "clips")
