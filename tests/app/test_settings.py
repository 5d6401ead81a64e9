"""The settings dialog: weights are checked by loading them on the engine thread before they are used,
a bad file is refused with the reason, and spectrogram settings redraw the clip and are remembered."""

from __future__ import annotations

from engine import weights
from tests.helpers import tiny_ast


def test_weights_are_checked_before_they_are_kept_and_a_bad_file_is_refused(qtbot, window, tmp_path):
    dialog = window.make_settings_dialog()
    qtbot.addWidget(dialog)
    ast_row = dialog.weights["ast"]
    ast_row.path.setText(str(tiny_ast(tmp_path / "ast")))
    with qtbot.waitSignal(window.job_ended, timeout=60000) as ended:
        ast_row.save.click()
    assert ended.args[1] == "done"
    assert ast_row.status.text().startswith("in use:") and weights.configured()["ast"] == str(tmp_path / "ast")

    beats_row = dialog.weights["beats"]
    not_weights = tmp_path / "notes.pt"
    not_weights.write_text("not a checkpoint")
    beats_row.path.setText(str(not_weights))
    with qtbot.waitSignal(window.job_ended, timeout=60000) as ended:
        beats_row.save.click()
    assert ended.args[1] == "failed"
    assert "notes.pt" in beats_row.status.text() and "beats" not in weights.configured()
    dialog.reject()


def test_spectrogram_settings_apply_to_the_shown_clip_and_are_remembered(qtbot, window):
    from app.settings import AppSettings

    clip_id = window.project.clips(split="test")[0].clip_id
    with qtbot.waitSignal(window.clip_shown, timeout=10000):
        window.table.select(clip_id)
    dialog = window.make_settings_dialog()
    qtbot.addWidget(dialog)
    dialog.n_mels.setValue(64)
    dialog.colour_map.setCurrentText("magma")
    with qtbot.waitSignal(window.clip_shown, timeout=10000):
        window.apply_settings(dialog)
    assert window.view.overview.db.shape[0] == 64
    window.settings.sync()
    remembered = AppSettings().spectrogram()
    assert remembered.n_mels == 64 and remembered.colour_map == "magma"
