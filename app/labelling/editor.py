"""The label editor: what the labelling keys and mouse gestures do to the shown clip's regions.

Every edit is a command on one QUndoStack per project (Ctrl+Z / Ctrl+Shift+Z) and is written to the
project as it is made. The editor keeps the pending marks (`[` and `]` at the playhead, Enter commits
them), the selected region, and the current class (the last class key pressed), which new regions get.

The rule for class keys 1-9: a key relabels only a region the user selected (a click, a row of the region
table, N / Shift+N, or the proposal the review moves on to), and says so in the status line ("Relabelled
3.20-4.10 s from LEAK to NORMAL"). A region just added (Enter after [ ], or drawn with the mouse) is not
left selected, so a key pressed after it chooses the class of the *next* region. Accepting a proposal keeps
its label when that is one of the project's classes (the leak classifier's LEAK); an anomaly detector's
finding (`engine.labels.proposals.ANOMALY_FINDING`) becomes the current class: what the user is labelling
now, shown in the status line.

An edit made while another Earmark process writes the project waits for it (the window keeps drawing but
takes no keys or clicks meanwhile, so edits are written in the order they were made) and is never dropped
for the lock; after a moment the status line says what it waits for.
"""

from __future__ import annotations

import functools
import sqlite3

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Signal
from PySide6.QtGui import QUndoStack

from app.labelling.commands import ChangeRegion, ChangeRegions, CreateRegion, DeleteRegion
from engine.errors import EarmarkError
from engine.labels.bounds import fit_to_clip
from engine.store import Project, labels
from engine.store.labels import Region

#: Regions shorter than this are taken for a slip of the mouse or a double key press.
MIN_REGION_S = 0.01
#: An edit waiting for another process's write this long is shown in the status line, and again this often.
WAIT_NOTICE_S = (0.5, 5.0)


