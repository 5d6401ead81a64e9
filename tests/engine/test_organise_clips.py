"""A folder of plain WAVs, organised without a metadata.csv: folder conventions, import defaults, `earmark set`
(ids, globs, --where), its refusals, and models that go stale when their training clips change."""

from __future__ import annotations

import pytest

from engine.cli import main
from engine.data.importers import import_files, import_source
from engine.detectors import runs
from engine.errors import EarmarkError
from engine.jobs import Progress
from engine.store import Project, results
from engine.store.clip_fields import restore_fields, select_clips, set_fields, stale_models
from tests.helpers import write_hum


def earmark(capsys, *args) -> tuple[int, str, str]:
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def fields(project: Project) -> dict[str, tuple]:
    return {c.clip_id: (c.machine_type, c.section_id, c.domain, c.split, c.label) for c in project.clips()}


@pytest.fixture
def recordings(tmp_path):
    """Monday's recordings (the pump running normally) and Tuesday's (some hum, some with a knock); plain WAVs
    with nothing but their names to go on."""
    root = tmp_path / "recordings"
    for i in range(6):
        write_hum(root / "monday" / f"mon_{i}.wav", seed=i)
    for i in range(4):
        write_hum(root / "tuesday" / f"hum_{i}.wav", seed=100 + i)
        write_hum(root / "tuesday" / f"knock_{i}.wav", seed=200 + i, burst=True)
    return root


def test_plain_wavs_go_from_new_to_evaluated_with_import_flags_and_set(tmp_path, recordings, capsys):
    project = tmp_path / "pump_project"
    assert earmark(capsys, "new", project)[0] == 0
    assert earmark(capsys, "import", project, recordings / "tuesday")[0] == 0

    status, _, err = earmark(capsys, "fit", project, "--detector", "knn")
    assert status == 1 and "no normal training clips" in err
    assert f"earmark set {project} 'pump_*' --machine pump --split train --label normal" in err

    status, out, _ = earmark(
        capsys,
        "import",
        project,
        recordings / "monday",
        "--machine",
        "pump",
        "--section",
        "0",
        "--domain",
        "source",
        "--split",
        "train",
        "--label",
        "normal",
    )
    assert status == 0 and "Imported 6 clip(s)" in out
    status, out, _ = earmark(
        capsys,
        "set",
        project,
        "hum_*",
        "knock_*",
        "--machine",
        "pump",
        "--section",
        "00",
        "--domain",
        "source",
        "--split",
        "test",
    )
    assert status == 0 and "on 8 clip(s)" in out
    status, out, _ = earmark(capsys, "set", project, "knock_*.wav", "--where", "split=test", "--label", "anomaly")
    assert status == 0 and "on 4 clip(s)" in out
    status, out, _ = earmark(
        capsys, "set", project, "--where", "split=test", "--where", "label=none", "--label", "normal"
    )
    assert status == 0 and "on 4 clip(s)" in out

    status, out, _ = earmark(capsys, "fit", project, "--detector", "knn")
    assert status == 0 and "Fitted knn for pump/section_00" in out and "6 training clip(s)" in out
    status, out, _ = earmark(capsys, "score", project, "--detector", "knn")
    assert status == 0 and "Scored 8 clip(s)" in out
    status, out, _ = earmark(capsys, "evaluate", project)
    assert status == 0
    row = next(line.split() for line in out.splitlines() if line.startswith("knn"))
    assert row[:3] == ["knn", "pump", "00"] and row[-1] == "8"
    assert float(row[3]) == pytest.approx(1.0)  # every knock above every hum: a burst is no subtle fault

    with Project.open(project) as p:
        summary = {
            (r["machine_type"], r["section_id"], r["domain"], r["split"], r["label"]): r["clips"] for r in p.summary()
        }
    assert summary == {
        ("pump", "00", "source", "test", "anomaly"): 4,
        ("pump", "00", "source", "test", "normal"): 4,
        ("pump", "00", "source", "train", "normal"): 6,
    }


