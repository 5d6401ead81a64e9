"""The `earmark` command as a user types it: toy, new, import, info, demo; exit codes and messages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def earmark(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.main", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )


def test_toy_new_import_info_and_import_again(tmp_path):
    data, project = tmp_path / "toy", tmp_path / "plant"

    made = earmark("toy", data, "--scale", "0.01", "--seed", "1", "--duration", "0.5", "--sections", "1")
    created = earmark("new", project)
    imported = earmark("import", project, data)
    info = earmark("info", project)
    again = earmark("import", project, data)

    assert made.returncode == 0 and (data / "metadata.csv").is_file()
    assert created.returncode == 0
    assert imported.returncode == 0 and "Imported 111 clip(s)" in imported.stdout
    assert info.returncode == 0
    lines = info.stdout.splitlines()
    assert "111 clip(s)" in lines[0]
    assert any(line.split() == ["fan", "00", "source", "train", "normal", "10"] for line in lines)
    assert any(line.split() == ["valve", "00", "target", "test", "anomaly", "5"] for line in lines)
    assert lines[-1] == "by split: supplemental 12, test 60, train 39"
    assert again.returncode == 0 and "Imported 0 clip(s)" in again.stdout and "111 already" in again.stdout


def test_bad_files_are_named_on_stderr_and_the_project_still_opens(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "fake.wav").write_text("not audio")
    shutil.copy(REPO / "pyproject.toml", folder / "pyproject.wav")
    earmark("new", tmp_path / "p")

    result = earmark("import", tmp_path / "p", folder)
    strict = earmark("import", tmp_path / "p", folder, "--strict")

    assert result.returncode == 0 and "Imported 0 clip(s)" in result.stdout
    assert "fake.wav: not a readable audio file" in result.stderr and "pyproject.wav" in result.stderr
    assert strict.returncode == 1
    assert earmark("info", tmp_path / "p").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("info", "/no/such/project"), "no project at /no/such/project"),
        (("import", "/no/such/project", "."), "no project at"),
    ],
)
def test_user_errors_exit_1_with_one_line(args, message):
    result = earmark(*args)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_creating_a_project_twice_is_a_user_error(tmp_path):
    assert earmark("new", tmp_path / "p").returncode == 0
    result = earmark("new", tmp_path / "p")
    assert result.returncode == 1 and "already holds a project" in result.stderr


def test_bad_usage_exits_2(tmp_path):
    assert earmark("import").returncode == 2
    assert earmark("frobnicate").returncode == 2
    assert earmark("toy", tmp_path, "--scale", "lots").returncode == 2


def test_headless_commands_do_not_load_qt_or_torch(tmp_path):
    code = (
        "import sys; from app.main import main; "
        f"rc = main(['new', {str(tmp_path / 'p')!r}]); "
        "loaded = [m for m in ('PySide6', 'pyqtgraph', 'shiboken6', 'torch') if m in sys.modules]; "
        "print(rc, loaded)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.stdout.strip().endswith("0 []"), result.stderr


def test_demo_creates_the_project_once_and_shows_it(tmp_path):
    folder = tmp_path / "demo"
    options = ("--no-gui", "--project", folder, "--scale", "0.01", "--duration", "0.5", "--ae-epochs", "2")
    first = earmark("demo", *options)
    second = earmark("demo", *options)

    assert first.returncode == 0, first.stderr
    assert "333 clip(s)" in first.stdout  # 3 machines x 3 sections x 37 clips
    assert (folder / "project.sqlite").is_file() and (folder / "audio" / "metadata.csv").is_file()
    assert all(f"Fitting {name}" in first.stdout for name in ("knn", "patch_memory", "dcase_ae", "ensemble"))
    lines = first.stdout.splitlines()
    official = lines.index("Official score (harmonic mean of every AUC source, AUC target and pAUC):")
    scores = [line.split() for line in lines[official + 1 : official + 5]]
    assert sorted(s[0] for s in scores) == ["dcase_ae", "ensemble", "knn", "patch_memory"]
    assert all(0 <= float(s[1]) <= 1 for s in scores)
    assert "Localization (anomalous test clips with known regions):" in lines
    # The second run reuses the data, the project and the fitted models, and shows the same figures.
    assert second.returncode == 0 and "Synthesising" not in second.stdout and "Fitting" not in second.stdout
    assert first.stdout.endswith(second.stdout.split("\n\n", 1)[1])


def test_the_console_script_is_installed():
    script = shutil.which("earmark")
    assert script is not None, "run `pip install -e .` first"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "import" in result.stdout and "demo" in result.stdout


def test_fit_score_evaluate_and_export_from_the_command_line(tmp_path, toy_dataset):
    project = tmp_path / "plant"
    earmark("new", project)
    earmark("import", project, toy_dataset)

    unfitted = earmark("score", project, "--detector", "knn")
    fitted = earmark("fit", project, "--detector", "knn", "--set", "k=2", "--group", "fan/section_00")
    bad_setting = earmark("fit", project, "--detector", "knn", "--set", "k=two")
    scored = earmark("score", project, "--detector", "knn")
    earmark("fit", project, "--detector", "patch_memory", "--group", "fan/section_00")
    earmark("score", project, "--detector", "patch_memory")
    ensemble = earmark("fit", project, "--detector", "ensemble", "--group", "fan/section_00")
    evaluated = earmark("evaluate", project)
    exported = earmark("export", "dcase", project, tmp_path / "results")

    assert unfitted.returncode == 1 and "no fitted knn model" in unfitted.stderr and "earmark fit" in unfitted.stderr
    assert fitted.returncode == 0 and "Fitted knn for fan/section_00" in fitted.stdout
    assert bad_setting.returncode == 1 and "k='two' is not a valid int" in bad_setting.stderr
    assert scored.returncode == 0 and "Scored 20 clip(s)" in scored.stdout
    # the ensemble of the project's fitted detectors names the weights it learnt for the target domain
    weights = ensemble.stdout.split("target-domain weights: ")[1].splitlines()[0]
    assert ensemble.returncode == 0 and [w.split()[0] for w in weights.split(", ")] == ["knn", "patch_memory"]
    assert all(0 < float(w.split()[1]) <= {"knn": 1, "patch_memory": 4}[w.split()[0]] for w in weights.split(", "))
    assert "not scored, no fitted knn model" in scored.stderr  # the other groups, named one by one
    table = evaluated.stdout.splitlines()
    assert evaluated.returncode == 0 and table[0].split()[:3] == ["detector", "machine", "section"]
    assert table[1].split()[:3] == ["knn", "fan", "00"]
    official = table.index("Official score (harmonic mean of every AUC source, AUC target and pAUC):")
    localization = table.index("Localization (anomalous test clips with known regions):")
    for block in (table[official + 1 : official + 3], table[localization + 2 : localization + 4]):
        assert sorted(line.split()[0] for line in block) == ["knn", "patch_memory"]
    assert all(0 <= float(line.split()[1]) <= 1 for line in table[official + 1 : official + 3])
    # 1 s clips: a patch column is 0.5 s wide, so the frame AUROC may be undefined ("-"); the hit rate is not.
    assert all(line.split()[2].endswith("%") for line in table[localization + 2 : localization + 4])
    assert exported.returncode == 0
    assert sorted(p.name for p in (tmp_path / "results" / "knn").iterdir()) == [
        "anomaly_score_fan_section_00_test.csv",
        "decision_result_fan_section_00_test.csv",
    ]


def test_train_leak_from_imported_labels_then_resume_and_bad_settings(tmp_path):
    data, project = tmp_path / "leaks", tmp_path / "p"
    assert earmark("toy-set", "leaks", data, "--count", "3", "--duration", "3").returncode == 0
    earmark("new", project)
    earmark("import", project, data)
    assert earmark("labels", "import", project, data / "labels.csv").returncode == 0
    trained = earmark("train", "leak", project, "--set", "epochs=2", "--set", "batch_size=64")
    assert trained.returncode == 0, trained.stderr
    assert "leak_binary: best file-level leak F1" in trained.stdout
    assert "scored 15 clip(s) with leak_binary" in trained.stdout
    finished = earmark("train", "leak", project, "--resume")
    assert finished.returncode == 1 and "already finished at epoch 2" in finished.stderr
    bad = earmark("train", "leak", project, "--set", "epoch=2")
    assert bad.returncode == 1 and "has no setting 'epoch'" in bad.stderr
