"""A user fits a detector in the window on a machine with only 4 normal recordings: the log says the group was
fitted on few clips, and the score column's tooltip says it for every clip that model scored."""

from __future__ import annotations

from PySide6.QtCore import Qt

from engine.data.importers import import_source
from engine.data.toy import ToyConfig, generate
from engine.store import Project


def test_fitting_a_group_on_four_normals_warns_in_the_log_and_the_score_tooltip(qtbot, tmp_path):
    from app import jobs
    from app.main_window import MainWindow
    from app.views.clip_table import FIXED

    data = tmp_path / "few"
    # At this scale the one machine and section has 4 normal training clips.
    generate(data, ToyConfig(scale=0.001, seed=2, duration_s=1.0, sections=1, machines=("fan",)))
    with Project.create(tmp_path / "plant") as project:
        import_source(project, data, "metadata")
    window = MainWindow(use_audio=False)
    qtbot.addWidget(window)
    window.show()
    try:
        with qtbot.waitSignal(window.job_ended, timeout=10000):
            assert window.open_project(tmp_path / "plant")
        with qtbot.waitSignal(window.job_ended, timeout=60000) as ended:
            window.submit("fit", "fit knn", jobs.fit_detectors(["knn"]), window._fitted)
        assert ended.args[1] == "done"
        warned = [line for line in window.log_panel.lines if "fitted on only 4 normal clip(s)" in line]
        assert warned and "knn for fan/section_00" in warned[0]
        model = window.table.model
        column = len(FIXED) + model.detectors.index("knn")
        scored = [r for r, row in enumerate(model.rows) if "knn" in row.scores]
        assert scored, "the test clips were scored after fitting"
        tip = model.data(model.index(scored[0], column), Qt.ItemDataRole.ToolTipRole)
        assert "fitted on only 4 normal clip(s)" in tip
    finally:
        window.shutdown()
