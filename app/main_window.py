"""The main window: data-set tree, clip table, spectrogram with overlays, playback, drag and drop,
menus, and the jobs and log docks. Engine work goes to the engine thread; this window only reads the
project to show it."""

from __future__ import annotations

import logging
import sqlite3
from functools import partial
from pathlib import Path

from PySide6.QtCore import QEventLoop, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import clip_data, jobs, project_problems
from app.actions import TypingKeys, build_menus
from app.clip_properties import ClipProperties
from app.docks import JobsPanel, LogPanel, LogRelay
from app.engine_thread import EngineThread, JobHandle
from app.gui_gc import GuiThreadCollector
from app.labelling.window_labels import LabelActions
from app.playback import Playback
from app.settings import AppSettings
from app.views.caption import ClipCaption
from app.views.clip_table import FIXED, ClipTable
from app.views.dataset_tree import DatasetTree
from app.views.overlay_controls import OverlayControls
from app.views.spectrogram import SpectrogramView
from app.window_actions import WindowActions
from app.window_classifiers import ClassifierActions
from app.window_drops import DropActions
from app.window_evaluation import EvaluationActions
from app.window_layout import DEFAULT_SIZE, arrange_docks, fit_to_screen, restore_layout, save_layout, size_docks
from app.window_reports import ReportActions
from engine.errors import EarmarkError
from engine.store import Project, results

log = logging.getLogger("earmark")


