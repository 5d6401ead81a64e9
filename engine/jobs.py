"""Progress and cancellation: the contract every long engine call follows.

A long call takes a `Progress`, calls `progress.update(done, total, message)` as it goes (at least every
~200 ms of work) and `progress.check()` between steps; `check()` raises `Cancelled` once somebody called
`cancel()`. An item the call must skip (a corrupt clip in a batch) goes to `progress.problem(line)`, and the
call carries on with the rest. The CLI uses `TerminalProgress` (a progress bar on stderr that appears only
for work longer than a second), the GUI relays updates through Qt signals, and tests use `RecordingProgress`.
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class Cancelled(Exception):
    """Raised by `Progress.check()` after the user asked to cancel."""


ProgressCallback = Callable[[int, int, str], None]


class Progress:
    """Reports how far a job is and tells it when to stop.

    `callback(done, total, message)` is called on every update; `cancel()` is safe to call from any thread.
    """

    def __init__(self, callback: ProgressCallback | None = None,
                 on_problem: Callable[[str], None] | None = None) -> None:
        self._callback = callback
        self._on_problem = on_problem
        self._cancel = threading.Event()
        self.done = 0
        self.total = 0
        self.message = ""
        #: Items the job skipped and went on without (a corrupt clip in a batch), one line each.
        self.problems: list[str] = []

    def update(self, done: int, total: int, message: str = "") -> None:
        self.done, self.total = int(done), int(total)
        if message:
            self.message = message
        if self._callback is not None:
            self._callback(self.done, self.total, self.message)
        self.check()

    def problem(self, line: str) -> None:
        """Report an item the job had to skip; the job goes on with the rest."""
        self.problems.append(line)
        if self._on_problem is not None:
            self._on_problem(line)

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled(self.message or "cancelled")

    def cancel(self) -> None:
        self._cancel.set()

    def child(self, prefix: str) -> Progress:
        """A Progress for one step of this job: its updates reach this one with `prefix` before the message,
        its problems are this job's problems, and cancelling either cancels both."""
        child = Progress(lambda done, total, message: self.update(done, total, f"{prefix}{message}"),
                         on_problem=self.problem)
        child._cancel = self._cancel
        return child

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def close(self) -> None:
        """Called once the job ends, whatever the outcome."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TerminalProgress(Progress):
    """A progress bar on stderr, shown only once the work has taken longer than `delay_s`."""

    def __init__(self, description: str = "", delay_s: float = 1.0, unit: str = "clip") -> None:
        super().__init__()
        self._description = description
        self._unit = unit
        self._delay_s = delay_s
        self._bar = None

    def update(self, done: int, total: int, message: str = "") -> None:
        if self._bar is None:
            from tqdm import tqdm  # here, not at the top: commands that show no bar start faster

            interactive = sys.stderr.isatty()
            self._bar = tqdm(total=total or None, desc=self._description, delay=self._delay_s, file=sys.stderr,
                             unit=self._unit, dynamic_ncols=True, leave=False, mininterval=0.1 if interactive else 5.0)
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)  # tqdm redraws at most every `mininterval` seconds
        super().update(done, total, message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@dataclass
class RecordingProgress(Progress):
    """Keeps every update; can cancel itself after a given number of updates (for tests)."""

    cancel_after: int | None = None
    updates: list[tuple[int, int, str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self._record)

    def _record(self, done: int, total: int, message: str) -> None:
        self.updates.append((done, total, message, time.monotonic()))
        if self.cancel_after is not None and len(self.updates) >= self.cancel_after:
            self.cancel()
