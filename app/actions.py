"""The window's menus and their keyboard shortcuts, in one table so Help > Keyboard shortcuts lists them."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QAbstractSpinBox, QLineEdit, QMainWindow, QMenu, QSlider, QWidget

Key = QKeySequence.StandardKey

# (menu, name, text, shortcut(s), method of the window)
MENUS: list[tuple[str, str, str, tuple, str]] = [
    ("&File", "new", "&New project...", (Key.New,), "new_project_dialog"),
    ("&File", "open", "&Open project...", (Key.Open,), "open_project_dialog"),
    ("&File", "recent", "Open &recent", (), ""),
    ("&File", "import_dataset", "&Import data set...", ("Ctrl+Shift+I",), "import_dataset_dialog"),
    ("&File", "import_files", "Import &files...", ("Ctrl+I",), "import_files_dialog"),
    ("&File", "locate_missing", "Locate &missing recordings...", (), "locate_missing_dialog"),
    ("&File", "export_dcase", "&Export DCASE results...", ("Ctrl+E",), "export_dcase_dialog"),
    ("&File", "export_report", "Export &report...", (), "export_report_dialog"),
    ("&File", "export_figure", "Export fi&gure...", (), "export_figure_dialog"),
    ("&File", "import_labels", "Import &labels...", ("Ctrl+Shift+O",), "import_labels_dialog"),
    ("&File", "export_labels", "Export labels...", ("Ctrl+Shift+E",), "export_labels_dialog"),
    ("&File", "export_selected", "Export selected regions...", (), "export_selected_regions"),
    ("&File", "export_all_labels", "Export all clips' labels...", (), "export_project_labels_dialog"),
    ("&File", "settings", "&Settings...", ("Ctrl+,",), "settings_dialog"),
    # Ctrl+Q once: on X11 the standard Quit key is Ctrl+Q too, and a key given twice is ambiguous (dead).
    ("&File", "quit", "&Quit", ("Ctrl+Q",), "close"),
    ("&Train", "fit_all", "Fit &all detectors", ("Ctrl+Shift+F",), "fit_all"),
    ("&Train", "fit_one", "&Fit detector...", ("Ctrl+F",), "fit_detector_dialog"),
    ("&Train", "enrol", "&Enrol target clips...", (), "enrol_selected"),
    ("&Train", "score_all", "&Score all test clips", ("F5",), "score_all"),
    ("&Train", "train_leak", "Train &leak classifier...", ("Ctrl+Shift+T",), "train_leak_dialog"),
    ("&Train", "train_sound", "Train s&ound classifier...", (), "train_sound_dialog"),
    ("&Train", "classifier_results", "Classifier &results...", (), "classifier_results_dialog"),
    ("&Train", "training_curves", "Training c&urves...", (), "training_curves_dialog"),
    ("&Train", "cancel", "&Cancel job", ("Ctrl+.",), "cancel_job"),
    ("&View", "play", "Play / pause", ("Space",), "toggle_play"),
    ("&View", "play_selection", "Play selection", ("Shift+Space",), "play_selection"),
    ("&View", "stop", "Stop", ("S",), "stop_playback"),
    ("&View", "loop", "Loop", ("L",), "toggle_loop"),
    ("&View", "zoom_in", "Zoom in", ("+", "="), "zoom_in"),
    ("&View", "zoom_out", "Zoom out", ("-",), "zoom_out"),
    ("&View", "pan_left", "Pan left", ("Left",), "pan_left"),
    ("&View", "pan_right", "Pan right", ("Right",), "pan_right"),
    ("&View", "fit_view", "Show whole clip", ("Home", "0"), "fit_view"),
    ("&View", "next_clip", "Next clip", ("Down", "J"), "next_clip"),
    ("&View", "previous_clip", "Previous clip", ("Up", "K"), "previous_clip"),
    ("&View", "toggle_map", "Anomaly map", ("M",), "toggle_map"),
    ("&View", "toggle_lane", "Frame-score lane", ("F",), "toggle_lane"),
    ("&View", "toggle_truth", "Ground-truth regions", ("G",), "toggle_truth"),
    ("&View", "next_detector", "Next detector", ("D",), "next_detector"),
    ("&View", "side_by_side", "Side by side", ("V",), "toggle_side_by_side"),
    ("&View", "filter", "Filter clips", ("/", "Ctrl+L"), "focus_filter"),
    ("&View", "normalised_scores", "Normalised scores", (), "toggle_normalised_scores"),
    ("&View", "evaluation", "&Evaluation", ("Ctrl+Shift+V",), "show_evaluation"),
    ("&Label", "label_mode", "Label mode (drag draws a region)", ("E",), "toggle_label_mode"),
    ("&Label", "mark_start", "Mark start at playhead", ("[",), "mark_start"),
    ("&Label", "mark_end", "Mark end at playhead", ("]",), "mark_end"),
    ("&Label", "commit_region", "Add region from marks", ("Return", "Enter"), "commit_region"),
    ("&Label", "clear_marks", "Clear marks and selection", ("Esc",), "clear_marks"),
    ("&Label", "step_back", "Playhead back", (",",), "step_back"),
    ("&Label", "step_forward", "Playhead forward", (".",), "step_forward"),
    ("&Label", "region_start", "Region start to playhead", ("Ctrl+[",), "region_start_to_playhead"),
    ("&Label", "region_end", "Region end to playhead", ("Ctrl+]",), "region_end_to_playhead"),
    ("&Label", "nudge_left", "Move region left", ("Ctrl+Left",), "nudge_left"),
    ("&Label", "nudge_right", "Move region right", ("Ctrl+Right",), "nudge_right"),
    ("&Label", "delete_region", "Delete region", ("Del", "Backspace"), "delete_region"),
    *[("&Label", f"class_{n}", f"Label as class {n}", (str(n),), f"class_{n}") for n in range(1, 10)],
    ("&Label", "undo", "&Undo", ("Ctrl+Z",), "undo"),
    ("&Label", "redo", "&Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "redo"),
    ("&Label", "propose_clip", "Propose regions on this clip", ("P",), "propose_clip"),
    ("&Label", "accept_proposal", "Accept proposal", ("A",), "accept_proposal"),
    ("&Label", "reject_proposal", "Reject proposal", ("R",), "reject_proposal"),
    ("&Label", "accept_all", "Accept all proposals on this clip", ("Shift+A",), "accept_all_proposals"),
    ("&Label", "next_review", "Next in review queue", ("N",), "next_review"),
    ("&Label", "previous_review", "Previous in review queue", ("Shift+N",), "previous_review"),
    ("&Label", "label_classes", "Label &classes...", (), "label_classes_dialog"),
    ("&Help", "shortcuts", "&Keyboard shortcuts", ("F1", "?"), "shortcuts_dialog"),
    ("&Help", "about", "&About Earmark", (), "about_dialog"),
]


def build_menus(window: QMainWindow) -> tuple[dict[str, QAction], QMenu]:
    """Create every menu entry on `window`; returns the actions by name and the Open recent menu."""
    actions: dict[str, QAction] = {}
    menus: dict[str, QMenu] = {}
    recent = QMenu("Open &recent", window)
    for menu_title, name, text, shortcuts, method in MENUS:
        menu = menus.get(menu_title) or menus.setdefault(menu_title, window.menuBar().addMenu(menu_title))
        if name == "recent":
            menu.addMenu(recent)
            continue
        action = QAction(text, window)
        action.setObjectName(name)
        # A standard key may stand for the same keys as a written one on some platforms: each sequence once.
        action.setShortcuts(list(dict.fromkeys(QKeySequence(s) for s in shortcuts)))
        handler: Callable = getattr(window, method)
        action.triggered.connect(lambda _=False, h=handler: h())
        if name in (
            "quit",
            "cancel",
            "fit_all",
            "play",
            "zoom_in",
            "toggle_map",
            "filter",
            "import_labels",
            "mark_start",
            "region_start",
            "class_1",
            "undo",
            "propose_clip",
            "label_classes",
            "train_leak",
        ):
            menu.addSeparator()
        menu.addAction(action)
        window.addAction(action)  # shortcuts work wherever the focus is in the window
        actions[name] = action
    actions["label_mode"].setCheckable(True)
    actions["normalised_scores"].setCheckable(True)
    return actions, recent


K = Qt.Key
ENTER = {K.Key_Return, K.Key_Enter}
ARROWS = {K.Key_Up, K.Key_Down, K.Key_Left, K.Key_Right, K.Key_PageUp, K.Key_PageDown}


class TypingKeys(QObject):
    """Keys a focused input needs go to it, not to the window's single-key shortcuts: Enter applies a typed
    number (it would otherwise add a region), arrows move a slider or the region table's rows (instead of
    changing clip or panning). Installed on the application."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.ShortcutOverride or not isinstance(watched, QWidget):
            return False
        if event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
            return False
        key = event.key()
        spin = isinstance(watched, QAbstractSpinBox) or isinstance(watched.parent(), QAbstractSpinBox)
        wanted = (
            (spin and (key in ENTER or key in ARROWS))
            or (isinstance(watched, QLineEdit) and key in ENTER)
            or (isinstance(watched, QSlider) and (key in ARROWS or key in (K.Key_Home, K.Key_End)))
            or (isinstance(watched, QAbstractItemView) and key in (K.Key_Up, K.Key_Down, K.Key_PageUp, K.Key_PageDown))
        )
        if wanted:
            event.accept()  # the widget gets the key press; the shortcut does not fire
        return wanted
