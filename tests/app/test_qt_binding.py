"""The Qt binding keeps Python's reference counts right: PySide6 6.12.0 dropped a reference to None on
every call of a method that returns nothing, which aborts a long-running window on Python 3.11."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtWidgets import QWidget


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12: nothing to lose")
def test_calling_qt_methods_that_return_nothing_keeps_none_alive(qtbot):
    widget = QWidget()
    qtbot.addWidget(widget)
    before = sys.getrefcount(None)
    for _ in range(2000):
        widget.update()
        widget.setWindowTitle("Earmark")
    assert sys.getrefcount(None) >= before - 50
