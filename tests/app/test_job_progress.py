"""The Jobs dock shows a job as one overall fraction: nested steps (detector, section, epoch) roll up into
its bar, with the innermost step's message and the time left; Fit all says how long it will take first."""

from __future__ import annotations

import threading

from PySide6.QtWidgets import QMessageBox

from engine.jobs import TimeLeft


def test_epoch_66_of_the_first_section_of_the_first_detector_shows_as_two_percent(qtbot, window):
    reached, go_on = threading.Event(), threading.Event()

    def fit_all_like(worker, progress):
        section = progress.child("knn (1/3): ", 0, 3).child("fan section 00 (1/9): ", 0, 9)
        section.update(66, 100, "epoch 66/100")
        reached.set()
        go_on.wait(10)
        section.update(100, 100, "epoch 100/100")

    job = window.submit("fit", "fit all detectors", fit_all_like)
    try:
        qtbot.waitUntil(
            lambda: job.id in window.jobs_panel.rows and window.jobs_panel.rows[job.id].bar.value() > 0, timeout=5000
        )
        row = window.jobs_panel.rows[job.id]
        shown = (row.bar.value() / row.bar.maximum(), row.bar.text(), row.message.text())
    finally:
        with qtbot.waitSignal(window.job_ended, timeout=10000):
            go_on.set()
    assert abs(shown[0] - 0.66 / 27) < 0.001
    assert shown[1:] == ("2%", "knn (1/3): fan section 00 (1/9): epoch 66/100")


def test_the_jobs_dock_says_about_how_many_minutes_are_left(qtbot, window):
    now = [0.0]
    window.jobs_panel.add(999, "fit all detectors")
    row = window.jobs_panel.rows[999]
    row.time_left = TimeLeft(clock=lambda: now[0])
    for second in range(0, 61, 10):  # 1 % every 10 s: 94 % to go at 60 s
        now[0] = float(second)
        window.jobs_panel.progress(999, second * 10, 10000, "epoch")
    assert row.left.text() == "about 16 min left"
    window.jobs_panel.end(999, "done")
    assert row.left.text() == ""


def test_fit_all_says_how_long_it_will_take_and_asks_before_a_long_run(qtbot, window, monkeypatch):
    from app import window_actions

    asked = []

    def answer(parent, title, text, *args):
        asked.append(text)
        return QMessageBox.StandardButton.No if len(asked) == 1 else QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    monkeypatch.setattr(window_actions, "LONG_RUN_S", 1.0)  # the tiny demo fits in seconds; any run is "long"
    groups = len({c.group for c in window.project.clips(split="train")})

    assert window.fit_all() is None  # "No": nothing starts
    from engine.detectors.registry import fit_all_keys

    assert (
        f"{len(fit_all_keys())} detector(s) x {groups} group(s)" in asked[0]
        and "about " in asked[0]
        and "dcase_ae" in asked[0]
    )
    with qtbot.waitSignal(window.job_ended, timeout=120000) as ended:
        job = window.fit_all()  # "Yes": the fit runs
    assert job is not None and ended.args == [job.id, "done"] and job.status == "done"
    assert window.jobs_panel.rows[job.id].bar.value() == window.jobs_panel.rows[job.id].bar.maximum()


def test_the_first_demo_opens_once_its_first_detector_is_fitted_and_the_others_follow(qtbot, tmp_path, monkeypatch):
    from app.main_window import MainWindow
    from app.startup import open_demo
    from engine import cli, cli_demo
    from engine.store import Project, results
    from tests.app.conftest import TINY_DEMO

    monkeypatch.setattr(cli_demo, "demo_plan", lambda options: TINY_DEMO)
    options = cli.build_parser().parse_args(["demo", "--project", str(tmp_path / "demo")])
    window = MainWindow(use_audio=False)
    qtbot.addWidget(window)
    window.show()
    fitted_when_opened = []
    open_project = window.open_project

    def opening(folder):
        with Project.open(folder) as project:
            fitted_when_opened.append(results.fitted_detectors(project))
        return open_project(folder)

    window.open_project = opening
    try:
        open_demo(window, options, {"status": 0})
        qtbot.waitUntil(lambda: window.project is not None, timeout=120000)
        assert fitted_when_opened == [["knn"]]  # the window opened on the project before the slow detectors
        qtbot.waitUntil(lambda: "fit the demo's patch_memory, dcase_ae, ensemble" in [job.title for job in window.jobs])
        qtbot.waitUntil(
            lambda: len(results.fitted_detectors(window.project)) == 4 and not window.engine.worker.busy(),
            timeout=120000,
        )
    finally:
        window.shutdown()


