"""Region edits as undoable commands. Each `redo` and `undo` writes the project at once (one transaction
in `engine.store.labels`), so the undo stack and the database never disagree and a crash loses nothing.

A command whose write fails (the region was removed meanwhile, say by new proposals replacing old ones)
marks itself obsolete, so the stack drops it, and the editor reports why. Another process writing the
project is no failure: the write waits for it (`LabelEditor._waiting`).
Undoing the rejection of a proposal after the clip's proposals were computed again would bring back a
proposal of an old set next to the new ones, so that is refused the same way.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from PySide6.QtGui import QUndoCommand

from engine.errors import EarmarkError
from engine.store import labels
from engine.store.health import database_error
from engine.store.labels import Region

if TYPE_CHECKING:
    from app.labelling.editor import LabelEditor

CHANGED_FIELDS = ("start_s", "end_s", "low_hz", "high_hz", "label", "kind")


class RegionCommand(QUndoCommand):
    def __init__(self, editor: LabelEditor, text: str, clip_id: str) -> None:
        super().__init__(text)
        self.editor = editor
        self.clip_id = clip_id
        self.region_id: int | None = None

    def _run(self, work) -> None:
        try:
            work()
        except (EarmarkError, sqlite3.Error) as exc:
            self.setObsolete(True)
            if isinstance(exc, sqlite3.Error):  # damaged, full, read-only...: the one message, not SQLite's text
                exc = database_error(self.editor.project.folder, exc)
            self.editor.report(f"{self.text()}: {exc}; this step is dropped and the project keeps what it had")
        self.editor.changed(self.clip_id, self.region_id)


class CreateRegion(RegionCommand):
    """Add a region; undo removes it, redo puts it back under the same id. The new region is not left
    selected: the class key pressed next chooses the class of the next region, it does not relabel this one."""

    def __init__(self, editor: LabelEditor, region: Region) -> None:
        super().__init__(editor, f"add {region.label} {region.start_s:.2f}-{region.end_s:.2f} s", region.clip_id)
        self.region = region

    def redo(self) -> None:
        def work() -> None:
            self.region = labels.add_region(self.editor.project, self.region)
            self.editor.last_added = self.region

        self._run(work)

    def undo(self) -> None:
        self.region_id = None
        self._run(lambda: labels.delete_region(self.editor.project, self.region.region_id))


class DeleteRegion(RegionCommand):
    def __init__(self, editor: LabelEditor, region: Region, text: str = "") -> None:
        super().__init__(
            editor, text or f"delete {region.label} {region.start_s:.2f}-{region.end_s:.2f} s", region.clip_id
        )
        self.region = region
        self.generation = editor.proposal_generation(region.clip_id)

    def redo(self) -> None:
        self.region_id = None
        self._run(lambda: labels.delete_region(self.editor.project, self.region.region_id))

    def undo(self) -> None:
        self.region_id = self.region.region_id
        self._run(self._restore)

    def _restore(self) -> None:
        if self.region.kind == "proposal":
            self.region_id = None
            _check_proposals_unchanged(self, "proposal")
            self.region_id = self.region.region_id
        labels.add_region(self.editor.project, self.region)


class ChangeRegion(RegionCommand):
    """Move, resize, relabel or accept (a proposal becomes manual): the fields before and after."""

    def __init__(self, editor: LabelEditor, before: Region, text: str, **after: object) -> None:
        super().__init__(editor, text, before.clip_id)
        self.before = {name: getattr(before, name) for name in CHANGED_FIELDS}
        self.after = {**self.before, **after}
        self.region_id = before.region_id
        self.generation = editor.proposal_generation(before.clip_id)

    def redo(self) -> None:
        self._run(lambda: labels.update_region(self.editor.project, self.region_id, **self.after))

    def undo(self) -> None:
        def work() -> None:
            _check_proposals_unchanged(self, self.before["kind"])
            labels.update_region(self.editor.project, self.region_id, **self.before)

        self._run(work)

    def id(self) -> int:
        return 1 if self.text().startswith("nudge") else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        """Keyboard nudges of one region in a row are one undo step."""
        if not isinstance(other, ChangeRegion) or other.region_id != self.region_id:
            return False
        self.after = other.after
        return True


class ChangeRegions(RegionCommand):
    """The same change to several regions of one clip in one transaction (accept every proposal)."""

    def __init__(
        self,
        editor: LabelEditor,
        regions: list[Region],
        text: str,
        each: dict[int, dict] | None = None,
        **after: object,
    ) -> None:
        """`after`: the change to every region; `each`: more changes to some regions, by region id."""
        super().__init__(editor, text, regions[0].clip_id)
        self.before = [(r.region_id, {name: getattr(r, name) for name in CHANGED_FIELDS}) for r in regions]
        each = each or {}
        self.after = [(region_id, {**fields, **after, **each.get(region_id, {})}) for region_id, fields in self.before]
        self.generation = editor.proposal_generation(self.clip_id)

    def redo(self) -> None:
        self._run(lambda: labels.update_regions(self.editor.project, self.after))

    def undo(self) -> None:
        def work() -> None:
            _check_proposals_unchanged(self, self.before[0][1]["kind"])
            labels.update_regions(self.editor.project, self.before)

        self._run(work)


def _check_proposals_unchanged(command: RegionCommand, kind_before: str) -> None:
    """Undoing an accept (or bringing back a rejected proposal) after the clip's proposals were computed
    again would put a proposal of the old set next to the new ones: refused."""
    if kind_before == "proposal" and command.generation != command.editor.proposal_generation(command.clip_id):
        raise labels.LabelError("the proposals were computed again since; propose again or delete the label")
