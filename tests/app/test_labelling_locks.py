"""A technician labels while another Earmark process writes the same project (an import, a scoring run): the
edit waits for the other writer, the status line says so, and the region is in the project once the other
process is done. Before, the edit was dropped at once ("database is locked ... this step is dropped")."""

from __future__ import annotations

import sqlite3

from PySide6.QtCore import QTimer

from tests.app.test_labelling import labelling, manual_rows  # noqa: F401  (the fixture)


class OtherWriter:
    """Another connection to the project file in the middle of a long write: it holds the write lock."""

    def __init__(self, db_path) -> None:
        self.conn = sqlite3.connect(db_path, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("INSERT INTO meta (key, value) VALUES ('long_write', 'in progress')")
        #: What a reader saw of the manual regions when the other process finished: None until then.
        self.released_with: list[tuple] | None = None

    def finish(self, rows_then: list[tuple]) -> None:
        self.released_with = rows_then
        self.conn.execute("COMMIT")
        self.conn.close()


def test_a_label_edit_made_while_another_process_writes_waits_and_is_written_after(qtbot, labelling):
    window, clip_id = labelling
    messages: list[str] = []
    window.editor.message.connect(messages.append)
    other = OtherWriter(window.project.db_path)
    # The other process finishes its write a second and a half later; until then the edit cannot be written.
    QTimer.singleShot(1500, lambda: other.finish(manual_rows(window)))
    window.editor.create(0.3, 0.8)
    qtbot.waitUntil(lambda: other.released_with is not None, timeout=5000)

    rows = manual_rows(window)
    assert [(start, end) for _, start, end, _ in rows] == [(0.3, 0.8)], messages
    assert other.released_with == []  # nothing was written while the other process held the lock
    assert any("waiting for another earmark process" in m.lower() for m in messages), messages
    assert not any("dropped" in m for m in messages), messages
    assert window.editor.stack.count() == 1 and window.editor.last_added.region_id == rows[0][0]
    # The other process's write is whole as well, and the edit can be undone as usual.
    with sqlite3.connect(window.project.db_path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'long_write'").fetchone() == ("in progress",)
    window.editor.stack.undo()
    assert manual_rows(window) == []