def test_folder_names_say_split_label_section_and_machine_at_any_depth(project, tmp_path):
    root = tmp_path / "site"
    write_hum(root / "plant_a" / "pump" / "train" / "normal" / "p1.wav", seed=1)
    write_hum(root / "plant_a" / "pump" / "test" / "Abnormal" / "p2.wav", seed=2)
    write_hum(root / "fan" / "section_01" / "target" / "ok" / "f1.wav", seed=3)
    write_hum(root / "fan" / "section 2" / "testing" / "f2.wav", seed=4)
    write_hum(root / "valve" / "night" / "v1.wav", seed=5)
    write_hum(root / "healthy" / "h1.wav", seed=6)

    report = import_source(project, root)

    assert report.format == "folder" and report.added == 6
    assert fields(project) == {
        "plant_a/pump/train/normal/p1": ("pump", None, None, "train", "normal"),
        "plant_a/pump/test/Abnormal/p2": ("pump", None, None, "test", "anomaly"),
        "fan/section_01/target/ok/f1": ("fan", "01", "target", None, "normal"),
        "fan/section 2/testing/f2": ("fan", "02", None, "test", None),
        "valve/night/v1": (None, None, None, None, None),  # no folder says what it is
        "healthy/h1": (None, None, None, None, "normal"),  # nothing above healthy/ to name the machine
    }


def test_import_defaults_fill_only_what_the_folders_leave_empty(project, tmp_path):
    root = tmp_path / "pump_week"
    write_hum(root / "p1.wav", seed=1)
    write_hum(root / "anomaly" / "p2.wav", seed=2)
    write_hum(root / "test" / "p3.wav", seed=3)
    dropped = write_hum(tmp_path / "loose" / "p4.wav", seed=4)

    import_source(project, root, defaults={"machine": "pump", "section": "3", "split": "train", "label": "normal"})
    import_files(project, [dropped], defaults={"machine": "pump", "domain": "target"})

    assert fields(project) == {
        "p1": ("pump", "03", None, "train", "normal"),
        "anomaly/p2": ("pump", "03", None, "train", "anomaly"),  # the folder says anomaly: it stays one
        "test/p3": ("pump", "03", None, "test", "normal"),
        "p4": ("pump", None, "target", None, None),
    }
    with pytest.raises(EarmarkError, match="split must be one of train, test, supplemental"):
        import_source(project, root, defaults={"split": "validation"})


def test_a_bad_value_or_an_unmatched_glob_changes_nothing_and_says_why(tmp_path, recordings, capsys):
    project = tmp_path / "p"
    earmark(capsys, "new", project)
    earmark(capsys, "import", project, recordings)
    with Project.open(project) as p:
        before = fields(p)

    refusals = [
        (("hum_*", "--label", "broken"), "label must be one of normal, anomaly or none, not 'broken'"),
        (("hum_*", "--domain", "both"), "domain must be one of source, target or none"),
        (("hum_*", "--machine", "pump/fan"), "may not contain a slash"),
        (("hum_*", "nothing_like_this*", "--split", "test"), "no clip matches 'nothing_like_this*'"),
        (("--split", "test"), "say which clips"),
        (("hum_*",), "say what to set"),
        (("--where", "colour=red", "--split", "test"), "unknown field 'colour'"),
        (("--where", "split", "--split", "test"), "write FIELD=VALUE"),
        (("knock_*", "--where", "split=train", "--label", "anomaly"), "no clip with split=train matches"),
    ]
    for args, message in refusals:
        status, out, err = earmark(capsys, "set", project, *args)
        assert status == 1 and message in err and not out, args

    with Project.open(project) as p:
        assert fields(p) == before


def test_set_by_id_and_clearing_a_field(project, recordings):
    import_source(project, recordings, defaults={"machine": "pump", "split": "test", "label": "normal"})

    change = set_fields(project, select_clips(project, ["tuesday/knock_0"]), {"label": "anomaly"})
    cleared = set_fields(project, select_clips(project, ["mon_*"]), {"split": "none", "label": None})

    assert change.matched == change.changed == 1 and project.clip("tuesday/knock_0").label == "anomaly"
    assert cleared.changed == 6
    assert {(c.split, c.label) for c in project.clips(machine_type="pump") if c.clip_id.startswith("monday")} == {
        (None, None)
    }


