"""The supervised classifiers in the window (a mixin of `MainWindow`): Train > Train leak classifier...,
Train sound classifier..., Classifier results... and Training curves..."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QDialog

from app import jobs
from app.dialogs.classifier_results import ClassifierResultsDialog
from app.dialogs.train import TrainDialog
from app.engine_thread import JobHandle


class ClassifierActions:
    def train_leak_dialog(self) -> None:
        if self._need_project():
            dialog = TrainDialog("leak", self)
            if dialog.exec() == QDialog.DialogCode.Accepted:
                self.train_leak(*dialog.chosen())

    def train_leak(self, modes: Sequence[str], settings: dict | None = None, resume: bool = False) -> JobHandle | None:
        """Queue the leak training (from the labels as they are now) and the scoring after it."""
        if not self._need_project():
            return None
        title = f"train leak classifier ({', '.join(modes)})" + (", resumed" if resume else "")
        return self.submit(
            "train",
            title,
            jobs.train_leak(list(modes), dict(settings or {}), resume),
            self._classifier_trained,
            modes=list(modes),
            settings=settings or {},
            resume=resume,
        )

    def train_sound_dialog(self) -> None:
        if self._need_project():
            dialog = TrainDialog("sound", self)
            if dialog.exec() == QDialog.DialogCode.Accepted:
                _, settings, resume = dialog.chosen()
                self.submit(
                    "train",
                    "train sound classifier",
                    jobs.train_sound(settings, resume),
                    self._classifier_trained,
                    settings=settings,
                    resume=resume,
                )

    def _classifier_trained(self, lines: list[str]) -> None:
        self._status(lines[0] if lines else "trained")  # the status bar, and the log
        for line in lines[1:]:
            self._log(line)
        self.refresh()

    def classifier_results_dialog(self) -> ClassifierResultsDialog | None:
        if not self._need_project():
            return None
        from engine.classifiers.reports import trained_runs

        dialog = ClassifierResultsDialog(trained_runs(self.project), self)
        dialog.setObjectName("classifier_results")
        dialog.open()
        return dialog

    def training_curves_dialog(self) -> QDialog | None:
        """Train > Training curves...: loss and gradient-norm curves of every trained model of the project."""
        if not self._need_project():
            return None
        from app.training_curves import TrainingCurvesDialog
        from engine.histories import training_histories

        dialog = TrainingCurvesDialog(training_histories(self.project), self)
        dialog.setObjectName("training_curves")
        dialog.open()
        return dialog