def test_fit_all_leaves_ast_ae_out_and_fit_with_settings_still_fits_it(qtbot, window, monkeypatch):
    """ast_ae trains a transformer per group (fine-tuning the published AST: hours per group on a CPU): Fit all
    neither fits it nor counts it in its estimate; chosen by name in Fit with settings, it is fitted."""
    from app import window_actions
    from app.dialogs.fit import FitDialog
    from app.engine_thread import JobHandle

    asked, submitted = [], []
    monkeypatch.setattr(
        QMessageBox, "question", lambda parent, title, text, *args: asked.append(text) or QMessageBox.StandardButton.Yes
    )
    monkeypatch.setattr(window_actions, "LONG_RUN_S", 0.0)  # the estimate is always shown
    handle = JobHandle("fit", "not run")
    monkeypatch.setattr(window, "submit", lambda kind, title, work, done, **meta: submitted.append(meta) or handle)

    assert window.fit_all() is handle
    assert "ast_ae" not in submitted[0]["detectors"] and "ast_ae" not in asked[0]
    assert {"dcase_ae", "knn", "ensemble"} <= set(submitted[0]["detectors"])

    def choose_ast_ae(dialog: FitDialog) -> bool:
        dialog.detector.setCurrentText("ast_ae")
        return True

    monkeypatch.setattr(FitDialog, "exec", choose_ast_ae)
    window.fit_detector_dialog()
    assert submitted[1]["detector"] == "ast_ae"


def test_the_window_keeps_a_record_of_each_job_but_not_its_result(qtbot, window):
    """A long session's drops return detections with their maps: the Jobs list must not hold them all."""
    import gc
    import weakref

    class Big:
        pass

    made, got = [], []

    def work(worker, progress):
        made.append(Big())
        return made[-1]

    job = window.submit("drop", "a drop's scores", work, on_done=got.append)
    with qtbot.waitSignal(job.ended, timeout=10000):
        pass
    assert len(got) == 1 and got[0] is made[0]  # the caller had the result
    gone = weakref.ref(made.pop())
    got.clear()
    gc.collect()
    assert gone() is None
    assert window.jobs[-1] is job and job.status == "done"  # the record stays


def test_a_job_whose_end_is_announced_no_longer_counts_as_running(qtbot, window):
    """Whoever hears that a job ended (the window closing right after it, which asks about a running job)
    must find the worker free of it: finished, failed and cancelled are said once it is no longer current."""
    from PySide6.QtCore import Qt

    from engine.errors import EarmarkError
    from engine.jobs import Cancelled

    worker = window.engine.worker
    busy_when_said = []
    direct = Qt.ConnectionType.DirectConnection  # heard on the worker's thread, the moment it is said
    worker.job_finished.connect(lambda *_: busy_when_said.append(("finished", worker.busy())), direct)
    worker.job_failed.connect(lambda *_: busy_when_said.append(("failed", worker.busy())), direct)
    worker.job_cancelled.connect(lambda *_: busy_when_said.append(("cancelled", worker.busy())), direct)

    def fails(worker, progress):
        raise EarmarkError("nothing to do")

    def cancelled(worker, progress):
        raise Cancelled()

    for run in (lambda worker, progress: 1, fails, cancelled):
        with qtbot.waitSignal(window.job_ended, timeout=10000):
            window.submit("test", "a short job", run)
    assert busy_when_said == [("finished", False), ("failed", False), ("cancelled", False)]
