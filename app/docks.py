"""The jobs dock (each job's progress bar, message and Cancel button) and the log dock (what happened,
including every skipped file and every error, with the time)."""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from engine.jobs import TimeLeft, describe_time_left

KEEP_FINISHED = 12


class JobRow(QWidget):
    def __init__(self, job_id: int, title: str, on_cancel) -> None:
        super().__init__()
        self.job_id = job_id
        self.title = QLabel(f"<b>{title}</b>")
        self.status = QLabel("queued")
        #: "about 4 min left", from the rate of the job's overall fraction (its steps roll up into the bar).
        self.left = QLabel("")
        self.left.setStyleSheet("color: #555")
        self.time_left = TimeLeft()
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(True)
        self.bar.setMaximumHeight(16)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #555")
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(lambda: on_cancel(job_id))
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.left)
        top.addWidget(self.status)
        top.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.message)
        self.finished = False

    def progress(self, done: int, total: int, message: str) -> None:
        self.status.setText("running")
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
            self.left.setText(describe_time_left(self.time_left.add(min(done, total) / total)))
        if message:
            self.message.setText(message)

    def end(self, status: str, message: str = "") -> None:
        self.finished = True
        self.status.setText(status)
        self.left.setText("")
        self.cancel.setEnabled(False)
        if self.bar.maximum() == 0:
            self.bar.setRange(0, 1)
        if status == "done":
            self.bar.setValue(self.bar.maximum())
        if message:
            self.message.setText(message)


class JobsPanel(QScrollArea):
    cancel_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        inner = QWidget()
        self.rows_layout = QVBoxLayout(inner)
        self.rows_layout.addStretch(1)
        self.setWidget(inner)
        self.rows: dict[int, JobRow] = {}

    def add(self, job_id: int, title: str) -> None:
        row = JobRow(job_id, title, self.cancel_requested.emit)
        self.rows[job_id] = row
        self.rows_layout.insertWidget(0, row)
        finished = [r for r in self.rows.values() if r.finished]
        for old in finished[:-KEEP_FINISHED] if len(finished) > KEEP_FINISHED else []:
            self.rows.pop(old.job_id)
            old.deleteLater()

    def progress(self, job_id: int, done: int, total: int, message: str) -> None:
        if job_id in self.rows:
            self.rows[job_id].progress(done, total, message)

    def end(self, job_id: int, status: str, message: str = "") -> None:
        if job_id in self.rows:
            self.rows[job_id].end(status, message)


class LogPanel(QPlainTextEdit):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(5000)
        self.lines: list[str] = []

    def add(self, line: str, level: str = "info") -> None:
        stamp = time.strftime("%H:%M:%S")
        self.lines.append(line)
        colour = {"error": "#c62828", "warning": "#ef6c00"}.get(level)
        text = line.replace("&", "&amp;").replace("<", "&lt;")
        self.appendHtml(
            f"<span style='color:#888'>{stamp}</span> "
            + (f"<span style='color:{colour}'>{text}</span>" if colour else text)
        )


class _Bridge(QObject):
    record = Signal(str, str)


class LogRelay(logging.Handler):
    """Sends Python log records (from any thread) to the log panel on the GUI thread."""

    def __init__(self, panel: LogPanel) -> None:
        super().__init__(logging.INFO)
        self.bridge = _Bridge()
        self.bridge.record.connect(panel.add, Qt.ConnectionType.QueuedConnection)

    def emit(self, record: logging.LogRecord) -> None:
        level = (
            "error" if record.levelno >= logging.ERROR else "warning" if record.levelno >= logging.WARNING else "info"
        )
        self.bridge.record.emit(self.format(record), level)
