"""Progress and cancellation: the contract every long engine call follows.

A long call takes a `Progress`, calls `progress.update(done, total, message)` as it goes (at least every
~200 ms of work) and `progress.check()` between steps; `check()` raises `Cancelled` once somebody called
`cancel()`. An item the call must skip (a corrupt clip in a batch) goes to `progress.problem(line)`, and the
call carries on with the rest. The CLI uses `TerminalProgress` (a progress bar on stderr that appears only
for work longer than a second), the GUI relays updates through Qt signals, and tests use `RecordingProgress`.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


class Cancelled(Exception):
    """Raised by `Progress.check()` after the user asked to cancel."""


ProgressCallback = Callable[[int, int, str], None]


#: The scale of a rolled-up fraction: work reported by steps with a share reaches the job as (done, UNITS).
UNITS = 10_000


class Progress:
    """Reports how far a job is and tells it when to stop.

    `callback(done, total, message)` is called on every update; `cancel()` is safe to call from any thread.
    Steps of a job report through `child()`: a child given a share (`index` of `count`, or a `span`) maps its
    own done/total into that part of its parent's fraction, so nested steps (detector i/n, group j/m,
    epoch k/K) roll up into one overall fraction, which the job hears as `(round(fraction * UNITS), UNITS)`.
    """

    def __init__(
        self, callback: ProgressCallback | None = None, on_problem: Callable[[str], None] | None = None
    ) -> None:
        self._callback = callback
        self._on_problem = on_problem
        self._cancel = threading.Event()
        self._parent: Progress | None = None
        self._prefix = ""
        #: Where this step's fraction lies in its parent's, or None: its counts pass through unchanged.
        self._span: tuple[float, float] | None = None
        #: The highest rolled-up fraction the job has reported (a step that starts a second phase, say
        #: training after reading features, must not move the job's bar backwards).
        self._high = 0.0
        self.done = 0
        self.total = 0
        self.message = ""
        #: Items the job skipped and went on without (a corrupt clip in a batch), one line each.
        self.problems: list[str] = []

    def update(self, done: int, total: int, message: str = "") -> None:
        self._take(int(done), int(total), message, None)

    def _take(self, done: int, total: int, message: str, rolled: float | None) -> None:
        """An update of this step: its own counts (`rolled` None) or the fraction a child with a share
        rolled up (`done` of `UNITS`, `rolled` the exact fraction)."""
        self.done, self.total = done, total
        if message:
            self.message = message
        if self._parent is not None:
            self._parent._from_child(self, rolled)
        else:
            if rolled is not None:
                self._high = max(self._high, rolled)
                self.done = round(self._high * UNITS)
            self._emit(self.done, self.total, self.message)
        self.check()

    def _from_child(self, child: Progress, rolled: float | None) -> None:
        message = f"{child._prefix}{child.message}"
        if child._span is None:  # a plain step: its counts are this job's, as they always were
            self._take(child.done, child.total, message, rolled)
            return
        low, high = child._span
        fraction = rolled if rolled is not None else child.fraction
        overall = low + (high - low) * (fraction or 0.0)
        self._take(round(overall * UNITS), UNITS, message, overall)

    def _emit(self, done: int, total: int, message: str) -> None:
        """What the job (the outermost Progress) does with each update; subclasses draw it."""
        if self._callback is not None:
            self._callback(done, total, message)

    @property
    def fraction(self) -> float | None:
        """How much of the job is done, 0..1, or None while its size is unknown."""
        return min(max(self.done / self.total, 0.0), 1.0) if self.total > 0 else None

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

    def child(
        self,
        prefix: str = "",
        index: int | None = None,
        count: int | None = None,
        *,
        span: tuple[float, float] | None = None,
    ) -> Progress:
        """A Progress for one step of this job: its updates reach this one with `prefix` before the message,
        its problems are this job's problems, and cancelling either cancels both.

        Step `index` of `count` (or the part `span` = (start, end) of 0..1) owns that share of this job's
        fraction: its own done/total move this job from index/count to (index + 1)/count. Without a share
        the step's counts pass through unchanged."""
        if index is not None and count:
            span = (index / count, (index + 1) / count)
        if span is not None:
            low, high = (min(max(float(v), 0.0), 1.0) for v in span)
            span = (low, max(low, high))
        child = Progress(on_problem=self.problem)
        child._parent, child._prefix, child._span = self, prefix, span
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


