"""A training cancelled in the window is continued from the window: the log says how, and Train > Fit
detector... offers Resume for a detector whose checkpoints the project holds (and only then)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from engine.store import results

GROUP = "fan/section_00"


def _fit_through_the_dialog(window, monkeypatch, detector: str, resume: bool, seen: dict) -> None:
    from app.dialogs.fit import FitDialog

    def choose(dialog: FitDialog) -> bool:
        dialog.detector.setCurrentText("knn")
        seen["knn"] = dialog.resume.isEnabled()
        dialog.detector.setCurrentText(detector)
        seen[detector] = dialog.resume.isEnabled()
        dialog.group.setCurrentText(GROUP)
        dialog.settings.setPlainText("epochs=30")
        dialog.resume.setChecked(resume)
        return True

    monkeypatch.setattr(FitDialog, "exec", choose)
    window.fit_detector_dialog()


def test_a_cancelled_fit_is_resumed_from_the_fit_dialog_at_its_next_epoch(qtbot, window, monkeypatch):
    seen: dict[str, bool] = {}
    _fit_through_the_dialog(window, monkeypatch, "dcase_ae", False, seen)
    assert seen == {"knn": False, "dcase_ae": False}, "nothing to resume yet"
    with qtbot.waitSignal(
        window.engine.worker.job_progress,
        timeout=30000,
        check_params_cb=lambda job_id, done, total, message: "epoch 3/30" in message,
    ):
        pass
    with qtbot.waitSignal(window.job_ended, timeout=20000) as ended:
        qtbot.keyClick(window, Qt.Key.Key_Period, Qt.KeyboardModifier.ControlModifier)  # Train > Cancel job
    assert ended.args[1] == "cancelled"
    assert "Train > Fit detector... with Resume ticked continues dcase_ae" in window.log_panel.lines[-1]

    said: list[str] = []
    window.engine.worker.job_progress.connect(lambda job_id, done, total, message: said.append(message))
    before = results.latest_models(window.project, "dcase_ae")[GROUP].model_id
    with qtbot.waitSignal(window.job_ended, timeout=60000) as ended:
        _fit_through_the_dialog(window, monkeypatch, "dcase_ae", True, seen)
    assert seen == {"knn": False, "dcase_ae": True}, "Resume only where the project holds checkpoints"
    assert ended.args[1] == "done" and window.jobs[-1].id == ended.args[0]
    assert window.jobs[-1].title == f"fit dcase_ae on {GROUP}, resumed"
    # The interrupted network went on after its last finished epoch instead of starting again at epoch 1.
    first = next(int(m.split("epoch ")[1].split("/")[0]) for m in said if "epoch " in m and "/30" in m)
    assert first > 3
    assert results.latest_models(window.project, "dcase_ae")[GROUP].model_id > before
    assert not window._resumable("dcase_ae"), "nothing left to resume"
