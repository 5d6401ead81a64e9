"""Reports and figures from the window (a mixin of `MainWindow`): File > Export report... writes the project's
evaluation report (`earmark report`: one HTML page, or its tables as CSV or JSON) as a job on the engine thread;
File > Export figure... writes the spectrogram view as it is shown (every column, its maps, lanes, regions and
colour bars) as PNG or SVG through pyqtgraph's exporters, on the GUI thread where those items live."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox

from engine.errors import EarmarkError
from engine.jobs import Progress

#: The file dialog's filters and the format each writes.
REPORT_FILTERS = {"HTML report (*.html)": "html", "CSV tables (*.csv)": "csv", "JSON (*.json)": "json"}
FIGURE_FILTERS = {"PNG image (*.png)": "png", "SVG drawing (*.svg)": "svg"}
#: A PNG figure is drawn at this many times the view's size on screen, sharp enough to print.
PNG_SCALE = 2


def report_job(out: str, fmt: str):
    """The engine-thread job that writes the report; returns the lines to show."""

    def run(worker, progress: Progress) -> list[str]:
        from engine.evaluation.html_report import write_report

        written = write_report(worker.require_session().project, out, fmt, progress=progress)
        return [f"Wrote the report: {', '.join(str(p) for p in written)}", *progress.problems]

    return run


@contextmanager
def _closed_paths_readable() -> Iterator[None]:
    """While exporting: pyqtgraph's SVG exporter reads path data as "x,y" pairs and fails on the close-path
    command "Z" that Qt writes for a closed outline (a view box's border). Such outlines come back to their
    first point before closing, so the command is dropped from each path before it is read."""
    module = importlib.import_module("pyqtgraph.exporters.SVGExporter")
    original = module.correctCoordinates

    def correct(node, defs, item, options):
        for path in node.getElementsByTagName("path"):
            words = [w[:-1] if w.endswith(("Z", "z")) else w for w in path.getAttribute("d").split()]
            path.setAttribute("d", " ".join(w for w in words if w))
        return original(node, defs, item, options)

    module.correctCoordinates = correct
    try:
        yield
    finally:
        module.correctCoordinates = original


class ReportActions:
    def export_report_dialog(self) -> None:
        if not self._need_project():
            return
        suggested = str(Path.home() / f"{self.project.folder.name}_report.html")
        path, chosen = QFileDialog.getSaveFileName(self, "Export report", suggested, ";;".join(REPORT_FILTERS))
        if path:
            self.export_report(path, REPORT_FILTERS.get(chosen))

    def export_report(self, out: str | Path, fmt: str | None = None):
        """Queue the report on the engine thread; `fmt` None: from the file's ending, else HTML."""
        if not self._need_project():
            return None
        out = Path(out)
        fmt = fmt or {".csv": "csv", ".json": "json"}.get(out.suffix.lower(), "html")
        if not out.suffix:
            out = out.with_suffix(f".{fmt}")
        return self.submit(
            "report", f"export report ({fmt})", report_job(str(out), fmt), self._report_written, out=str(out)
        )

    def _report_written(self, lines: list[str]) -> None:
        self._status(lines[0])
        for line in lines[1:]:
            self._log(line, "warning")

    def export_figure_dialog(self) -> None:
        if self.view.display is None:
            QMessageBox.information(self, "Earmark", "Show a clip first: the figure is the spectrogram view as shown.")
            return
        name = self.view.display.clip_id.replace("/", "_")
        suggested = str(Path.home() / f"{name}.png")
        path, chosen = QFileDialog.getSaveFileName(self, "Export figure", suggested, ";;".join(FIGURE_FILTERS))
        if path:
            try:
                self.export_figure(path, FIGURE_FILTERS.get(chosen))
            except EarmarkError as exc:
                self._log(str(exc), "error")
                QMessageBox.warning(self, "Earmark", str(exc))

    def export_figure(self, out: str | Path, fmt: str | None = None) -> Path:
        """Write the spectrogram view's whole scene (every column shown, with its overlays) as PNG or SVG."""
        import pyqtgraph.exporters as exporters

        out = Path(out)
        fmt = fmt or ("svg" if out.suffix.lower() == ".svg" else "png")
        if out.suffix.lower() != f".{fmt}":
            out = out.with_name(f"{out.name}.{fmt}")
        if self.view.display is None:
            raise EarmarkError("no clip is shown; show a clip first, then export the figure")
        scene = self.view.graphics.scene()
        try:
            if fmt == "svg":
                try:
                    with _closed_paths_readable():
                        exporters.SVGExporter(scene).export(str(out))
                except ValueError as exc:  # a path the exporter cannot rewrite: say so, PNG still works
                    raise EarmarkError(f"the view cannot be written as SVG ({exc}); export it as PNG instead") from None
            else:
                exporter = exporters.ImageExporter(scene)
                exporter.parameters()["width"] = int(self.view.graphics.width() * PNG_SCALE)
                exporter.export(str(out))
        except OSError as exc:
            raise EarmarkError(f"cannot write {out}: {exc.strerror or exc}") from None
        if not out.is_file():  # Qt reports a failed image save by returning False, not by raising
            raise EarmarkError(f"cannot write {out}; choose a folder you may write to")
        self._status(f"Wrote the figure {out}")
        return out