def _guarded(default: object = None):
    """An editor action that meets a damaged (or full, or locked) project while it reads or writes: the window
    shows the one database message (`database_failed`) and the action returns `default`, instead of the
    error escaping a Qt slot."""

    def wrap(method):
        @functools.wraps(method)
        def run(self: LabelEditor, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except sqlite3.DatabaseError as exc:
                self.database_failed.emit(exc)
                return default

        return run

    return wrap


class LabelEditor(QObject):
    regions_changed = Signal(str, object)  # clip id, the region to select afterwards (or None)
    selection_changed = Signal(object)  # region id or None
    marks_changed = Signal(object, object)  # pending start and end, each None when not set
    message = Signal(str)
    database_failed = Signal(object)  # an sqlite3.DatabaseError met reading the project: the window says it

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.stack = QUndoStack(self)
        self.project: Project | None = None
        self.clip_id: str | None = None
        self.duration_s = 0.0
        #: The shown clip's sample rate: a box reaches at most half of it (None: not known, not bounded).
        self.sample_rate: float | None = None
        self.marks: list[float | None] = [None, None]
        self.selected: int | None = None
        self.current_class: str | None = None
        #: The region the last add wrote (None when the write failed).
        self.last_added: Region | None = None
        #: How often proposals were computed again, for all clips and per clip: undoing the rejection of a
        #: proposal from an earlier set is refused.
        self._proposal_epoch = 0
        self._proposal_counts: dict[str, int] = {}
        #: How long the current wait for the write lock had lasted when the status line last said so.
        self._noticed_s = 0.0

    # -- context -------------------------------------------------------------------------------------------
    def set_project(self, project: Project | None) -> None:
        self.project = project
        if project is not None:
            project.on_wait(self._waiting)  # this (the GUI) thread's writes
        self.stack.clear()
        self.clip_id = None
        classes = project.label_classes() if project else []
        self.current_class = classes[0].name if classes else None
        self._proposal_counts.clear()
        self._set_marks(None, None)

    def proposals_recomputed(self, clip_id: str | None = None) -> None:
        """The proposals of one clip (None: of every clip) were replaced by a new set."""
        if clip_id is None:
            self._proposal_epoch += 1
        else:
            self._proposal_counts[clip_id] = self._proposal_counts.get(clip_id, 0) + 1

    def proposal_generation(self, clip_id: str) -> tuple[int, int]:
        return self._proposal_epoch, self._proposal_counts.get(clip_id, 0)

    # Undo steps name labels: after a class is renamed or removed, an old step would bring the old name
    # back as a new class, so the undo history starts again.
    def class_renamed(self, old: str, new: str) -> None:
        if self.current_class == old:
            self.current_class = new
        self._restart_history()

    @_guarded()
    def class_removed(self, name: str) -> None:
        if self.current_class == name:
            classes = self.project.label_classes() if self.project else []
            self.current_class = classes[0].name if classes else None
        self._restart_history()

    def _restart_history(self) -> None:
        if self.stack.count():
            self.stack.clear()
            self.report("Label classes renamed or removed: the undo history starts again from here")

    @_guarded()
    def set_clip(self, clip_id: str, duration_s: float, sample_rate: float | None = None) -> None:
        if clip_id != self.clip_id:
            self.clip_id, self.duration_s = clip_id, duration_s
            if sample_rate is None and self.project is not None:
                try:
                    sample_rate = self.project.clip(clip_id).sample_rate
                except EarmarkError:
                    sample_rate = None
            self.sample_rate = sample_rate
            self.selected = None
            self._set_marks(None, None)

    def select(self, region_id: int | None) -> None:
        self.selected = region_id
        self.selection_changed.emit(region_id)

    def selected_region(self) -> Region | None:
        if self.project is None or self.selected is None:
            return None
        try:
            return labels.region(self.project, self.selected)
        except EarmarkError:
            self.select(None)
            return None
        except sqlite3.DatabaseError as exc:
            self.database_failed.emit(exc)
            return None

    def report(self, text: str) -> None:
        self.message.emit(text)

    def _waiting(self, seconds: float) -> None:
        """Another process holds the project's write lock: say so now and then, and keep the window drawn
        without taking the user's input (which waits in Qt's queue, so later edits stay behind this one)."""
        first, every = WAIT_NOTICE_S
        if seconds < self._noticed_s:  # a new wait
            self._noticed_s = 0.0
        if seconds >= first and (not self._noticed_s or seconds - self._noticed_s >= every):
            self._noticed_s = seconds
            self.report(
                f"Waiting for another Earmark process to finish writing the project ({seconds:.0f} s); "
                "the edit is kept and written as soon as it can be"
            )
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)

    def changed(self, clip_id: str, region_id: int | None) -> None:
        """Called by each command after it wrote the project."""
        self.selected = region_id
        self.regions_changed.emit(clip_id, region_id)

    # -- creating ------------------------------------------------------------------------------------------
    def mark_start(self, seconds: float) -> None:
        end = self.marks[1] if self.marks[1] is not None and self.marks[1] > seconds else None
        self._set_marks(seconds, end)

    def mark_end(self, seconds: float) -> None:
        start = self.marks[0] if self.marks[0] is not None and self.marks[0] < seconds else None
        self._set_marks(start, seconds)

    @_guarded(False)
    def commit_marks(self) -> bool:
        start, end = self.marks
        if start is None or end is None:
            self.report("Set the start with [ and the end with ] (at the playhead) before pressing Enter")
            return False
        if self.create(start, end):
            self._set_marks(None, None)
            return True
        return False

    def clear_marks(self) -> None:
        self._set_marks(None, None)
        self.select(None)

    @_guarded(False)
    def create(
        self,
        start: float,
        end: float,
        low_hz: float | None = None,
        high_hz: float | None = None,
        label: str | None = None,
    ) -> bool:
        if not self._ready():
            return False
        label = label or self.current_class
        if label is None:
            self.report("Add a label class first (Label > Label classes...)")
            return False
        fitted = self._fit(Region(self.clip_id, start, end, label, "manual", low_hz, high_hz), "Not added")
        if fitted is None:
            return False
        region, warning = fitted
        if region.end_s - region.start_s < MIN_REGION_S:
            self.report(f"A region must last at least {MIN_REGION_S * 1000:.0f} ms")
            return False
        self.last_added = None
        self.stack.push(CreateRegion(self, region))
        if self.last_added is None:
            return False
        said = f" (it {warning})" if warning else ""
        self.report(f"Added {label} {_span(self.last_added)}{said}; a class key now chooses the next region's class")
        return True

    # -- changing ------------------------------------------------------------------------------------------
    @_guarded()
    def edit_bounds(
        self, region_id: int, start: float, end: float, low_hz: float | None = None, high_hz: float | None = None
    ) -> None:
        """A region dragged or resized with the mouse."""
        region = self._region(region_id)
        if region is None:
            return
        fitted = self._fit(
            Region(region.clip_id, start, end, region.label, region.kind, low_hz, high_hz), "Not changed"
        )
        if fitted is None:
            self.changed(region.clip_id, region.region_id)  # redrawn where it was
            return
        start, end, low_hz, high_hz = (fitted[0].start_s, fitted[0].end_s, fitted[0].low_hz, fitted[0].high_hz)
        if (region.start_s, region.end_s, region.low_hz, region.high_hz) == (start, end, low_hz, high_hz):
            return
        if end - start < MIN_REGION_S:
            self.report(f"A region must last at least {MIN_REGION_S * 1000:.0f} ms; it stays as it was")
            self.changed(region.clip_id, region.region_id)  # redrawn where it was
            return
        moved = abs((end - start) - region.duration_s) < 1e-6
        self._change(region, "move" if moved else "resize", start_s=start, end_s=end, low_hz=low_hz, high_hz=high_hz)

    @_guarded()
    def set_edge(self, edge: str, seconds: float) -> None:
        """Move the selected region's start or end to `seconds` (the playhead)."""
        region = self._selected_manual()
        if region is not None:
            start, end = (seconds, region.end_s) if edge == "start" else (region.start_s, seconds)
            if end - start < MIN_REGION_S:
                self.report(f"The {edge} would cross the region's other edge; move the playhead first")
                return
            self._change(region, "resize", start_s=start, end_s=end)

    @_guarded()
    def nudge(self, seconds: float) -> None:
        region = self._selected_manual()
        if region is not None:
            shift = min(max(seconds, -region.start_s), max(0.0, self.duration_s - region.end_s))
            if shift:
                self._change(region, "nudge", start_s=region.start_s + shift, end_s=region.end_s + shift)

    @_guarded()
    def choose_class(self, position: int) -> None:
        """Class key 1-9: the class new regions get; relabels the selected region (accepts a proposal)."""
        classes = self.project.label_classes() if self.project else []
        if not 0 <= position < len(classes):
            self.report(f"There is no label class {position + 1}; add one in Label > Label classes...")
            return
        name = classes[position].name
        self.current_class = name
        region = self.selected_region()
        if region is None or region.kind == "truth":
            self.report(f"New regions will be labelled {name}")
        elif region.kind == "proposal":
            self.accept(region.region_id, name)
        elif region.label != name:
            self._change(region, f"relabel {_span(region)} as {name}", label=name)
            self.report(f"Relabelled {_span(region)} from {region.label} to {name}")
        else:
            self.report(f"{_span(region)} is already {name}; new regions will be labelled {name}")

    @_guarded()
    def delete_selected(self) -> None:
        region = self.selected_region()
        if region is None:
            self.report("Select a region first (click it, or pick it in the region table)")
        elif region.kind == "truth":
            self.report("Ground-truth regions come with the data set and are not edited here")
        else:
            self.stack.push(DeleteRegion(self, region))

    # -- proposals ---------------------------------------------------------------------------------------------
    @_guarded()
    def accept(self, region_id: int | None = None, label: str | None = None) -> None:
        region = self._region(region_id if region_id is not None else self.selected)
        if region is None or region.kind != "proposal":
            self.report("Select a proposal to accept (N goes to the next one)")
            return
        label = label or self.accepted_label(region)
        if label is None:
            self.report("Add a label class first (Label > Label classes...)")
            return
        self._change(region, f"accept {label} {_span(region)}", kind="manual", label=label)
        self.report(
            f"Accepted {_span(region)} as {label}"
            + (f" (proposed as {region.label}?)" if label != region.label else "")
        )
        self._select_next_proposal(region)

    def accepted_label(self, proposal: Region) -> str | None:
        """The class an accepted proposal gets: its own label when that is a class of the project (the leak
        classifier's LEAK), else (an anomaly detector's finding) the current class."""
        classes = {c.name for c in self.project.label_classes()} if self.project else set()
        return proposal.label if proposal.label in classes else self.current_class

    @_guarded()
    def reject(self) -> None:
        region = self.selected_region()
        if region is None or region.kind != "proposal":
            self.report("Select a proposal to reject (N goes to the next one)")
            return
        self.stack.push(DeleteRegion(self, region, f"reject proposal {region.start_s:.2f}-{region.end_s:.2f} s"))
        self._select_next_proposal(region)

    @_guarded(0)
    def accept_all(self) -> int:
        if not self._ready():
            return 0
        pending = labels.regions(self.project, self.clip_id, ("proposal",))
        if not pending:
            self.report("This clip has no proposals to accept")
            return 0
        chosen = {r.region_id: self.accepted_label(r) for r in pending}
        if None in chosen.values():
            self.report("Add a label class first (Label > Label classes...)")
            return 0
        self.stack.push(
            ChangeRegions(
                self,
                pending,
                f"accept {len(pending)} proposal(s)",
                {i: {"label": label} for i, label in chosen.items()},
                kind="manual",
            )
        )
        return len(pending)

    def _select_next_proposal(self, after: Region) -> None:
        pending = [
            r
            for r in labels.regions(self.project, after.clip_id, ("proposal",))
            if r.start_s >= after.start_s and r.region_id != after.region_id
        ]
        region_id = pending[0].region_id if pending else None
        self.changed(after.clip_id, region_id)

    # -- helpers -----------------------------------------------------------------------------------------------
    def _ready(self) -> bool:
        if self.project is None or self.clip_id is None:
            self.report("Open a project and select a clip first")
            return False
        return True

    def _region(self, region_id: int | None) -> Region | None:
        if self.project is None or region_id is None:
            return None
        try:
            return labels.region(self.project, region_id)
        except EarmarkError as exc:
            self.report(str(exc))
            return None
        except sqlite3.DatabaseError as exc:
            self.database_failed.emit(exc)
            return None

    def _selected_manual(self) -> Region | None:
        region = self.selected_region()
        if region is None or region.kind != "manual":
            self.report("Select a labelled region first (click it, or pick it in the region table)")
            return None
        return region

    def _fit(self, region: Region, refused: str) -> tuple[Region, str | None] | None:
        """`region` held to its clip as a label file's would be (`engine.labels.bounds`: clamped when a
        little past the clip's end or Nyquist frequency); None, with the reason shown, when it lies far
        outside or holds a number that is not finite."""
        duration, rate = self.duration_s, self.sample_rate
        if region.clip_id != self.clip_id and self.project is not None:
            try:
                clip = self.project.clip(region.clip_id)
                duration, rate = clip.duration_s, clip.sample_rate
            except EarmarkError:
                pass
        try:
            return fit_to_clip(region, duration, rate)
        except EarmarkError as exc:
            self.report(f"{refused}: the region {exc}")
            return None

    def _change(self, region: Region, what: str, **after: object) -> None:
        self.stack.push(ChangeRegion(self, region, what, **after))

    def _set_marks(self, start: float | None, end: float | None) -> None:
        self.marks = [start, end]
        self.marks_changed.emit(start, end)


def _span(region: Region) -> str:
    return f"{region.start_s:.2f}-{region.end_s:.2f} s"
