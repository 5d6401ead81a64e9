"""The window's side of scoring drops: the "Score drops with" choice (auto, the closest group, by default),
what the status line says about each scored drop, and scoring clips again once their group is known."""

from __future__ import annotations

from app import jobs
from app.engine_thread import JobHandle

#: The first entry of "Score drops with": each drop goes to the group it resembles most.
AUTO_GROUP = "auto (closest group)"


class DropActions:
    """Mixed into MainWindow (it uses its project, table, settings, submit and status line)."""

    def drop_group_choice(self) -> str | None:
        """The group the user chose for drops without machine and section; None for auto."""
        group = self.drop_group.currentText()
        return None if not group or group == AUTO_GROUP else group

    def fill_drop_groups(self, groups: list[str]) -> None:
        """Auto first, then the fitted groups; the project's remembered choice stays chosen."""
        remembered = self.settings.drop_group(str(self.project.folder)) or self.drop_group.currentText()
        self.drop_group.blockSignals(True)
        self.drop_group.clear()
        self.drop_group.addItems([AUTO_GROUP, *groups])
        self.drop_group.setCurrentText(remembered if remembered in groups else AUTO_GROUP)
        self.drop_group.blockSignals(False)

    def rescore_clips(self, clip_ids: list[str]) -> JobHandle | None:
        """Score clips again with their own group's models (after their machine and section were set); the
        table rows and the status line follow when it is done. Returns the job's handle."""
        if self.project is None or not clip_ids:
            return None
        title = f"score {len(clip_ids)} clip(s) again" if len(clip_ids) > 1 else f"score {clip_ids[0]} again"
        return self.submit(
            "drop", title, jobs.rescore(list(clip_ids)), self._dropped, urgent=True, clips=list(clip_ids)
        )

    def show_drop_verdicts(self, result: jobs.DropResult) -> None:
        """Say, per scored clip, which group's models scored it, how the group was found, and the scores."""
        for clip_id, verdict in result.verdicts.items():
            scores = ", ".join(f"{d} {det.score:.4g}" for d, det in verdict.detections.items())
            self._status(f"{clip_id}: {verdict.describe()}: {scores}")
