"""The main window's evaluation: the View > Evaluation dock, thresholds set in the window as undoable steps,
and the figures kept up to date as scores, thresholds and clip labels change.

The figures are `engine.evaluation.report.evaluate_project`'s (what `earmark evaluate` prints) and the
curves `engine.evaluation.curves`'s, read on a background thread with its own connection, only while the
dock is shown (a read of the scores table, no engine work: the engine thread's queue is not waited for).
A threshold is stored as clip fields and label edits are: one command on the window's undo stack that
writes the project at once through `engine.store.thresholds` (which recomputes the stored decisions of that
model), so Ctrl+Z puts the old threshold and decisions back.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QUndoCommand
from PySide6.QtWidgets import QDockWidget

from app import clip_data, project_problems
from app.clip_properties import SetClipFields
from app.views.evaluation_dock import EvaluationPanel
from app.window_layout import hide_stale_tab_bars
from engine.errors import EarmarkError
from engine.store.health import database_error

if TYPE_CHECKING:
    from app.main_window import MainWindow

#: Up to this many clips whose decision changed, their table rows are read again in place; more, the table.
IN_PLACE = 300
#: The dock's share of the window's height when it is first shown (the spectrogram keeps the rest).
DOCK_SHARE = 0.45


class SetThreshold(QUndoCommand):
    """A group's threshold set to a value (or back to the fitted one); undo stores the one before."""

    def __init__(
        self, window: MainWindow, detector: str, model_id: int, value: float | None, how: str, fpr: float | None = None
    ) -> None:
        super().__init__(f"{detector} threshold {how}")
        self.window = window
        self.model_id = model_id
        self.value = value  # None: back to the fitted threshold
        self.fpr = fpr  # the false-positive rate it was chosen by, stored with it
        self.old: float | None = None
        self.old_how: dict = {}

    def redo(self) -> None:
        from engine.store import results, thresholds

        project = self.window.project
        if self.old is None:  # how the threshold before was chosen, for the undo to store it the same way
            record = results.model(project, self.model_id)
            if record is not None and record.threshold_set_by == "fpr" and record.threshold_fpr is not None:
                self.old_how = {"set_by": "fpr", "fpr": record.threshold_fpr}
        if self.value is None:
            self._run(lambda: thresholds.reset_threshold(project, self.model_id))
        else:
            how = {"set_by": "fpr", "fpr": self.fpr} if self.fpr is not None else {}
            self._run(lambda: thresholds.set_threshold(project, self.model_id, self.value, **how))

    def undo(self) -> None:
        from engine.store import thresholds

        if self.old is not None:
            project = self.window.project
            self._run(lambda: thresholds.set_threshold(project, self.model_id, self.old, **self.old_how), undo=True)

    def _run(self, work, undo: bool = False) -> None:
        try:
            change = work()
        except (EarmarkError, sqlite3.Error) as exc:
            self.setObsolete(True)  # the stack drops it; the project keeps what it had (one transaction)
            if isinstance(exc, sqlite3.Error):
                exc = database_error(self.window.project.folder, exc)
            self.window._status(f"{self.text()}: {exc}; nothing was changed")
            return
        if change is None:  # a reset that says nothing: the figures are read again all the same
            self.window.threshold_changed([], self.text())
            return
        if not undo:
            self.old = change.old
        verb = "undo " if undo else ""
        self.window.threshold_changed(
            list(change.changed_clips), f"{verb}{self.text()}: {change.old:.4g} -> {change.new:.4g}"
        )


class EvaluationReader(QObject):
    """Reads the figures and curves on a background thread (its own connection to the project: the project
    keeps one per thread), so a large project's evaluation never stops the window. Only the newest request's
    result comes back (`ready` / `failed`, queued onto the GUI thread); older ones are dropped."""

    ready = Signal(int, object, object)  # request, reports, score sets
    failed = Signal(int, object)  # request, the exception

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="earmark-evaluation")
        self.request = 0

    def read(self, project) -> int:
        self.request += 1
        self._pool.submit(self._read, self.request, project)
        return self.request

    def stop(self) -> None:
        """No more reads: one waiting is dropped, one running is waited for (the window closes the project
        next, and a read must not outlive it)."""
        self.request += 1
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _read(self, request: int, project) -> None:
        from engine.evaluation.curves import score_sets
        from engine.evaluation.report import evaluate_project

        if request != self.request:
            return  # a newer request waits behind this one: only it is read
        try:
            reports = [r for r in evaluate_project(project) if r.clips]
            sets = score_sets(project)
        except (EarmarkError, sqlite3.Error) as exc:  # a closed project (the window switched) included
            if request == self.request:
                self.failed.emit(request, exc)
            return
        if request == self.request:
            self.ready.emit(request, reports, sets)


