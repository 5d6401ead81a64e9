"""Dropping recordings with no machine or section on a project with fan and valve fitted: the table and the
status line say which group's models scored each drop, that the group was guessed, or that the drop is unlike
every trained group; once the user says what a drop is, it is scored again by its own group's models."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import soundfile as sf

from app.views.clip_table import FIXED
from app.window_drops import AUTO_GROUP
from engine.data.toy import plan, render
from engine.store import results
from tests.app.conftest import TINY_DEMO, write_tone
from tests.app.test_main_window import drop


def new_recording(folder: Path, machine: str) -> Path:
    """A new recording of the demo's machine (section 00), written outside the data set."""
    config = TINY_DEMO.toy
    item = next(i for i in plan(config) if i.machine == machine and i.split == "test" and i.label == "normal")
    item = dataclasses.replace(item, index=900, seed=(*item.seed[:-1], 900))
    samples, _ = render(item, config)
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / f"my_{machine}.wav", samples, config.sample_rate, subtype="PCM_16")
    return folder / f"my_{machine}.wav"


def chirp(folder: Path) -> Path:
    t = np.arange(2 * 16000) / 16000
    sf.write(folder / "chirp.wav", (0.8 * np.sin(2 * np.pi * (200 + 1500 * t) * t)).astype(np.float32), 16000)
    return folder / "chirp.wav"


def cell(window, clip_id: str, column: str) -> str:
    model = window.table.model
    index = model.index(model.row_of(clip_id), FIXED.index(column) if column in FIXED else model.columnCount() - 1)
    return model.data(index)


def dropped(qtbot, window, path: Path):
    with qtbot.waitSignal(window.drop_scored, timeout=60000) as blocker:
        drop(window, [path])
    return blocker.args[0]


def test_a_drop_is_shown_as_scored_by_the_group_it_resembles(qtbot, window, tmp_path):
    assert window.drop_group.currentText() == AUTO_GROUP  # the default for a project
    result = dropped(qtbot, window, new_recording(tmp_path, "fan"))
    [clip_id] = result.clip_ids
    assert cell(window, clip_id, "machine") == "fan (guessed)"
    assert cell(window, clip_id, "section") == "00 (guessed)"
    assert cell(window, clip_id, "decision") in ("normal", "anomaly")
    status = window.statusBar().currentMessage()
    assert status.startswith(f"{clip_id}: scored by fan/section_00 (guessed: closest of 2 groups")
    # Its scores are the fan models', and the guess is still shown by the next window on this project.
    records = {m.model_id: m.group_key for m in results.models(window.project)}
    assert {
        records[s.model_id] for s in window.table.model.rows[window.table.model.row_of(clip_id)].scores.values()
    } == {"fan/section_00"}
    window.refresh()
    assert cell(window, clip_id, "machine") == "fan (guessed)"


def test_a_drop_unlike_every_group_says_so_and_is_scored_again_once_its_group_is_known(qtbot, window, tmp_path):
    result = dropped(qtbot, window, chirp(tmp_path))
    [clip_id] = result.clip_ids
    assert cell(window, clip_id, "decision") == "unlike every trained group"
    assert window.statusBar().currentMessage().startswith(f"{clip_id}: unlike every trained group")
    # The user says it is a valve of section 00 (the Clip properties dock writes these fields), then rescores.
    project = window.project
    with project.db.atomic():
        project.db.execute("UPDATE clips SET machine_type = 'valve', section_id = '00' WHERE clip_id = ?", [clip_id])
    with qtbot.waitSignal(window.drop_scored, timeout=60000):
        window.rescore_clips([clip_id])
    assert cell(window, clip_id, "machine") == "valve" and cell(window, clip_id, "section") == "00"
    assert cell(window, clip_id, "decision") in ("normal", "anomaly")
    assert window.statusBar().currentMessage().startswith(f"{clip_id}: scored by valve/section_00 (its own group)")
    records = {m.model_id: m.group_key for m in results.models(project)}
    stored = results.clip_scores(project, clip_id)[clip_id]
    assert {records[s.model_id] for s in stored.values()} == {"valve/section_00"}


def test_five_dropped_files_are_scored_in_one_pass_reading_only_their_own_rows(qtbot, window, tmp_path, monkeypatch):
    from engine.detectors.base import Detector
    from engine.store.project import Project

    window.drop_group.setCurrentText("fan/section_00")
    files = [write_tone(tmp_path / f"line_{i}.wav", 1.0, seed=i, burst=i == 4) for i in range(5)]
    calls, full_reads = [], []
    score, sources, clips = Detector.score, Project.clip_sources, Project.clips

    def counted_score(self, batch, progress=None):
        calls.append((self.key, len(batch)))
        return score(self, batch, progress)

    def counted_sources(self, clip_ids=None):
        if clip_ids is None:
            full_reads.append("clip_sources")
        return sources(self, clip_ids)

    def counted_clips(self, **where):
        if not where:
            full_reads.append("clips")
        return clips(self, **where)

    monkeypatch.setattr(Detector, "score", counted_score)
    monkeypatch.setattr(Project, "clip_sources", counted_sources)
    monkeypatch.setattr(Project, "clips", counted_clips)
    before = len(window.jobs)
    with qtbot.waitSignal(window.drop_scored, timeout=60000) as blocker:
        drop(window, files)
    result = blocker.args[0]
    # One job scored the five files: each model was called once with all five (none clip by clip) ...
    assert [job.kind for job in window.jobs[before:]] == ["drop"] and window.jobs[-1].status == "done"
    assert len(result.clip_ids) == 5 and all(n == 5 for _, n in calls)
    fitted = set(results.fitted_detectors(window.project))
    assert {key for key, _ in calls} == fitted
    # ... and every file got every detector's score, shown in the table.
    for clip_id in result.clip_ids:
        assert set(result.scored[clip_id]) == fitted
        row = window.table.model.rows[window.table.model.row_of(clip_id)]
        assert row.source == "inbox" and set(row.scores) == fitted
    assert max(result.scored[c]["knn"] for c in result.clip_ids) == result.scored[result.clip_ids[4]]["knn"]
    # Past the import (which looks up the project's checksums), no step read every clip's row: the job and the
    # table read the dropped clips' rows, and the data-set tree counts its clips in SQL (it was three reads).
    assert full_reads == []
