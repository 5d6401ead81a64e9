"""An analyst exports from the window: File > Export report... writes the evaluation report (the HTML page of
`earmark report`, or its tables) as a job on the engine thread, and File > Export figure... writes the
spectrogram view as shown, maps and overlays included, as PNG or SVG."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog

from tests.app.test_main_window import anomalous_test_clip, select_clip


def choose_file(monkeypatch, path, chosen_filter: str = "") -> None:
    """The save dialog answered with `path`, as a user would pick it."""
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(path), chosen_filter)))


def test_export_report_from_the_file_menu_writes_the_page_as_a_job(qtbot, window, tmp_path, monkeypatch):
    out = tmp_path / "report.html"
    choose_file(monkeypatch, out, "HTML report (*.html)")
    with qtbot.waitSignal(window.job_ended, timeout=30000) as ended:
        window.actions_by_name["export_report"].trigger()
    assert ended.args[1] == "done"
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 4
    for detector in ("dcase_ae", "knn", "patch_memory"):
        assert f">{detector}<" in page
    assert "Wrote the report" in window.statusBar().currentMessage()


def test_export_report_as_json_carries_the_evaluation(qtbot, window, tmp_path):
    with qtbot.waitSignal(window.job_ended, timeout=30000):
        window.export_report(tmp_path / "figures", "json")
    whole = json.loads((tmp_path / "figures.json").read_text())
    assert {r["detector"] for r in whole["evaluation"]} >= {"dcase_ae", "knn", "patch_memory"}


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_export_figure_writes_the_view_as_shown(qtbot, window, tmp_path, monkeypatch, fmt):
    select_clip(qtbot, window, anomalous_test_clip(window))
    out = tmp_path / f"view.{fmt}"
    choose_file(monkeypatch, out, "PNG image (*.png)" if fmt == "png" else "SVG drawing (*.svg)")
    window.actions_by_name["export_figure"].trigger()
    assert out.is_file()
    if fmt == "png":
        image = QImage(str(out))
        assert image.width() >= window.view.graphics.width() * 2 - 2
        colours = {image.pixel(x, y) for x in range(0, image.width(), 17) for y in range(0, image.height(), 17)}
        assert len(colours) > 50  # a spectrogram and its map, not a blank page
    else:
        root = ElementTree.parse(out).getroot()
        assert root.tag.endswith("svg") and len(list(root.iter())) > 50


def test_export_figure_without_a_clip_says_to_show_one(qtbot, window, tmp_path, monkeypatch):
    said = []
    monkeypatch.setattr("app.window_reports.QMessageBox.information", lambda *a: said.append(a[2]))
    choose_file(monkeypatch, tmp_path / "view.png")
    window.view.display = None
    window.actions_by_name["export_figure"].trigger()
    assert said and "Show a clip first" in said[0] and not (tmp_path / "view.png").exists()


def test_a_figure_to_a_folder_that_cannot_be_written_is_a_message_not_a_crash(qtbot, window, tmp_path, monkeypatch):
    select_clip(qtbot, window, anomalous_test_clip(window))
    said = []
    monkeypatch.setattr("app.window_reports.QMessageBox.warning", lambda *a: said.append(a[2]))
    choose_file(monkeypatch, tmp_path / "missing" / "folder" / "view.svg", "SVG drawing (*.svg)")
    window.actions_by_name["export_figure"].trigger()
    assert said and "cannot write" in said[0]
