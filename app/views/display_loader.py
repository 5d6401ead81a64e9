"""Computes what the spectrogram view draws on a background thread: the whole-file overview when a clip
is shown, and full-resolution detail for the visible window as the user zooms. Results come back as
signals (queued onto the GUI thread); a result for a clip or a window that is no longer wanted is dropped.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QObject, Signal

from engine.audio import display
from engine.errors import EarmarkError
from engine.jobs import Cancelled, Progress

log = logging.getLogger("earmark.display")


class DisplayLoader(QObject):
    overview_ready = Signal(int, object, object)  # request, SpectrogramTile, Envelope
    detail_ready = Signal(int, object, object)
    failed = Signal(int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="earmark-display")
        self._request = 0
        self._detail = 0
        self._progress: Progress | None = None
        self._closed = False

    @property
    def request(self) -> int:
        return self._request

    def load(self, path: str, config: display.DisplayConfig, channel: int | None = None) -> int:
        """Start computing the overview of `path`; returns the request number its signals carry."""
        if self._closed:
            return self._request
        if self._progress is not None:
            self._progress.cancel()  # the previous clip's overview is no longer wanted
        self._request += 1
        self._progress = Progress()
        self._pool.submit(self._overview, self._request, path, config, self._progress, channel)
        return self._request

    def load_detail(
        self, path: str, start_s: float, end_s: float, config: display.DisplayConfig, channel: int | None = None
    ) -> None:
        if self._closed:
            return
        self._detail += 1
        self._pool.submit(self._detail_job, self._request, self._detail, path, start_s, end_s, config, channel)

    def _overview(self, request: int, path: str, config, progress: Progress, channel: int | None = None) -> None:
        try:
            tile, envelope = display.overview(path, config, progress=progress, channel=channel)
        except Cancelled:
            return
        except EarmarkError as exc:
            self.failed.emit(request, str(exc))
            return
        except Exception as exc:  # never let a display problem pass silently
            log.exception("overview of %s failed", path)
            self.failed.emit(request, f"cannot draw {path}: {exc!r}")
            return
        if request == self._request:
            self.overview_ready.emit(request, tile, envelope)

    def _detail_job(
        self, request: int, detail: int, path: str, start_s: float, end_s: float, config, channel: int | None = None
    ) -> None:
        if request != self._request or detail != self._detail:
            return  # the user has moved on before this started
        try:
            tile, envelope = display.detail(path, start_s, end_s, config, channel=channel)
        except Exception as exc:
            log.warning("detail of %s [%.2f, %.2f] failed: %r", path, start_s, end_s, exc)
            return
        if request == self._request and detail == self._detail:
            self.detail_ready.emit(request, tile, envelope)

    def shutdown(self) -> None:
        self._closed = True
        if self._progress is not None:
            self._progress.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