def test_changing_training_clips_makes_models_stale_until_refitted(project, recordings, capsys):
    import_source(
        project,
        recordings / "monday",
        defaults={"machine": "pump", "section": "00", "split": "train", "label": "normal"},
    )
    import_source(project, recordings / "tuesday", defaults={"machine": "pump", "section": "00", "split": "test"})
    session = runs.Session(project)
    runs.fit(session, "knn")
    [model] = results.models(project, "knn")
    assert not model.stale and stale_models(project) == []

    test_only = set_fields(project, select_clips(project, ["knock_*"]), {"label": "anomaly"})
    assert test_only.stale == [] and not results.models(project, "knn")[0].stale  # test clips: still fresh

    moved = set_fields(project, select_clips(project, ["mon_0"]), {"machine": "fan"})
    assert moved.stale == [(model.model_id, "knn", "pump/section_00")]
    assert results.latest_models(project, "knn")["pump/section_00"].stale

    status, out, _ = earmark(capsys, "info", project.folder)
    assert status == 0 and out.splitlines()[-1].endswith("knn pump/section_00")
    set_fields(project, select_clips(project, ["hum_*", "knock_*"]), {"domain": "source"})  # something to evaluate
    set_fields(project, select_clips(project, ["hum_*"]), {"label": "normal"})
    for command in (("score", project.folder, "--detector", "knn"), ("evaluate", project.folder)):
        status, _, err = earmark(capsys, *command)  # figures from a stale model come with a warning
        assert status == 0 and "warning: stale models" in err and "knn pump/section_00" in err, err

    restore_fields(project, moved)  # undo: the model fits its clips again
    assert project.clip("mon_0").machine_type == "pump" and stale_models(project) == []

    became_training = set_fields(project, select_clips(project, ["hum_1"]), {"split": "train", "label": "normal"})
    assert [group for _, _, group in became_training.stale] == ["pump/section_00"]
    runs.fit(session, "knn")
    latest = results.latest_models(project, "knn")["pump/section_00"]
    assert latest.model_id > model.model_id and not latest.stale and latest.metrics["trained_on"] == 7
    assert stale_models(project) == []

    # A recording to score is no training clip; another normal recording of the pump is.
    import_files(
        project,
        [write_hum(recordings / "wednesday" / "wed_0.wav", seed=300)],
        defaults={"machine": "pump", "section": "00", "split": "test"},
    )
    assert stale_models(project) == []
    import_files(
        project,
        [write_hum(recordings / "wednesday" / "wed_1.wav", seed=301)],
        defaults={"machine": "pump", "section": "00", "split": "train", "label": "normal"},
    )
    assert stale_models(project) == [(latest.model_id, "knn", "pump/section_00")]


def test_a_model_whose_clips_change_while_it_is_fitted_is_saved_stale(project, recordings, monkeypatch):
    """The window's Clip properties write on the GUI thread while Fit all runs on the engine thread: a model
    fitted on clips that changed meanwhile must not pass for fresh."""
    from engine.detectors.knn.detector import KnnDetector

    import_source(
        project,
        recordings / "monday",
        defaults={"machine": "pump", "section": "00", "split": "train", "label": "normal"},
    )
    fit = KnnDetector.fit

    def fit_while_the_user_edits(self, clips, progress=None):
        fit(self, clips, progress)
        with Project.open(project.folder) as elsewhere:  # another connection, as the GUI thread has
            set_fields(elsewhere, select_clips(elsewhere, ["mon_5"]), {"split": "test"})

    monkeypatch.setattr(KnnDetector, "fit", fit_while_the_user_edits)
    progress = Progress()
    [model] = runs.fit(runs.Session(project), "knn", progress=progress)
    assert model.stale and stale_models(project) == [(model.model_id, "knn", "pump/section_00")]
    assert any("changed while it was fitted" in line for line in progress.problems)
