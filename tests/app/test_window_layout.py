"""The window on a small screen and from one session to the next: it can be narrower than a laptop's screen,
its docks share the sides as tabs, and the size and dock layout a user left it in come back at the next
start, fitted to the screen; a layout saved by an older version, or damaged, is ignored."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QRect
from PySide6.QtWidgets import QTabBar

from app import window_layout
from app.main_window import MainWindow
from app.settings import AppSettings
from app.window_layout import LAYOUT_VERSION, available_area


def new_window(qtbot) -> MainWindow:
    window = MainWindow(use_audio=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def front(window: MainWindow) -> set[str]:
    return {name for name, dock in window.docks.items() if not dock.visibleRegion().isEmpty()}


def test_a_laptop_sized_window_with_the_docks_as_tabs(qtbot):
    window = new_window(qtbot)
    try:
        assert window.minimumSizeHint().width() <= 1280
        assert window.tabifiedDockWidgets(window.docks["regions"]) == [window.docks["proposals"]]
        assert window.tabifiedDockWidgets(window.docks["jobs"]) == [window.docks["log"]]
        assert {"tree", "regions", "jobs"} <= front(window)
    finally:
        window.shutdown()


def drawn_tab_bars(window: MainWindow) -> list[tuple[str, ...]]:
    return sorted(
        tuple(bar.tabText(i) for i in range(bar.count()))
        for bar in window.findChildren(QTabBar)
        if bar.parent() is window and bar.isVisible()
    )


def test_each_group_of_tabbed_docks_has_one_tab_bar_drawn(qtbot):
    """Qt leaves an old copy of a dock group's tab bar behind (it was drawn over the Jobs dock's title at
    1366 x 768): one bar per group, in a new window and in one whose layout came back from the last session."""
    window = new_window(qtbot)
    window.resize(1366, 768)
    assert drawn_tab_bars(window) == [("Jobs", "Log"), ("Regions", "Proposals and review")]
    assert window.close()
    again = new_window(qtbot)
    try:
        again.resize(1200, 700)
        assert drawn_tab_bars(again) == [("Jobs", "Log"), ("Regions", "Proposals and review")]
    finally:
        again.shutdown()


def test_the_size_and_the_dock_layout_come_back_at_the_next_start(qtbot):
    window = new_window(qtbot)
    window.resize(760, 520)
    window.docks["log"].raise_()  # the log in front of the jobs
    window.docks["proposals"].raise_()
    window.docks["tree"].hide()  # closed by its title bar's button
    qtbot.waitUntil(lambda: "log" in front(window))
    assert window.close()  # saved as the window closes
    again = new_window(qtbot)
    try:
        assert (again.width(), again.height()) == (760, 520)
        assert {"log", "proposals"} <= front(again) and not {"jobs", "regions"} & front(again)
        assert not again.docks["tree"].isVisible()
    finally:
        again.shutdown()


def test_the_evaluation_dock_left_open_comes_back_at_the_next_start_and_one_closed_does_not(qtbot):
    """The evaluation dock is made on first use; one the user left open is there again at the next start, in
    front, where the saved layout puts it (and its figures are read once a project opens)."""
    window = new_window(qtbot)
    window.show_evaluation()
    qtbot.waitUntil(lambda: "evaluation" in front(window))
    assert window.close()
    again = new_window(qtbot)
    try:
        assert "evaluation" in again.docks and again.evaluation_panel is not None
        qtbot.waitUntil(lambda: "evaluation" in front(again))
        again.docks["evaluation"].close()  # closed by its title bar's button
        assert again.close()
    finally:
        again.shutdown()
    third = new_window(qtbot)
    try:
        assert "evaluation" not in third.docks
    finally:
        third.shutdown()


def test_a_layout_of_another_version_or_damaged_is_ignored(qtbot):
    settings = AppSettings()
    settings.set_window_layout(LAYOUT_VERSION, QByteArray(b"not a geometry"), QByteArray(b"\x00\x01 damaged"))
    window = new_window(qtbot)
    try:
        assert {"tree", "regions", "jobs"} <= front(window)  # the default layout
    finally:
        window.shutdown()
    window = new_window(qtbot)
    window.docks["tree"].hide()
    window.close()
    stored = AppSettings()
    geometry, state = stored.window_layout(LAYOUT_VERSION)
    stored.set_window_layout(LAYOUT_VERSION - 1, geometry, state)  # as an older version saved it
    window = new_window(qtbot)
    try:
        assert window.docks["tree"].isVisible()
    finally:
        window.shutdown()


def test_a_saved_size_bigger_than_the_screen_is_fitted_to_it(qtbot, monkeypatch):
    # The offscreen screen stands for a real one here (elsewhere it is a canvas that keeps the window's size;
    # test_x11_window checks the same on an X server).
    monkeypatch.setattr(window_layout, "VIRTUAL_PLATFORMS", ())
    window = new_window(qtbot)
    area = available_area(window)
    window.setGeometry(QRect(area.x() + 50, area.y() + 40, area.width() + 900, area.height() + 700))
    window.close()
    again = new_window(qtbot)
    try:
        frame = again.frameGeometry()
        assert area.contains(frame), (frame, area)
    finally:
        again.shutdown()