class MainWindow(
    DropActions, ClassifierActions, LabelActions, EvaluationActions, ReportActions, WindowActions, QMainWindow
):
    project_opened = Signal(str)
    clip_shown = Signal(str)
    job_ended = Signal(int, str)  # job id, done | failed | cancelled: after the job's handle said so
    drop_scored = Signal(object)  # jobs.DropResult, once its rows are in the table

    def __init__(self, settings: AppSettings | None = None, use_audio: bool | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.project: Project | None = None
        self.setWindowTitle("Earmark")
        self.setAcceptDrops(True)
        self.resize(*DEFAULT_SIZE)
        # Before any worker thread starts: cycles are collected in this thread only (see app/gui_gc.py).
        self.collector = GuiThreadCollector(self)
        self.collector.start()
        self.engine = EngineThread(self)
        self.engine.worker.device_choice = self.settings.device
        self.engine.start()
        #: This session's jobs, in the order they were submitted (each says how it ended).
        self.jobs: list[JobHandle] = []

        self.view = SpectrogramView(self.settings.spectrogram())
        self.controls = OverlayControls({n: self.view.overlay_opacity(n) for n in self.view._opacity})
        self.controls.restore(*self.settings.view_detectors())
        self.controls.detectors_changed.connect(self._detectors_changed)
        self.controls.overlay_changed.connect(lambda n, v, o: self.view.set_overlay(n, v, o))
        self.caption = ClipCaption("Open a project (File > Open) or drop audio files here.")
        self.drop_group = QComboBox(
            toolTip="Dropped files without machine and section are scored by the "
            "detectors fitted for this group (auto: the group they resemble most)"
        )
        self.drop_group.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.drop_group.setMinimumContentsLength(12)
        self.drop_group.currentTextChanged.connect(self._drop_group_changed)
        top = QHBoxLayout()
        top.addWidget(self.caption, 1)
        top.addWidget(QLabel("Score drops with"))
        top.addWidget(self.drop_group)
        viewer = QWidget()
        column = QVBoxLayout(viewer)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        column.addWidget(self.controls)
        column.addWidget(self.view, 1)
        self.table = ClipTable()
        self.table.clip_selected.connect(self.show_clip)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(viewer)
        splitter.addWidget(self.table)
        splitter.setStretchFactor(0, 3)  # the spectrogram keeps most of the height
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)

        self.tree = DatasetTree()
        self.tree.setMinimumWidth(150)
        self.tree.filter_chosen.connect(self.table.proxy.set_where)
        self.jobs_panel = JobsPanel()
        self.jobs_panel.cancel_requested.connect(self.cancel_job_by_id)
        self.log_panel = LogPanel()
        self._log_relay = LogRelay(self.log_panel)
        logging.getLogger("earmark").addHandler(self._log_relay)
        self.docks = {}
        for name, title, widget, area in (
            ("tree", "Data set", self.tree, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("jobs", "Jobs", self.jobs_panel, Qt.DockWidgetArea.BottomDockWidgetArea),
            ("log", "Log", self.log_panel, Qt.DockWidgetArea.BottomDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(name)
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[name] = dock

        self.playback = Playback(self, use_audio)
        self.playback.position_changed.connect(lambda s: self.view.set_playhead(s, follow=True))
        self.playback.message.connect(self._status)
        self.view.seek_requested.connect(self.playback.seek)
        self.view.overview_shown.connect(self.clip_shown.emit)
        self.view.load_failed.connect(lambda message: self._log(message, "error"))

        self._setup_labelling()
        self.clip_properties = ClipProperties(self)
        self.actions_by_name, self.recent_menu = build_menus(self)
        self.toggle_normalised_scores(self.settings.normalised_scores)
        self._name_class_actions([])
        self._typing_keys = TypingKeys(self)
        QApplication.instance().installEventFilter(self._typing_keys)
        view_menu = next(a.menu() for a in self.menuBar().actions() if a.text() == "&View")
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        self._fill_recent()
        arrange_docks(self, self.docks)
        if self.settings.evaluation_open:  # made before the layout is restored, which places and shows it
            self._setup_evaluation()
        self._layout_restored = restore_layout(self, self.settings)
        self.statusBar().showMessage("Ready")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not getattr(self, "_shown_once", False):  # the frame's size is known once the window is shown
            self._shown_once = True
            fit_to_screen(self)
            if not self._layout_restored:
                size_docks(self, self.docks)
            splitter = self.centralWidget()
            total = sum(splitter.sizes())
            splitter.setSizes([round(0.75 * total), total - round(0.75 * total)])

    # -- jobs -----------------------------------------------------------------------------------------------
    def cancel_job_by_id(self, job_id: int) -> None:
        """The Cancel button of a job in the Jobs dock (the worker's queue is guarded by a lock)."""
        self.engine.worker.cancel(job_id)

    def submit(self, kind: str, title: str, run, on_done=None, urgent: bool = False, **params) -> JobHandle:
        """Queue an engine job; `on_done(result)` runs on the GUI thread when it finishes. Returns its handle,
        whose own signals (finished, failed, cancelled, ended, progress) the caller may connect to as well."""
        handle = self.engine.submit(kind, title, run, urgent, **params)
        self.jobs.append(handle)
        self.jobs_panel.add(handle.id, title)
        handle.started.connect(partial(self.jobs_panel.progress, handle.id, 0, 0, ""))
        handle.progress.connect(partial(self.jobs_panel.progress, handle.id))
        handle.problem.connect(partial(self._job_problem, handle))
        if on_done is not None:
            handle.finished.connect(on_done)
        handle.ended.connect(partial(self._job_ended, handle))
        return handle

    def _job_problem(self, handle: JobHandle, line: str) -> None:
        self._log(f"{handle.title}: skipped {line}", "warning")

    def _job_ended(self, handle: JobHandle, status: str) -> None:
        # `self.jobs` records the session's jobs; their results (a drop's detections with their maps) went to
        # the handlers connected to `finished` and are not held for the whole session.
        handle.result = None
        self.jobs_panel.end(handle.id, status, handle.error)
        if status == "failed":
            self._log(f"{handle.title} failed: {handle.error}", "error")
            box = QMessageBox(QMessageBox.Icon.Warning, "Earmark", f"{handle.title} failed.", parent=self)
            box.setInformativeText(handle.error)
            box.setObjectName("job_error")
            box.open()  # window-modal but not blocking: the engine and the event loop go on
        elif status == "cancelled":
            said = f"{handle.title} cancelled; the project keeps what was finished before"
            self._log(said + (f". {handle.cancel_hint}" if handle.cancel_hint else ""))
        self.job_ended.emit(handle.id, status)
        if status != "done":
            self.refresh()

    def _log(self, line: str, level: str = "info") -> None:
        self.log_panel.add(line, level)
        if level != "info":
            self.statusBar().showMessage(line, 8000)

    def _status(self, line: str) -> None:
        self.statusBar().showMessage(line, 8000)
        self.log_panel.add(line)

    # -- the project -------------------------------------------------------------------------------------
    def open_project(self, folder: str | Path) -> bool:
        try:
            project = Project.open(folder)
        except EarmarkError as exc:  # damaged, not a project, ...: named, and the window goes on
            project_problems.cannot_open(self, folder, str(exc))
            return False
        if self.project is not None and not self._finish_jobs_before_switching():
            project.close()
            return False
        if self.project is not None:
            self.project.close()
        self.project = project
        self.editor.set_project(project)
        self.submit("open", f"open {project.folder.name}", jobs.open_project(project), urgent=True)
        self.settings.add_recent(str(project.folder.resolve()))
        self._fill_recent()
        self.setWindowTitle(f"Earmark - {project.folder}")
        project_problems.show_read_only(self)
        self.refresh()
        self.project_opened.emit(str(project.folder))
        return True

    def _finish_jobs_before_switching(self) -> bool:
        """Jobs belong to the open project: cancel them (after asking) and wait until the engine is idle."""
        worker = self.engine.worker
        if not worker.busy():
            return True
        answer = QMessageBox.question(
            self, "Earmark", "Jobs are running or waiting on this project. Cancel them and open the other project?"
        )
        if answer != QMessageBox.StandardButton.Yes:
            return False
        worker.cancel_all()
        loop = QEventLoop()
        worker.idle.connect(loop.quit, Qt.ConnectionType.QueuedConnection)
        QTimer.singleShot(30000, loop.quit)
        if worker.busy():
            loop.exec()
        worker.idle.disconnect(loop.quit)
        return not worker.busy()

    def refresh(self) -> None:
        """Re-read the project: tree, table, detectors and groups (after an import, a fit or a score)."""
        if self.project is None:
            return
        try:
            self._refresh()
        except sqlite3.DatabaseError as exc:  # damaged since it was opened: said once, the window goes on
            project_problems.database_failed(self, exc)

    def _refresh(self) -> None:
        project = self.project
        current = self.view.display.clip_id if self.view.display else None
        rows = clip_data.table_rows(project)  # read once: the tree counts the same rows
        self._fill_tree(rows)
        detectors = results.fitted_detectors(project)
        self.table.model.set_rows(rows, detectors)
        self.table.resize_columns()
        self.controls.set_detectors(detectors, "patch_memory")
        self.proposal_panel.set_detectors(detectors, "patch_memory")
        self.fill_drop_groups(clip_data.fitted_groups(project))
        if current is not None and current in rows.positions:
            self.table.select(current, reveal=False, quiet=True)  # the user's filters stay as they are
            self.show_clip(current)  # again, with what the job changed

    def _fill_tree(self, rows: clip_data.ClipColumns | None = None) -> None:
        """The data-set tree with its counts and the inbox's (counted in `rows` when given: no second read)."""
        if rows is None:  # counted in SQL: no clip rows are read
            self.tree.fill(self.project.summary(), self.project.count_clips(source="inbox"))
        else:
            self.tree.fill(rows.summary(), rows.count_source("inbox"))
        self.clip_properties.show_stale()

    def show_clip(self, clip_id: str) -> None:
        if self.project is None:
            return
        try:
            display = clip_data.clip_display(self.project, clip_id)
        except EarmarkError as exc:
            self._log(str(exc), "error")
            return
        except sqlite3.DatabaseError as exc:
            project_problems.database_failed(self, exc)
            return
        self.caption.setText(display.caption)
        for line in display.problems:
            self._log(line, "warning")
        same = self.view.display is not None and self.view.display.clip_id == clip_id
        self.view.show_clip(display)
        self.editor.set_clip(clip_id, display.duration_s)
        self.refresh_regions(self.editor.selected)
        self.show_proposal_levels()
        if not same:
            self.playback.load(display.path, display.duration_s)

    def _detectors_changed(self, detectors: list[str], side_by_side: bool) -> None:
        self.view.set_detectors(detectors)
        self.view.set_side_by_side(side_by_side)
        if detectors:  # remembered for the next clip, project and session
            self.settings.set_view_detectors(detectors, side_by_side)
        self.table.model.set_decision_detector(detectors[0] if detectors else None)
        self.show_proposal_levels()

    def _drop_group_changed(self, group: str) -> None:
        if self.project is not None and group:
            self.settings.set_drop_group(str(self.project.folder), group)

    # -- drag and drop -------------------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.score_files(paths)

    def score_files(self, paths: list[str]) -> JobHandle | None:
        """Import files into the inbox and score them at once, ahead of other queued jobs."""
        if self.project is None:
            QMessageBox.information(
                self, "Earmark", "Open or create a project first: dropped files are imported into its inbox."
            )
            return None
        if project_problems.refuse_read_only(self, "importing and scoring dropped files"):
            return None
        group = self.drop_group_choice()
        if self.drop_group.currentText():
            self.settings.set_drop_group(str(self.project.folder), self.drop_group.currentText())
        names = ", ".join(Path(p).name for p in paths[:3]) + (" ..." if len(paths) > 3 else "")
        return self.submit(
            "drop",
            f"score {names}",
            jobs.drop_and_score(paths, group),
            self._dropped,
            urgent=True,
            files=paths,
            group=group,
        )

    def _dropped(self, result: jobs.DropResult) -> None:
        for line in result.skipped:
            self._log(f"skipped {line}", "warning")
        if self.project is not None and result.clip_ids:
            for row in clip_data.table_rows(self.project, result.clip_ids):
                self.table.model.upsert(row)
            model = self.table.model  # "fan (guessed)", "unlike every trained group": wider than data-set values
            for column in (FIXED.index("machine"), FIXED.index("section"), len(FIXED) + len(model.detectors)):
                self.table.view.resizeColumnToContents(column)
            self._fill_tree()
            last = result.clip_ids[-1]
            self.table.select(last, quiet=True)
            self.show_clip(last)
        self.show_drop_verdicts(result)
        if result.note:
            self._status(result.note)
        if result.skipped:
            self.show_skipped("skipped_files", f"{len(result.skipped)} file(s) skipped.", result.skipped)
        self.drop_scored.emit(result)

    def show_skipped(self, name: str, title: str, lines: list[str]) -> None:
        """What a batch left out, in a box that does not stop the window (the log has every line)."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Earmark", title, parent=self)
        box.setObjectName(name)
        box.setInformativeText("\n".join(lines[:12]) + ("\n..." if len(lines) > 12 else ""))
        box.open()

    # -- closing ------------------------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        if self.engine.worker.busy():
            answer = QMessageBox.question(self, "Earmark", "A job is still running. Cancel it and quit?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        save_layout(self, self.settings)
        self.settings.evaluation_open = (
            "evaluation" in self.docks and self.docks["evaluation"].toggleViewAction().isChecked()
        )
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop playback, the engine thread and the display loader; close the project. Safe to call twice."""
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        QApplication.instance().removeEventFilter(self._typing_keys)
        self.playback.stop()
        self.statusBar().showMessage("Stopping the running job ...")
        ended = self.engine.shutdown()  # late results reach no handle, so not this closed window
        self.view.shutdown()
        self.stop_evaluation()
        logging.getLogger("earmark").removeHandler(self._log_relay)
        if self.project is not None and ended:  # never close the database under a job that still runs
            self.project.close()
        self.project = None
        self.settings.sync()
        if ended:  # a job that still runs keeps collection in this thread
            self.collector.stop()
