"""A project the window cannot use as it is: damaged, read-only, or failing under its feet.

The window never goes down for one: a project that cannot be opened is named in a message (and, when it is
a recent project, dropped from the recent list only if the user agrees); a read-only project opens for
browsing and listening with every editing action disabled and the reason shown; an SQLite error met while
reading an open project is shown once and logged.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from engine.store.health import database_error, read_only_message

#: Menu entries that change the project: disabled while a read-only project is open.
EDITING_ACTIONS = (
    "import_dataset",
    "import_files",
    "locate_missing",
    "import_labels",
    "fit_all",
    "fit_one",
    "enrol",
    "score_all",
    "train_leak",
    "train_sound",
    "label_mode",
    "commit_region",
    "region_start",
    "region_end",
    "nudge_left",
    "nudge_right",
    "delete_region",
    "undo",
    "redo",
    "propose_clip",
    "accept_proposal",
    "reject_proposal",
    "accept_all",
    "label_classes",
    *(f"class_{n}" for n in range(1, 10)),
)


def cannot_open(window, folder: str | Path, message: str) -> None:
    """Say why `folder` did not open; offer to drop it from the recent projects when it is one of them."""
    window._log(message, "error")
    recent = [f for f in window.settings.recent_projects() if _same(f, folder)]
    if not recent:
        QMessageBox.warning(window, "Earmark", message)
        return
    answer = QMessageBox.question(
        window,
        "Earmark",
        f"{message}\n\nRemove {folder} from the recent projects? (The folder itself is left as it is.)",
    )
    if answer == QMessageBox.StandardButton.Yes:
        for entry in recent:
            window.settings.remove_recent(entry)
        window._fill_recent()


def database_failed(window, exc: sqlite3.Error) -> None:
    """An SQLite error while reading the open project: one message, in the log and in a box that does not
    stop the window."""
    folder = window.project.folder if window.project is not None else Path(".")
    message = str(database_error(folder, exc))
    window._log(message, "error")
    if window.findChild(QMessageBox, "database_error") is None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Earmark", message, parent=window)
        box.setObjectName("database_error")
        box.finished.connect(box.deleteLater)
        box.open()


def show_read_only(window) -> None:
    """Disable what would change the open project when it can only be read, and say why."""
    project = window.project
    reason = project.read_only if project is not None else None
    for name in EDITING_ACTIONS:
        action = window.actions_by_name.get(name)
        if action is not None:
            action.setEnabled(not reason)
    window.clip_properties.panel.setEnabled(not reason)
    if reason:
        if window.view.label_mode:  # in label mode a drag would move a region: browsing only
            window.toggle_label_mode()
        window.setWindowTitle(f"Earmark - {project.folder} (read-only)")
        message = read_only_message(project.folder, reason, "labelling, importing, fitting or scoring")
        window._log(message, "warning")
        window.statusBar().showMessage(f"Read-only: {reason}")


def refuse_read_only(window, action: str) -> bool:
    """True (after saying why) when the open project is read-only and `action` would change it."""
    project = window.project
    if project is None or not project.read_only:
        return False
    QMessageBox.information(window, "Earmark", read_only_message(project.folder, project.read_only, action))
    return True


def _same(entry: str, folder: str | Path) -> bool:
    try:
        return Path(entry).resolve() == Path(folder).resolve()
    except OSError:
        return entry == str(folder)