class EvaluationActions:
    evaluation_panel: EvaluationPanel | None = None

    # -- the dock --------------------------------------------------------------------------------------------
    def show_evaluation(self: MainWindow) -> None:
        """View > Evaluation: show the dock (made on first use) with the figures as they are now."""
        if self.evaluation_panel is None:
            self._setup_evaluation()
        dock = self.docks["evaluation"]
        dock.show()
        dock.raise_()
        self.resizeDocks([dock], [round(DOCK_SHARE * self.height())], Qt.Orientation.Vertical)
        self.refresh_evaluation()

    def _setup_evaluation(self: MainWindow) -> None:
        panel = EvaluationPanel()
        panel.threshold_requested.connect(self.set_group_threshold)
        panel.fpr_requested.connect(self.set_group_threshold_by_fpr)
        panel.reset_requested.connect(self.reset_group_threshold)
        panel.clips_chosen.connect(self.show_only_clips)
        dock = QDockWidget("Evaluation", self)
        dock.setObjectName("evaluation")
        dock.setWidget(panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        if "jobs" in self.docks:  # a tab beside the jobs and the log: the dock takes the window's width
            self.tabifyDockWidget(self.docks["jobs"], dock)
        hide_stale_tab_bars(self)
        dock.visibilityChanged.connect(lambda shown: shown and self._schedule_evaluation())
        self.docks["evaluation"] = dock
        self.evaluation_panel = panel
        self._evaluation_reader = EvaluationReader(self)
        queued = Qt.ConnectionType.QueuedConnection  # emitted on the reader's thread; these touch widgets
        self._evaluation_reader.ready.connect(self._evaluation_read, queued)
        self._evaluation_reader.failed.connect(self._evaluation_failed, queued)
        self._evaluation_project = None
        self._evaluation_timer = QTimer(self, singleShot=True, interval=0)
        self._evaluation_timer.timeout.connect(self.refresh_evaluation)
        # Scores come from jobs; labels and thresholds change through the undo stack (Clip properties).
        self._stack_index = self.editor.stack.index()
        self.editor.stack.indexChanged.connect(self._stack_moved)
        self.job_ended.connect(lambda *_: self._schedule_evaluation())
        self.project_opened.connect(self._evaluation_project_opened)

    def stop_evaluation(self: MainWindow) -> None:
        """At shutdown: the background reader ends before the project is closed."""
        reader = getattr(self, "_evaluation_reader", None)
        if reader is not None:
            reader.stop()

    def _stack_moved(self: MainWindow, index: int) -> None:
        """A step done or undone: the figures are read again when it changed clip fields or a threshold (a
        region drawn on a clip changes no figure of the table)."""
        stack = self.editor.stack
        step = stack.command(index - 1 if index > self._stack_index else index)
        self._stack_index = index
        if step is None or isinstance(step, (SetClipFields, SetThreshold)):  # None: the stack was cleared
            self._schedule_evaluation()

    def _evaluation_project_opened(self: MainWindow, _folder: str) -> None:
        """Another project: the last one's rows go at once (a threshold set on them would name that project's
        models in this one), and this one's are read."""
        self.evaluation_panel.set_data([], [])
        self._schedule_evaluation()

    def _schedule_evaluation(self: MainWindow) -> None:
        """Figures read again once the event loop is free (several changes in a row: once)."""
        self._evaluation_timer.start()

    def refresh_evaluation(self: MainWindow) -> None:
        """Read the figures and curves again (only while the dock is shown: else when it is shown next); they
        are shown when read (`EvaluationPanel.shown`)."""
        panel = self.evaluation_panel
        if panel is None or self.project is None or not self.docks["evaluation"].isVisible():
            return
        self._evaluation_project = self.project
        self._evaluation_reader.read(self.project)

    def _evaluation_read(self: MainWindow, request: int, reports: list, sets: list) -> None:
        if request == self._evaluation_reader.request and self._evaluation_project is self.project:
            self.evaluation_panel.set_data(reports, sets)

    def _evaluation_failed(self: MainWindow, request: int, exc: Exception) -> None:
        if request != self._evaluation_reader.request or self._evaluation_project is not self.project:
            return  # read from a project since closed
        if isinstance(exc, sqlite3.DatabaseError):
            project_problems.database_failed(self, exc)
        else:
            self._log(f"evaluation: {exc}", "error")

    # -- thresholds ------------------------------------------------------------------------------------------
    def set_group_threshold(self: MainWindow, detector: str, model_id: int, value: float) -> bool:
        if self.project is None or project_problems.refuse_read_only(self, "setting thresholds"):
            self.refresh_evaluation()  # the dragged line goes back where the stored threshold is
            return False
        self.editor.stack.push(SetThreshold(self, detector, model_id, value, f"set to {value:.4g}"))
        return True

    def set_group_threshold_by_fpr(self: MainWindow, detector: str, model_id: int, fpr: float) -> bool:
        from engine.store import thresholds

        if self.project is None or project_problems.refuse_read_only(self, "setting thresholds"):
            return False
        try:
            value = thresholds.threshold_for_fpr(self.project, model_id, fpr)
        except EarmarkError as exc:
            self._status(f"{detector}: {exc}")
            return False
        self.editor.stack.push(SetThreshold(self, detector, model_id, value, f"at {fpr:.1%} false positives", fpr))
        return True

    def reset_group_threshold(self: MainWindow, detector: str, model_id: int) -> bool:
        if self.project is None or project_problems.refuse_read_only(self, "setting thresholds"):
            return False
        self.editor.stack.push(SetThreshold(self, detector, model_id, None, "back to the fitted one"))
        return True

    def threshold_changed(self: MainWindow, clip_ids: list[str], message: str) -> None:
        """The stored decisions of `clip_ids` changed: the clip table and the figures show them at once."""
        table = self.table
        current = self.view.display.clip_id if self.view.display else None
        if len(clip_ids) <= IN_PLACE:
            for row in clip_data.table_rows(self.project, clip_ids):
                table.model.upsert(row)
        else:
            table.model.set_rows(clip_data.table_rows(self.project), table.model.detectors)
            if current is not None:  # the table was read again whole: its row is current again
                table.select(current, reveal=False, quiet=True)
        if current is not None:  # its lanes draw the group's threshold and say its decision
            self.show_clip(current)
        self._status(f"{message}; {len(clip_ids)} decision(s) changed")
        self.refresh_evaluation()

    def show_only_clips(self: MainWindow, clip_ids: list[str], why: str) -> None:
        self.table.show_only(clip_ids, why)
