"""The engine thread: every engine call the window makes runs here, one job at a time, never on the GUI
thread.

`EngineThread` is a QThread that runs an `EngineWorker`'s job loop. The worker owns the engine session
(the open project, the device, the feature cache and the models loaded so far, so a dropped file is scored
by models that are already warm). Jobs wait in a queue; an urgent job (drop-to-score) goes ahead of the
others. Each job gets an `engine.jobs.Progress` whose updates reach the window as signals, at most every
`PROGRESS_INTERVAL_S` (the engine may report far more often than a window can redraw); `cancel(job_id)`
cancels a queued job at once and a running one at its next `progress.check()`. Jobs are recorded in the
project's `jobs` table with how they ended.

`EngineThread.submit` returns a `JobHandle` (napari's worker style): a QObject on the GUI thread with the
job's own signals (`started`, `progress`, `problem`, `finished(result)`, `failed(message)`, `cancelled`,
then `ended(status)`), always delivered on the GUI thread, so whoever starts a job connects to what it needs
and nobody keeps tables of handlers keyed by job id.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QThread, Signal

from engine.errors import EarmarkError
from engine.files import disk_full
from engine.jobs import Cancelled, Progress
from engine.store import Project, job_log
from engine.store.health import database_error

if TYPE_CHECKING:  # torch comes with these: imported on the engine thread, after the window is drawn
    from engine.detectors.runs import Session

log = logging.getLogger("earmark.engine")
PROGRESS_INTERVAL_S = 0.05

#: A job's work: called on the engine thread with the worker (for its session) and the job's Progress.
JobFunction = Callable[["EngineWorker", Progress], Any]


@dataclass
class Job:
    kind: str
    title: str
    run: JobFunction
    urgent: bool = False
    params: dict = field(default_factory=dict)
    job_id: int = 0
    progress: Progress | None = None
    #: Where the job's events go on the GUI thread (None: only the worker's own signals say them).
    handle: JobHandle | None = None


class JobHandle(QObject):
    """One submitted job, seen from the GUI thread: its id, kind and title, how it ended, and its own signals.

    `finished`, `failed` or `cancelled` comes once, then `ended` with "done", "failed" or "cancelled"; a
    handler connected to `finished` has run before `ended` is emitted. `cancel()` stops it (a queued job at
    once, a running one at its next `progress.check()`)."""

    started = Signal()
    progress = Signal(int, int, str)  # done, total, message
    problem = Signal(str)  # an item the job skipped, and why
    finished = Signal(object)  # the job's result
    failed = Signal(str)  # what went wrong, for the user
    cancelled = Signal()
    ended = Signal(str)  # done | failed | cancelled

    def __init__(self, kind: str, title: str, params: dict | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.id = 0
        self.kind = kind
        self.title = title
        self.params = dict(params or {})
        #: None while queued or running, then "done", "failed" or "cancelled".
        self.status: str | None = None
        self.result: Any = None
        #: The failure's message ("" unless it failed).
        self.error = ""
        #: What the log adds when the job is cancelled (how to resume the training it stopped).
        self.cancel_hint = ""
        self._worker: EngineWorker | None = None

    def __repr__(self) -> str:
        return f"JobHandle({self.id}, {self.kind!r}, {self.title!r}, status={self.status!r})"

    def cancel(self) -> bool:
        """Cancel the job; False when it had already ended."""
        return self._worker is not None and self.status is None and self._worker.cancel(self.id)

    def deliver(self, event: str, payload: object) -> None:
        """On the GUI thread: emit the signal of a worker event (see `EngineWorker.job_event`)."""
        if self.status is not None:
            return  # ended already: nothing after `ended`
        if event == "started":
            self.started.emit()
        elif event == "progress":
            self.progress.emit(*payload)
        elif event == "problem":
            self.problem.emit(payload)
        else:
            self.status = {"finished": "done", "failed": "failed", "cancelled": "cancelled"}[event]
            if event == "finished":
                self.result = payload
                self.finished.emit(payload)
            elif event == "failed":
                self.error = str(payload)
                self.failed.emit(self.error)
            else:
                self.cancelled.emit()
            self.ended.emit(self.status)


class EngineWorker(QObject):
    """Runs jobs on the engine thread. `submit` and `cancel` may be called from any thread."""

    job_queued = Signal(int, str, str)  # job id, kind, title
    job_started = Signal(int)
    job_progress = Signal(int, int, int, str)  # job id, done, total, message
    job_problem = Signal(int, str)  # an item the job skipped, and why
    job_finished = Signal(int, object)  # job id, result
    job_failed = Signal(int, str)  # job id, message
    job_cancelled = Signal(int)
    #: The same events for the job's handle (handle, event, payload): relayed by `EngineThread` on the GUI
    #: thread to the handle's own signals.
    job_event = Signal(object, str, object)
    idle = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[Job] = deque()
        self._condition = threading.Condition()
        self._current: Job | None = None
        self._stopping = False
        self._ids = itertools.count(1)
        self.session: Session | None = None
        self.device_choice = "auto"

    # -- from any thread -----------------------------------------------------------------------------
    def submit(self, job: Job) -> int:
        with self._condition:
            job.job_id = next(self._ids)
            if job.urgent:  # ahead of every ordinary job, behind urgent ones already waiting
                position = next((i for i, queued in enumerate(self._queue) if not queued.urgent), len(self._queue))
                self._queue.insert(position, job)
            else:
                self._queue.append(job)
            self.job_queued.emit(job.job_id, job.kind, job.title)
            self._condition.notify()
        return job.job_id

    def cancel(self, job_id: int | None = None) -> bool:
        """Cancel a job (default: the running one); True when there was such a job."""
        with self._condition:
            current = self._current
            if current is not None and (job_id is None or current.job_id == job_id):
                current.progress.cancel()
                return True
            for queued in list(self._queue):
                if queued.job_id == job_id:
                    self._queue.remove(queued)
                    self._cancelled(queued)
                    return True
        return False

    def cancel_all(self) -> None:
        with self._condition:
            dropped = list(self._queue)
            self._queue.clear()
        for job in dropped:
            self._cancelled(job)
        self.cancel()

    def busy(self) -> bool:
        with self._condition:
            return self._current is not None or bool(self._queue)

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            if self._current is not None:
                self._current.progress.cancel()
            self._condition.notify_all()

    # -- on the engine thread ------------------------------------------------------------------------
    def run_forever(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                job = self._queue.popleft()
                job.progress = self._progress_for(job)
                self._current = job
            announce = None
            try:
                announce = self._run(job)
            finally:
                with self._condition:
                    self._current = None
                    empty = not self._queue
                # Said once the job no longer runs: whoever hears of its end finds the worker free of it
                # (the window's close asks about a running job; it must not see one that has ended).
                if announce is not None:
                    announce()
                    announce = None  # it holds the job's result: not kept while the worker waits for the next
                if empty:
                    self.idle.emit()

    def _progress_for(self, job: Job) -> Progress:
        last = [0.0]

        def relay(done: int, total: int, message: str) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S or (total and done >= total):
                last[0] = now
                self.job_progress.emit(job.job_id, done, total, message)
                self._event(job, "progress", (done, total, message))

        def problem(line: str) -> None:
            self.job_problem.emit(job.job_id, line)
            self._event(job, "problem", line)

        return Progress(relay, on_problem=problem)

    def _event(self, job: Job, event: str, payload: object = None) -> None:
        if job.handle is not None:
            self.job_event.emit(job.handle, event, payload)

    def _cancelled(self, job: Job) -> None:
        self.job_cancelled.emit(job.job_id)
        self._event(job, "cancelled")

    def _failed(self, job: Job, message: str) -> None:
        self.job_failed.emit(job.job_id, message)
        self._event(job, "failed", message)

    def _run(self, job: Job) -> Callable[[], None]:
        """Run `job`; returns what announces its end (finished, failed or cancelled), said by the caller once
        the job is no longer the current one."""
        self.job_started.emit(job.job_id)
        self._event(job, "started")
        record = None
        try:
            writable = self.session is not None and not self.session.project.read_only
            if writable and job.kind not in ("open", "close"):
                record = job_log.start(self.session.project, job.kind, job.params)
            result = job.run(self, job.progress)
        except Cancelled:
            self._end(record, "cancelled", "cancelled by the user")
            return partial(self._cancelled, job)
        except EarmarkError as exc:
            self._end(record, "failed", str(exc))
            return partial(self._failed, job, str(exc))
        except sqlite3.DatabaseError as exc:  # damaged, read-only or locked: the project's one message
            message = str(database_error(self.session.project.folder if self.session else ".", exc))
            self._end(record, "failed", message)
            return partial(self._failed, job, message)
        except Exception as exc:  # a bug: the window stays up, the details go to the log
            full = disk_full(exc, self.session.project.folder) if self.session is not None else None
            if full is not None:  # not a bug: the one message a full disk gives everywhere
                self._end(record, "failed", str(full))
                return partial(self._failed, job, str(full))
            log.error("job %s failed:\n%s", job.title, traceback.format_exc())
            self._end(record, "failed", repr(exc))
            return partial(self._failed, job, f"{job.title} failed unexpectedly: {exc!r} (details in the log)")
        self._end(record, "done")
        return partial(self._finished, job, result)

    def _finished(self, job: Job, result: object) -> None:
        self.job_finished.emit(job.job_id, result)
        self._event(job, "finished", result)

    def _end(self, record: int | None, status: str, message: str = "") -> None:
        if record is not None and self.session is not None:
            try:
                job_log.finish(self.session.project, record, status, message)
            except Exception:  # the job's outcome matters more than its log line
                log.exception("could not record the end of job %s", record)

    # -- the session -------------------------------------------------------------------------------------
    def open_session(self, project: Project) -> None:
        """On the engine thread: make `project` the one jobs work on (models from before are dropped)."""
        from engine.detectors.runs import Session
        from engine.device import pick_device

        if not project.read_only:  # nothing is written to a read-only project
            job_log.recover(project)
        self.session = Session(project, pick_device(self.device_choice))

    def set_device(self, choice: str) -> None:
        from engine.detectors.runs import Session
        from engine.device import pick_device

        device = pick_device(choice)  # an unavailable device fails here, and the old choice stays
        self.device_choice = choice
        if self.session is not None:
            self.session = Session(self.session.project, device)

    def require_session(self) -> Session:
        if self.session is None:
            raise EarmarkError("no project is open; open or create one first (File > Open)")
        return self.session


def preload_engine() -> None:
    """Import what jobs use. The first import of a compiled module holds Python's global lock for up to a
    few hundred milliseconds, which would freeze the window if it happened in the middle of the first fit;
    the engine thread does this before its first job, once the window has been drawn."""
    import librosa  # noqa: F401  (mel filter banks of the spectrogram view)
    import scipy.fft  # noqa: F401
    import scipy.stats  # noqa: F401  (thresholds)
    import sklearn.metrics  # noqa: F401  (evaluation)

    from engine.audio import display  # noqa: F401
    from engine.data import importers  # noqa: F401
    from engine.detectors.registry import detector_keys
    from engine.evaluation import localization, report  # noqa: F401

    detector_keys()  # imports every detector
    # transformers (the AST encoder, ast_ae) is not imported here: seconds of importing that would hold up the
    # window's first paint (1.9 s to 3.1 s from launch), for detectors most projects never fit. While the window
    # lives, cycles are collected in the GUI thread only (app/gui_gc.py), so importing it later in a job is safe.
    # One optimiser step on a toy model: torch imports its optimiser and autograd helpers on first use.
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    optimiser = torch.optim.Adam(model.parameters())
    model(torch.zeros(2, 4)).sum().backward()
    optimiser.step()


def leave_a_core_for_the_window() -> int:
    """Torch's thread count from the one policy (engine.threads): Earmark's own models run on one thread, so
    the window keeps a core to stay responsive while a model trains (with all cores busy, the event loop
    waited up to 200 ms at a time on two cores)."""
    from engine.threads import configure_threads

    return configure_threads("small")


#: Clear while the console script's window is not drawn yet: the engine thread imports torch and the engine
#: (seconds of work that holds Python's global lock in long stretches) only after the first paint.
_window_drawn = threading.Event()
_window_drawn.set()


def hold_engine_until_drawn() -> None:
    _window_drawn.clear()


def window_drawn() -> None:
    _window_drawn.set()


class EngineThread(QThread):
    """The thread the worker's job loop runs on. Start it once; `shutdown()` when the window closes."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = EngineWorker()
        self.worker.moveToThread(self)
        # Queued: the worker emits on the engine thread, the handles' receivers touch widgets.
        self.worker.job_event.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._delivering = True

    def run(self) -> None:
        _window_drawn.wait(timeout=10.0)
        leave_a_core_for_the_window()
        preload_engine()
        self.worker.run_forever()

    def submit(self, kind: str, title: str, run: JobFunction, urgent: bool = False, **params: Any) -> JobHandle:
        """Queue a job (call on the GUI thread); its handle's signals say how it goes."""
        handle = JobHandle(kind, title, params)
        handle._worker = self.worker
        handle.id = self.worker.submit(Job(kind, title, run, urgent, params, handle=handle))
        return handle

    def _deliver(self, handle: JobHandle, event: str, payload: object) -> None:
        if self._delivering:
            handle.deliver(event, payload)

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel what runs, drop what waits, and end the thread; False if it did not end in time. Events of
        jobs that come later reach no handle: they must not reach a closed window."""
        self.worker.cancel_all()
        self.worker.stop()
        ended = self.wait(timeout_ms)
        self._delivering = False
        return ended
