"""The window's menus and their keyboard shortcuts, in one table so Help > Keyboard shortcuts lists them."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

Key = QKeySequence.StandardKey

# (menu, name, text, shortcut(s), method of the window)
MENUS: list[tuple[str, str, str, tuple, str]] = [
    ("&File", "new", "&New project...", (Key.New,), "new_project_dialog"),
    ("&File", "open", "&Open project...", (Key.Open,), "open_project_dialog"),
    ("&File", "recent", "Open &recent", (), ""),
    ("&File", "import_dataset", "&Import data set...", ("Ctrl+Shift+I",), "import_dataset_dialog"),
    ("&File", "import_files", "Import &files...", ("Ctrl+I",), "import_files_dialog"),
    ("&File", "export_dcase", "&Export DCASE results...", ("Ctrl+E",), "export_dcase_dialog"),
    ("&File", "settings", "&Settings...", ("Ctrl+,",), "settings_dialog"),
    ("&File", "quit", "&Quit", (Key.Quit, "Ctrl+Q"), "close"),
    ("&Train", "fit_all", "Fit &all detectors", ("Ctrl+Shift+F",), "fit_all"),
    ("&Train", "fit_one", "&Fit detector...", ("Ctrl+F",), "fit_detector_dialog"),
    ("&Train", "enrol", "&Enrol target clips...", (), "enrol_selected"),
    ("&Train", "score_all", "&Score all test clips", ("F5",), "score_all"),
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
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        handler: Callable = getattr(window, method)
        action.triggered.connect(lambda _=False, h=handler: h())
        if name in ("quit", "cancel", "fit_all", "play", "zoom_in", "toggle_map", "filter"):
            menu.addSeparator()
        menu.addAction(action)
        window.addAction(action)  # shortcuts work wherever the focus is in the window
        actions[name] = action
    return actions, recent
