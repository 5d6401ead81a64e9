"""What each menu entry and shortcut does: a mixin of `MainWindow`, kept apart so the window's set-up and
its commands can each be read on their own."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from app import jobs
from app.dialogs.fit import FitDialog
from app.dialogs.help import ShortcutsDialog
from app.dialogs.settings import SettingsDialog
from app.engine_thread import JobHandle
from engine.errors import EarmarkError
from engine.store import Project, results

#: Fit all asks before a run expected to take longer than this (seconds).
LONG_RUN_S = 60.0

ABOUT = (
    "<b>Earmark</b> 0.1: machine-sound anomaly detection and labelling.<br>"
    "Projects are SQLite files next to your recordings; audio is never copied or changed."
)


class WindowActions:
    # -- File ---------------------------------------------------------------------------------------------
    def new_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the new project (an empty folder)")
        if folder:
            try:
                Project.create(folder).close()
            except EarmarkError as exc:
                QMessageBox.warning(self, "Earmark", str(exc))
                return
            self.open_project(folder)

    def open_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open project folder")
        if folder:
            self.open_project(folder)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self.settings.recent_projects():
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.open_project(f))
        self.recent_menu.setEnabled(bool(self.settings.recent_projects()))

    def _need_project(self) -> bool:
        if self.project is None:
            QMessageBox.information(self, "Earmark", "Open or create a project first (File > Open).")
            return False
        return True

    def import_dataset_dialog(self) -> None:
        if self._need_project():
            folder = QFileDialog.getExistingDirectory(self, "Data set folder (DCASE layout, metadata.csv, folders)")
            if folder:
                self.submit(
                    "import", f"import {Path(folder).name}", jobs.import_data(folder), self._imported, source=folder
                )

    def import_files_dialog(self) -> None:
        if self._need_project():
            files, _ = QFileDialog.getOpenFileNames(
                self, "Audio files", "", "Audio (*.wav *.flac *.ogg *.mp3);;All files (*)"
            )
            if files:
                self.submit(
                    "import", f"import {len(files)} file(s)", jobs.import_data(files=files), self._imported, files=files
                )

    def _imported(self, lines: list[str]) -> None:
        for line in lines:
            warning = line.startswith(("  skipped", "  different content", "  not found", "  QA "))
            self._log(line, "warning" if warning else "info")
        self.statusBar().showMessage(lines[0], 8000)
        self.refresh()

    def locate_missing_dialog(self) -> None:
        from app.dialogs.locate import LocateMissingDialog
        from engine.store.relocate import missing_clips

        if self._need_project():
            missing = missing_clips(self.project)
            if not missing:
                QMessageBox.information(self, "Earmark", "Every clip's recording is where the project expects it.")
                return
            dialog = LocateMissingDialog(missing, self)
            if dialog.exec() and dialog.chosen_folder():
                self.locate_missing(dialog.chosen_folder())

    def locate_missing(self, folder: str) -> JobHandle:
        """Search `folder` for the missing recordings as an engine job; the report goes to the log."""
        return self.submit(
            "relocate", "locate missing recordings", jobs.locate_missing(folder), self._imported, folder=folder
        )

    def export_dcase_dialog(self) -> None:
        if self._need_project():
            folder = QFileDialog.getExistingDirectory(self, "Folder for the DCASE result files")
            if folder:
                self.submit(
                    "export",
                    "export DCASE results",
                    jobs.export_dcase(folder),
                    lambda lines: [self._status(line) for line in lines],
                    out=folder,
                )

    def settings_dialog(self) -> None:
        dialog = self.make_settings_dialog()
        if dialog.exec():
            self.apply_settings(dialog)

    def make_settings_dialog(self) -> SettingsDialog:
        """The dialog, wired: "Check and use" loads the weights on the engine thread and reports back."""
        import torch  # here: the window is drawn before torch is loaded

        dialog = SettingsDialog(self.settings.device, self.view.settings, torch.cuda.is_available(), self)
        dialog.weights_requested.connect(lambda name, path: self._check_weights(dialog, name, path))
        return dialog

    def _check_weights(self, dialog: SettingsDialog, name: str, path: str) -> JobHandle:
        handle = self.submit(
            "weights",
            f"check {name} weights",
            jobs.save_weights(name, path),
            lambda stored: dialog.weights[name].report(True, f"in use: {stored}"),
            path=path,
        )
        handle.failed.connect(lambda message: dialog.weights[name].report(False, message))
        return handle

    def apply_settings(self, dialog: SettingsDialog) -> None:
        spectrogram = dialog.chosen_spectrogram()
        self.settings.set_spectrogram(spectrogram)
        self.view.apply_settings(spectrogram)
        device = dialog.device.currentText()
        if device != self.settings.device:
            self.submit("device", f"use device {device}", jobs.set_device(device), self._device_set)

    def _device_set(self, device: str) -> None:
        self.settings.device = self.engine.worker.device_choice  # kept only once it worked
        self._status(f"computing on {device}")

    # -- Train ------------------------------------------------------------------------------------------------
    def fit_all(self) -> JobHandle | None:
        from engine.detectors.registry import fit_all_keys
        from engine.fit_estimate import estimate_fit

        if self._need_project():
            keys = fit_all_keys()  # ast_ae is fitted by name only: hours per group on a CPU
            estimate = estimate_fit(self.project.clips(), keys)
            if estimate.seconds > LONG_RUN_S and not self._confirm_long_run(estimate.describe()):
                return None
            handle = self.submit(
                "fit",
                "fit all detectors",
                jobs.fit_detectors(keys, weights=estimate.weights()),
                self._fitted,
                detectors=keys,
            )
            self._hint_resume(handle, keys)
            return handle
        return None

    def _trains_in_epochs(self, detector: str) -> bool:
        from engine.detectors.registry import detector_class

        return callable(getattr(detector_class(detector), "branches", None))

    def _resumable(self, detector: str) -> bool:
        """Whether the project holds the checkpoints of an interrupted training of `detector` to resume from."""
        from engine.training import has_interrupted_training

        return (
            self.project is not None
            and self._trains_in_epochs(detector)
            and has_interrupted_training(self.project.artifacts / "training" / detector)
        )

    def _hint_resume(self, handle: JobHandle, detectors: list[str]) -> None:
        """What the log says when the job is cancelled: how to continue the training it stopped."""
        epochs = [d for d in detectors if self._trains_in_epochs(d)]
        if epochs:
            handle.cancel_hint = (
                f"Train > Fit detector... with Resume ticked continues {', '.join(epochs)} from the last finished epoch"
            )

    def _confirm_long_run(self, estimate: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Fit all detectors",
            f"Fitting will take a while: {estimate}.\n\n"
            "It runs in the background (the Jobs dock shows how far it is, and Cancel "
            "stops it). Start now?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes,
        )
        return answer == QMessageBox.StandardButton.Yes

    def fit_detector_dialog(self) -> None:
        from engine.detectors.registry import detector_keys

        if self._need_project():
            groups = sorted({c.group for c in self.project.clips(split="train")})
            dialog = FitDialog(detector_keys(), groups, self, self._resumable)
            if dialog.exec():
                detector, group, settings = dialog.chosen()
                resume = dialog.resume.isChecked()
                handle = self.submit(
                    "fit",
                    f"fit {detector}" + (f" on {group}" if group else "") + (", resumed" if resume else ""),
                    jobs.fit_detectors([detector], group, settings, resume=resume),
                    self._fitted,
                    detector=detector,
                    group=group,
                    settings=settings,
                    resume=resume,
                )
                self._hint_resume(handle, [detector])

    def _fitted(self, result: jobs.FitResult) -> None:
        for warning in result.warnings:
            self._log(warning, "warning")
        few = f"; {len(result.warnings)} fitted on few normal clips (see the log)" if result.warnings else ""
        self._status(f"fitted {len(result.fitted)} model(s); scored {result.scored} test clip(s){few}")
        self.refresh()

    def enrol_selected(self) -> None:
        if not self._need_project():
            return
        clip_ids = self.table.selected_clip_ids()
        detectors = results.fitted_detectors(self.project)
        if not clip_ids or not detectors:
            QMessageBox.information(
                self,
                "Earmark",
                "Select normal target-domain clips in the table, and fit a "
                "detector first; enrolling adds them to its fitted models.",
            )
            return
        detector, ok = QInputDialog.getItem(
            self, "Enrol target clips", f"Enrol {len(clip_ids)} clip(s) into", detectors, 0, False
        )
        if ok:
            self.submit(
                "enrol",
                f"enrol {len(clip_ids)} clip(s) into {detector}",
                jobs.enrol(detector, clip_ids),
                lambda models: (self._status(f"enrolled into {len(models)} model(s)"), self.refresh()),
                detector=detector,
                clips=clip_ids,
            )

    def score_all(self) -> JobHandle | None:
        if self._need_project():
            detectors = results.fitted_detectors(self.project)
            return self.submit(
                "score",
                "score all test clips",
                jobs.score_all(detectors),
                lambda n: (self._status(f"scored {n} clip(s)"), self.refresh()),
                detectors=detectors,
            )
        return None

    def cancel_job(self) -> None:
        if not self.engine.worker.cancel():
            self.statusBar().showMessage("No job is running", 4000)

    # -- View: playback -------------------------------------------------------------------------------------------
    def toggle_play(self) -> None:
        self.playback.toggle()

    def play_selection(self) -> None:
        start, end = self.view.selection or self.view.visible_range()
        self.playback.play(start, end)

    def stop_playback(self) -> None:
        self.playback.stop()

    def toggle_loop(self) -> None:
        self.playback.loop = not self.playback.loop
        self.statusBar().showMessage(f"Loop {'on' if self.playback.loop else 'off'}", 3000)

    # -- View: zoom, pan, clips, overlays -----------------------------------------------------------------------
    def zoom_in(self) -> None:
        self.view.zoom(2.0)

    def zoom_out(self) -> None:
        self.view.zoom(0.5)

    def pan_left(self) -> None:
        self.view.pan(-0.25)

    def pan_right(self) -> None:
        self.view.pan(0.25)

    def fit_view(self) -> None:
        self.view.fit()

    def next_clip(self, step: int = 1) -> None:
        view = self.table.view
        row = view.currentIndex().row() + step if view.currentIndex().isValid() else 0
        if 0 <= row < self.table.proxy.rowCount():
            view.setCurrentIndex(self.table.proxy.index(row, 0))

    def previous_clip(self) -> None:
        self.next_clip(-1)

    def toggle_map(self) -> None:
        self.controls.toggle("map")

    def toggle_lane(self) -> None:
        self.controls.toggle("lane")

    def toggle_truth(self) -> None:
        self.controls.toggle("truth")

    def next_detector(self) -> None:
        self.controls.next_detector()

    def toggle_side_by_side(self) -> None:
        self.controls.side_by_side.toggle()

    def focus_filter(self) -> None:
        self.table.filter_box.setFocus()
        self.table.filter_box.selectAll()

    def toggle_normalised_scores(self, on: bool | None = None) -> None:
        """The clip table shows each detector's normalised scores (or its raw ones), and remembers it."""
        on = not self.table.model.normalised if on is None else on
        self.table.model.set_normalised(on)
        self.actions_by_name["normalised_scores"].setChecked(on)
        self.settings.normalised_scores = on

    # -- Help -----------------------------------------------------------------------------------------------
    def shortcuts_dialog(self) -> None:
        ShortcutsDialog(self.actions_by_name.values(), self).open()

    def about_dialog(self) -> None:
        QMessageBox.about(self, "About Earmark", ABOUT)
