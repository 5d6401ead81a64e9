"""What a user meets when a file the project refers to is cut short, damaged, or recorded outside the project:
one clear line naming it and saying what to do (score again, fit again), and the rest of the work goes on.
And what is left behind by a killed process: cleaned when the project opens."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.detectors import runs
from engine.detectors.registry import load_model
from engine.errors import EarmarkError
from engine.files import safe_name
from engine.jobs import RecordingProgress
from engine.store import Project, results

GROUP = "fan/section_00"


@pytest.fixture
def fitted(toy_project) -> Project:
    session = runs.Session(toy_project)
    runs.fit(session, "knn", group=GROUP)
    runs.fit(session, "knn", group="valve/section_00")
    runs.score(session, "knn", group=GROUP)
    return toy_project


def model_folder(project: Project, group: str = GROUP) -> Path:
    return project.folder / results.latest_models(project, "knn")[group].artifact


def cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_evaluate_names_a_truncated_lanes_file_and_gives_every_figure(fitted, capsys):
    rows = [r for r in results.latest_scores(fitted, split="test") if r.label == "anomaly"]
    clip = next(c for c in fitted.clips(split="test") if c.clip_id == rows[0].clip_id)
    assert clip.anomaly_regions, "the toy's anomalous clips carry their regions: localization reads the lanes"
    cut_in_half(fitted.folder / rows[0].map_artifact)

    assert main(["evaluate", str(fitted.folder)]) == 0
    out, err = capsys.readouterr()
    assert "Official score" in out and "Localization" in out
    [warning] = [line for line in err.splitlines() if rows[0].clip_id in line]
    assert rows[0].map_artifact.rsplit("/", 1)[1] in warning and "score" in warning and "damaged" in warning
    assert "Traceback" not in err


def test_a_half_written_weights_file_is_named_and_the_other_groups_are_scored(fitted, capsys):
    cut_in_half(model_folder(fitted) / "model.safetensors")
    with pytest.raises(EarmarkError, match=r"the model in .*fan_section_00.* is damaged: .*fit the detector again"):
        load_model(model_folder(fitted))

    progress = RecordingProgress()
    run = runs.score(runs.Session(fitted), "knn", progress=progress)
    assert run.groups == ["valve/section_00"]
    assert any(GROUP in line and "fit the detector again" in line for line in progress.problems)

    assert main(["score", str(fitted.folder), "--detector", "knn", "--group", GROUP]) == 1
    err = capsys.readouterr().err
    assert "damaged" in err and "fit the detector again" in err and "Traceback" not in err


def test_a_model_json_without_config_gives_a_clear_error(fitted, capsys):
    meta_file = model_folder(fitted) / "model.json"
    meta = json.loads(meta_file.read_text())
    del meta["config"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(
        EarmarkError,
        match=r"the model in .* is damaged: model.json has no valid 'config'; "
        r"fit the detector again",
    ):
        load_model(model_folder(fitted))
    assert main(["score", str(fitted.folder), "--detector", "knn", "--group", GROUP]) == 1
    err = capsys.readouterr().err
    assert "model.json has no valid 'config'" in err and "Traceback" not in err


def test_a_model_recorded_outside_the_project_is_refused(fitted, tmp_path):
    # A sound model placed outside the project, and the project's row pointed at it with ../../
    outside = tmp_path / "elsewhere" / "model"
    shutil.copytree(model_folder(fitted), outside)
    relative = os.path.relpath(outside, fitted.folder)
    assert relative.startswith("..")
    record = results.latest_models(fitted, "knn")[GROUP]
    with fitted.db.atomic():
        fitted.db.execute("UPDATE models SET artifact = ? WHERE model_id = ?", [relative, record.model_id])

    progress = RecordingProgress()
    run = runs.score(runs.Session(fitted), "knn", progress=progress)
    assert GROUP not in run.groups
    assert any("outside the project folder" in line and relative in line for line in progress.problems)


def test_lanes_recorded_outside_the_project_are_refused(fitted, tmp_path):
    row = results.latest_scores(fitted)[0]
    outside = tmp_path / "lanes.npz"
    np.savez(outside, frame_scores=np.ones(3), frame_times=np.arange(3.0))
    relative = os.path.relpath(outside, fitted.folder)
    with fitted.db.atomic():
        fitted.db.execute(
            "UPDATE scores SET map_artifact = ? WHERE model_id = ? AND clip_id = ?",
            [relative, row.model_id, row.clip_id],
        )
    with pytest.raises(EarmarkError, match="outside the project folder"):
        results.load_lanes(fitted, relative)


def test_leftover_temporary_files_are_removed_when_the_project_opens(fitted):
    folder = fitted.folder
    lanes = results.latest_scores(fitted)[0].map_artifact
    killed_score = (folder / lanes).with_name(".abc.npz.0123abcd.part")  # a lanes file cut by a kill
    killed_cache = folder / "artifacts" / "features" / "x" / "ab" / "abcd.npy.part.npy"  # an older cache write
    killed_fit = folder / "artifacts" / "models" / "knn" / safe_name("fan/section_00") / ".model.89abcdef.part"
    being_written = (folder / lanes).with_name(".def.npz.4567cdef.part")  # another process, right now
    for path in (killed_score, killed_cache, being_written):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PK\x03\x04 half")
    killed_fit.mkdir()
    (killed_fit / "model.safetensors").write_bytes(b"half")
    a_day_ago = time.time() - 24 * 3600
    for path in (killed_score, killed_cache, killed_fit):
        os.utime(path, (a_day_ago, a_day_ago))
    fitted.close()

    with Project.open(folder) as project:
        assert not killed_score.exists() and not killed_cache.exists() and not killed_fit.exists()
        assert being_written.exists()
        assert all(results.load_lanes(project, row.map_artifact) for row in results.latest_scores(project))
        assert len(results.models(project)) == 2


def test_a_model_folder_whose_writer_waits_out_the_longest_lock_is_not_removed_by_another_open(fitted):
    """A fit has written its model folder and waits (up to WRITE_WAIT_S) for another process's lock to
    record it; meanwhile a third process opens the project. The folder is its writer's, not a leftover."""
    from engine.store.project import WRITE_WAIT_S

    waiting = fitted.folder / "artifacts" / "models" / "knn" / safe_name("fan/section_00") / ".model.0badcafe.part"
    waiting.mkdir()
    (waiting / "model.safetensors").write_bytes(b"complete, not yet renamed")
    written = time.time() - WRITE_WAIT_S - 60  # a little longer than the longest wait, writing included
    os.utime(waiting, (written, written))
    fitted.close()

    with Project.open(fitted.folder):
        assert (waiting / "model.safetensors").read_bytes() == b"complete, not yet renamed"