#: Of a detector's share of a fit-then-score job, the part fitting takes; scoring its test clips takes the rest.
FIT_SHARE = 0.85


def spans(weights: Sequence[float]) -> list[tuple[float, float]]:
    """Consecutive parts of 0..1 in proportion to `weights` (a step's expected cost), for `child(span=...)`."""
    total = float(sum(max(w, 0.0) for w in weights))
    if total <= 0:
        return [(i / len(weights), (i + 1) / len(weights)) for i in range(len(weights))]
    out, start = [], 0.0
    for weight in weights:
        end = start + max(weight, 0.0) / total
        out.append((start, min(end, 1.0)))
        start = end
    return out


@dataclass
class TimeLeft:
    """Seconds left in a job, from the rate its overall fraction grows: the rate is smoothed over about
    `smoothing_s` seconds, and nothing is said before `min_elapsed_s` have passed (early rates mislead)."""

    min_elapsed_s: float = 5.0
    smoothing_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _start: tuple[float, float] | None = None
    _last: tuple[float, float] | None = None
    _rate: float | None = None

    def add(self, fraction: float, now: float | None = None) -> float | None:
        """Note the fraction done at `now` (default: the clock's time); the seconds left, or None if not known
        yet."""
        now = self.clock() if now is None else now
        if self._start is None or self._last is None:
            self._start = self._last = (now, fraction)
            return None
        start_t, start_f = self._start
        last_t, last_f = self._last
        if now - last_t >= 0.5:
            rate = (fraction - last_f) / (now - last_t)
            if self._rate is None:
                self._rate = (fraction - start_f) / (now - start_t)
            else:
                weight = 1.0 - math.exp(-(now - last_t) / self.smoothing_s)
                self._rate += weight * (rate - self._rate)
            self._last = (now, fraction)
        if now - start_t < self.min_elapsed_s or not self._rate or self._rate <= 0 or fraction >= 1.0:
            return None
        return (1.0 - fraction) / self._rate


def describe_duration(seconds: float) -> str:
    """ "40 s", "12 min", "2 h 05 min"."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


def describe_time_left(seconds: float | None) -> str:
    """ "about 4 min left" and the like; empty while the time left is not known."""
    if seconds is None:
        return ""
    return "less than a minute left" if seconds < 60 else f"about {describe_duration(seconds)} left"


class TerminalProgress(Progress):
    """A progress bar on stderr, shown only once the work has taken longer than `delay_s`: the job's overall
    percentage on a fixed scale, the time left, and the message of the step being done."""

    def __init__(self, description: str = "", delay_s: float = 1.0, unit: str = "clip") -> None:
        super().__init__()
        self._description = description
        self._unit = unit  # kept for callers; the bar counts tenths of a percent of the whole job
        self._delay_s = delay_s
        self._bar = None
        self._time_left = TimeLeft()

    def _emit(self, done: int, total: int, message: str) -> None:
        if self._bar is None:
            from tqdm import tqdm  # here, not at the top: commands that show no bar start faster

            interactive = sys.stderr.isatty()
            self._bar = tqdm(
                total=1000,
                desc=self._description,
                delay=self._delay_s,
                file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}",
                dynamic_ncols=True,
                leave=False,
                mininterval=0.1 if interactive else 5.0,
            )
        fraction = min(max(done / total, 0.0), 1.0) if total > 0 else None
        left = describe_time_left(self._time_left.add(fraction)) if fraction is not None else ""
        self._bar.set_postfix_str(", ".join(part for part in (left, message) if part), refresh=False)
        if fraction is not None:
            self._bar.update(round(fraction * 1000) - self._bar.n)  # tqdm redraws at most every `mininterval`
        super()._emit(done, total, message)

    def say(self, line: str) -> None:
        """Print a line on stdout without breaking the bar."""
        if self._bar is None:
            print(line, flush=True)
        else:
            self._bar.write(line, file=sys.stdout)

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
