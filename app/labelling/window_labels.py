"""The labelling side of the main window (a mixin of `MainWindow`): the label editor, the region table and
proposals docks, and what the Label menu's keys do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QFileDialog, QInputDialog, QMessageBox

from app import jobs, project_problems
from app.dialogs.label_classes import LabelClassesDialog
from app.labelling.editor import LabelEditor
from app.labelling.proposal_panel import ProposalChoice, ProposalPanel
from app.labelling.region_table import RegionTable
from app.labelling.review import next_stop
from engine.errors import EarmarkError
from engine.labels import proposals
from engine.store import labels, results
from engine.store.labels import Region

LABEL_FILTERS = (
    "Audacity labels (*.txt);;Raven selection table (*.selections.txt);;Praat TextGrid (*.TextGrid);;"
    "CSV (*.csv);;JSON (*.json)"
)
FORMAT_OF_FILTER = {"Audacity": "audacity", "Raven": "raven", "Praat": "textgrid", "CSV": "csv", "JSON": "json"}


class LabelActions:
    def _setup_labelling(self) -> None:
        self.editor = LabelEditor(self)
        self.editor.regions_changed.connect(self._regions_changed)
        self.editor.selection_changed.connect(self._region_selected)
        self.editor.marks_changed.connect(self.view.set_marks)
        self.editor.message.connect(self._status)
        self.editor.database_failed.connect(lambda exc: project_problems.database_failed(self, exc))
        self.view.region_clicked.connect(self.editor.select)  # a click elsewhere keeps it: Esc deselects
        self.view.region_edited.connect(self.editor.edit_bounds)
        self.view.region_drawn.connect(lambda s, e, lo, hi: self.editor.create(s, e, lo, hi))
        self.region_table = RegionTable()
        self.region_table.region_chosen.connect(self.go_to_region)
        self.region_table.region_played.connect(self.play_region)
        self.region_table.scope_changed.connect(lambda _: self.refresh_regions())
        self.proposal_panel = ProposalPanel(
            ProposalChoice(
                "", 1.0, proposals.DEFAULT_OFF_RATIO, proposals.DEFAULT_MIN_DURATION_S, proposals.DEFAULT_MERGE_GAP_S
            )
        )
        self.proposal_panel.settings_changed.connect(self._proposal_timer_start)
        self.proposal_panel.propose_clip_requested.connect(self.propose_clip)
        self.proposal_panel.accept_all_requested.connect(self.accept_all_proposals)
        self.proposal_panel.propose_all_requested.connect(self.propose_all)
        self._proposal_timer = QTimer(self, singleShot=True, interval=30, timeout=self.propose_clip)
        self.view.levels_dragged.connect(self._levels_dragged)
        self.proposal_panel.settings_changed.connect(self.show_proposal_levels)
        for name, title, widget in (
            ("regions", "Regions", self.region_table),
            ("proposals", "Proposals and review", self.proposal_panel),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(name)
            dock.setWidget(widget)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            self.docks[name] = dock  # placed with the others by window_layout.arrange_docks

    # -- keeping the views in step with the project --------------------------------------------------------
    def refresh_regions(self, selected: int | None = None) -> None:
        """Redraw the shown clip's regions and the region table from the project."""
        if self.project is None:
            return
        display = self.view.display
        try:
            classes = self.project.label_classes()  # an import or a new label may have added some
            on_clip = labels.regions(self.project, display.clip_id) if display else []
            shown = labels.regions(self.project) if self.region_table.whole_project.isChecked() else on_clip
            models = {m.model_id: m.detector for m in results.models(self.project)}
        except sqlite3.DatabaseError as exc:  # damaged since it was opened: said once, the window goes on
            project_problems.database_failed(self, exc)
            return
        colours = {c.name: c.colour for c in classes}
        names = self.table.model.clip_names()  # kept by the table: every clip's name, without a row each
        self.region_table.set_regions(shown, colours, models, names, selected)
        if display is not None:
            self.view.set_regions([r for r in on_clip if r.kind != "truth"], colours, selected, models)
        self._name_class_actions([c.name for c in classes])

    def _regions_changed(self, clip_id: str, region_id: int | None) -> None:
        if self.view.display is not None and self.view.display.clip_id != clip_id:  # an undo on another clip
            self.table.select(clip_id, quiet=True)
            self.show_clip(clip_id)
            self.editor.selected = region_id
        self.refresh_regions(region_id)

    def _region_selected(self, region_id: int | None) -> None:
        self.view.select_region(region_id)
        self.region_table.select(region_id)

    def _name_class_actions(self, names: list[str]) -> None:
        """The class keys' menu entries say which class each key gives (disabled on a read-only project)."""
        writable = self.project is None or not self.project.read_only
        for position in range(9):
            action = self.actions_by_name[f"class_{position + 1}"]
            action.setText(f"Label as {names[position]}" if position < len(names) else "Label as (no class)")
            action.setEnabled(writable and position < len(names))

    # -- jumping and playing ----------------------------------------------------------------------------------------
    def go_to_region(self, region: Region, play: bool = False) -> None:
        if self.view.display is None or self.view.display.clip_id != region.clip_id:
            self.table.select(region.clip_id, quiet=True)
            self.show_clip(region.clip_id)
        self.view.show_region(region)
        self.playback.seek(region.start_s)
        self.editor.select(region.region_id)
        if play:
            self.playback.play(region.start_s, region.end_s)

    def play_region(self, region: Region) -> None:
        self.go_to_region(region, play=True)

    # -- Label menu -------------------------------------------------------------------------------------------------
    def toggle_label_mode(self) -> None:
        on = not self.view.label_mode
        self.view.set_label_mode(on)
        self.actions_by_name["label_mode"].setChecked(on)
        self._status(
            "Label mode: drag to draw a region (Shift+drag: a time-frequency box); drag a region to "
            "move it, its edges to resize"
            if on
            else "Label mode off: drags pan the view"
        )

    def mark_start(self) -> None:
        self.editor.mark_start(self.view.playhead_s)

    def mark_end(self) -> None:
        self.editor.mark_end(self.view.playhead_s)

    def commit_region(self) -> None:
        self.editor.commit_marks()

    def clear_marks(self) -> None:
        self.editor.clear_marks()

    def region_start_to_playhead(self) -> None:
        self.editor.set_edge("start", self.view.playhead_s)

    def region_end_to_playhead(self) -> None:
        self.editor.set_edge("end", self.view.playhead_s)

    def nudge_left(self) -> None:
        self.editor.nudge(-self._step())

    def nudge_right(self) -> None:
        self.editor.nudge(self._step())

    def step_back(self) -> None:
        self._move_playhead(-self._step())

    def step_forward(self) -> None:
        self._move_playhead(self._step())

    def _step(self) -> float:
        start, end = self.view.visible_range()
        return max(0.005, (end - start) / 100)

    def _move_playhead(self, seconds: float) -> None:
        if self.view.display is not None:
            target = min(max(0.0, self.view.playhead_s + seconds), self.view.display.duration_s)
            self.playback.seek(target)
            self.view.set_playhead(target, follow=True)

    def delete_region(self) -> None:
        self.editor.delete_selected()

    def undo(self) -> None:
        stack = self.editor.stack
        self._status(f"undo {stack.undoText()}" if stack.canUndo() else "Nothing to undo")
        stack.undo()  # does nothing when there is nothing to undo

    def redo(self) -> None:
        stack = self.editor.stack
        self._status(f"redo {stack.redoText()}" if stack.canRedo() else "Nothing to redo")
        stack.redo()

    def label_classes_dialog(self) -> None:
        if self._need_project():
            dialog = LabelClassesDialog(self.project, self)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.classes_changed.connect(lambda: self.refresh_regions(self.editor.selected))
            dialog.class_renamed.connect(self.editor.class_renamed)
            dialog.class_removed.connect(self.editor.class_removed)
            dialog.open()

    # -- proposals and review -------------------------------------------------------------------------------------
    def accept_proposal(self) -> None:
        self.editor.accept()

    def reject_proposal(self) -> None:
        self.editor.reject()

    def accept_all_proposals(self) -> None:
        accepted = self.editor.accept_all()
        if accepted:
            self._status(f"accepted {accepted} proposal(s) as labels")

    def _proposal_timer_start(self) -> None:
        self._proposal_timer.start()

    def propose_clip(self) -> None:
        """Proposals for the shown clip from the chosen detector's frame scores, with the panel's levels."""
        choice = self.proposal_panel.choice()
        display = self.view.display
        if self.project is None or display is None or choice is None:
            return
        lanes = display.lanes.get(choice.detector)
        if lanes is None or lanes.model_id is None or lanes.frame_times.size == 0:
            self._status(f"{choice.detector} has not scored this clip; score it first (F5 or drop it)")
            return
        from engine.detectors.registry import finding_label  # imports every detector: not at start-up

        try:
            found = proposals.lane_proposals(
                display.clip_id,
                display.duration_s,
                lanes.frame_times,
                lanes.frame_scores,
                lanes.frame_threshold,
                lanes.model_id,
                finding_label(choice.detector),
                choice.on_ratio,
                choice.off_ratio,
                choice.min_duration_s,
                choice.merge_gap_s,
            )
            stored = labels.replace_proposals(self.project, display.clip_id, lanes.model_id, found)
        except EarmarkError as exc:
            self._status(str(exc))
            return
        except sqlite3.DatabaseError as exc:  # damaged, or a full disk: said once, the window goes on
            project_problems.database_failed(self, exc)
            return
        self.editor.proposals_recomputed(display.clip_id)
        self.refresh_regions(self.editor.selected)
        self.statusBar().showMessage(f"{len(stored)} proposal(s) from {choice.detector}", 4000)

    def _level_reference(self) -> tuple[ProposalChoice, float] | None:
        """The proposing detector's choice and the level a ratio of 1 stands for on the shown clip, when that
        detector's lane is the one on screen."""
        choice, display = self.proposal_panel.choice(), self.view.display
        if choice is None or display is None or self.view.detectors[:1] != (choice.detector,):
            return None
        lanes = display.lanes.get(choice.detector)
        if lanes is None or lanes.frame_times.size == 0:
            return None
        try:
            reference = proposals.settings_for(lanes.frame_threshold, lanes.frame_scores, 1.0, 1.0).on
        except EarmarkError:
            return None
        return (choice, reference) if reference > 0 else None

    def show_proposal_levels(self) -> None:
        """The on and off levels as lines on the lane; drag them to re-propose."""
        found = self._level_reference()
        if found is None:
            self.view.set_proposal_levels(None, None)
        else:
            choice, reference = found
            self.view.set_proposal_levels(choice.on_ratio * reference, choice.off_ratio * reference)

    def _levels_dragged(self, on: float, off: float) -> None:
        found = self._level_reference()
        if found is not None:
            _, reference = found
            panel = self.proposal_panel
            panel.on.set_value(on / reference)
            panel.off.set_value(min(off, on) / reference)
            self._proposal_timer.start()

    def propose_all(self) -> None:
        choice = self.proposal_panel.choice()
        if not self._need_project() or choice is None:
            return
        self.editor.proposals_recomputed()
        self.submit(
            "propose",
            f"propose regions with {choice.detector}",
            jobs.propose_all(choice),
            self._proposed_all,
            detector=choice.detector,
        )

    def _proposed_all(self, written: int) -> None:
        self.editor.proposals_recomputed()
        self._status(f"{written} proposal(s) written")
        self.refresh_regions(self.editor.selected)

    def next_review(self, step: int = 1) -> None:
        if self.project is None:
            return
        mode = self.proposal_panel.mode()
        order = self.table.visible_clip_ids()
        current = self.view.display.clip_id if self.view.display else None
        stop = next_stop(
            self.project, order, mode, current, self.editor.selected, step, self.controls.first.currentText() or None
        )
        if stop is None:
            hint = " (Propose on all clips first)" if mode == "proposals" else ""
            self._status(f"No {'more' if step > 0 else 'earlier'} stops in the review queue{hint}")
            return
        play = self.proposal_panel.play_on_arrival.isChecked()
        if stop.region_id is not None:
            self.go_to_region(labels.region(self.project, stop.region_id), play)
        else:
            self.table.select(stop.clip_id, quiet=True)
            self.show_clip(stop.clip_id)
            if play and self.view.display is not None:
                self.playback.play(0.0, self.view.display.duration_s)

    def previous_review(self) -> None:
        self.next_review(-1)

    # -- exchange ----------------------------------------------------------------------------------------------
    def export_labels_dialog(self, selected_only: bool = False) -> None:
        if not self._need_project():
            return
        chosen = self.region_table.selected_regions() if selected_only else None
        if selected_only and not chosen:
            QMessageBox.information(self, "Earmark", "Select rows in the region table to export them.")
            return
        path, kind = QFileDialog.getSaveFileName(self, "Export labels", "", LABEL_FILTERS)
        if path:
            fmt = FORMAT_OF_FILTER.get(kind.split()[0]) if kind else None
            if Path(path).suffix.lower() in (".csv", ".json", ".textgrid"):  # a typed ending wins
                fmt = Path(path).suffix.lower().lstrip(".")
            self.write_labels(Path(path), fmt or "audacity", chosen)

    def export_project_labels_dialog(self) -> None:
        """Every clip's manual labels: one file per clip in a folder, or one CSV / JSON file."""
        if not self._need_project():
            return
        names = list(FORMAT_OF_FILTER)
        kind, ok = QInputDialog.getItem(self, "Export all labels", "Format", names, 0, False)
        if not ok:
            return
        fmt = FORMAT_OF_FILTER[kind]
        if fmt in ("csv", "json"):
            path, _ = QFileDialog.getSaveFileName(self, "Export all labels", f"labels.{fmt}", f"{kind} (*.{fmt})")
        else:
            path = QFileDialog.getExistingDirectory(self, "Folder for one label file per clip")
        if path:
            self.write_labels(Path(path), fmt, whole_project=True)

    def export_selected_regions(self) -> None:
        self.export_labels_dialog(selected_only=True)

    def write_labels(
        self, path: Path, fmt: str, chosen: list[Region] | None = None, whole_project: bool = False
    ) -> list[Path]:
        """Export the chosen regions, else the manual labels of the shown clip (of every clip with
        `whole_project`, or in CSV and JSON, which hold many clips in one file)."""
        from engine.labels import exchange

        display = self.view.display
        every = whole_project or fmt in ("csv", "json") or display is None
        clip_ids = None if chosen or every else [display.clip_id]
        try:
            written = exchange.export_labels(self.project, path, fmt, regions=chosen, clip_ids=clip_ids)
        except EarmarkError as exc:
            QMessageBox.warning(self, "Earmark", str(exc))
            return []
        self._status(
            f"exported labels to {', '.join(str(p) for p in written[:3])}"
            + (f" and {len(written) - 3} more" if len(written) > 3 else "")
        )
        return written

    def import_labels_dialog(self) -> None:
        if not self._need_project():
            return
        paths, _ = QFileDialog.getOpenFileNames(self, "Import labels", "", LABEL_FILTERS + ";;All files (*)")
        if paths:
            self.read_labels([Path(p) for p in paths])

    def read_labels(self, paths: list[Path]) -> object:
        from engine.labels import exchange

        display = self.view.display
        clip_id = None
        if len(paths) == 1 and display is not None and paths[0].is_file():
            try:  # one file of a per-clip format whose name is no clip's: it is for the clip on screen
                per_clip = exchange.format_for_path(paths[0]) not in ("csv", "json")
            except EarmarkError:
                per_clip = False
            if per_clip and exchange.clip_named_by(self.project, paths[0]) is None:
                clip_id = display.clip_id
        try:
            report = exchange.import_labels(self.project, paths, clip_id=clip_id)
        except EarmarkError as exc:
            QMessageBox.warning(self, "Earmark", str(exc))
            return None
        except sqlite3.DatabaseError as exc:  # damaged, or a full disk: said once, the window goes on
            project_problems.database_failed(self, exc)
            return None
        for line in [*report.problems, *report.warnings]:  # warnings: regions clamped to their clip
            self._log(f"labels: {line}", "warning")
        self._status(report.summary() + f"; {len(report.problems)} problem(s)")
        if report.problems:
            self.show_skipped("label_problems", f"{len(report.problems)} line(s) skipped.", report.problems)
        if display is not None:
            self.refresh_regions()
        return report


def _class_key(position: int):
    def choose(self: LabelActions) -> None:
        self.editor.choose_class(position)

    choose.__name__ = f"class_{position + 1}"
    return choose


for _position in range(9):
    setattr(LabelActions, f"class_{_position + 1}", _class_key(_position))
