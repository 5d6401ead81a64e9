"""Garbage collection in the GUI thread only, while a window's worker threads run.

Python collects reference cycles on whichever thread happens to allocate when a generation fills up. In the
window that is often the engine thread (a fit allocates a lot), and a cycle it collects can hold Qt objects that
belong to the GUI thread; deleting them from another thread crashes the process. Seen here: the window's Fit all
died with a segmentation fault, faulthandler showing the engine thread "Garbage-collecting" inside a training
epoch while the GUI thread ran its event loop (and, before the first transformers import was moved, inside that
import). The usual remedy for Qt applications (pyqtgraph ships the same idea): switch automatic collection off
while the window lives and collect on a timer in the GUI thread, generation by generation, with the
interpreter's own thresholds. Cycles wait at most one tick; objects without cycles are freed at once as always.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

#: How often the GUI thread looks at the collector's counts.
INTERVAL_MS = 1000

_holders = 0
_enabled_before = True


class GuiThreadCollector(QObject):
    """Holds automatic collection off from `start()` to `stop()` (nested windows count), collecting on a timer
    of the GUI thread meanwhile; `stop()` gives automatic collection back as it was before the first start."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect)
        self._started = False

    def start(self) -> None:
        global _holders, _enabled_before
        if self._started:
            return
        if _holders == 0:
            _enabled_before = gc.isenabled()
            gc.disable()
        _holders += 1
        self._started = True
        self._timer.start()

    def stop(self) -> None:
        global _holders
        if not self._started:
            return
        self._timer.stop()
        self._started = False
        _holders -= 1
        if _holders == 0 and _enabled_before:
            gc.enable()

    def collect(self) -> None:
        """What automatic collection would have done by now, in this (the GUI) thread."""
        threshold = gc.get_threshold()
        young, middle, old = gc.get_count()
        if young > threshold[0]:
            gc.collect(0)
            if middle > threshold[1]:
                gc.collect(1)
                if old > threshold[2]:
                    gc.collect(2)
