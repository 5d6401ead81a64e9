"""Where the window's docks sit, and the window's size and dock layout kept from one session to the next.

The default layout is made for a laptop (1366 x 768): the data set on the left with the clip properties below
it; the region table and the proposals as tabs of one dock on the right; the jobs and the log as tabs of
one low dock at the bottom, so the spectrogram keeps most of the height. A layout saved at close is restored
at start when it was saved by this layout version (an older or damaged one is ignored), and a window bigger
than the screen it opens on is made to fit it.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDockWidget, QMainWindow, QTabBar

from app.settings import AppSettings

#: Saved layouts of another version are ignored; raise it when the docks or their places change.
LAYOUT_VERSION = 3
#: Docks shown as tabs of one dock, first the one in front. A dock added later joins a group by name.
TAB_GROUPS: dict[Qt.DockWidgetArea, tuple[str, ...]] = {
    Qt.DockWidgetArea.LeftDockWidgetArea: ("tree",),
    Qt.DockWidgetArea.RightDockWidgetArea: ("regions", "proposals"),
    Qt.DockWidgetArea.BottomDockWidgetArea: ("jobs", "log"),
}
#: Docks stacked below another one of their area (not tabbed: both are used together), as (above, below).
STACKED = (("tree", "clip_properties"),)
#: Default sizes in pixels: the left and right docks' widths, the bottom dock's height.
WIDTHS = {"tree": 200, "regions": 340}
BOTTOM_HEIGHT = 100
DEFAULT_SIZE = (1400, 900)
#: Platforms whose screen is no real one (tests, rendering to a file): the window keeps its own size there.
VIRTUAL_PLATFORMS = ("offscreen", "minimal")


def arrange_docks(window: QMainWindow, docks: dict[str, QDockWidget]) -> None:
    """Put the docks in their default places: each tab group in its area, its first dock in front."""
    for area, names in TAB_GROUPS.items():
        present = [docks[n] for n in names if n in docks]
        for dock in present:
            dock.setFloating(False)
            window.addDockWidget(area, dock)
        for dock in present[1:]:
            window.tabifyDockWidget(present[0], dock)
        if present:
            present[0].raise_()
    for above, below in STACKED:
        if above in docks and below in docks:
            docks[below].setFloating(False)
            window.splitDockWidget(docks[above], docks[below], Qt.Orientation.Vertical)
    size_docks(window, docks)
    hide_stale_tab_bars(window)
    for dock in docks.values():  # a user's drag can leave one behind too: look again once Qt has laid out
        dock.dockLocationChanged.connect(lambda *_: QTimer.singleShot(0, lambda: hide_stale_tab_bars(window)))


def hide_stale_tab_bars(window: QMainWindow) -> None:
    """Qt (6.11) leaves a tab bar behind when a second group of docks is tabbed, or a layout is restored: an
    old copy of a live tab bar stays drawn where the group once was (over the Jobs dock's title at 1366 x
    768). The live one is the newest of those with the same tabs; older copies are hidden."""
    newest: dict[tuple[str, ...], QTabBar] = {}
    for bar in window.findChildren(QTabBar):
        if bar.parent() is not window:
            continue
        tabs = tuple(bar.tabText(i) for i in range(bar.count()))
        if tabs in newest:
            newest[tabs].hide()
        newest[tabs] = bar


def size_docks(window: QMainWindow, docks: dict[str, QDockWidget]) -> None:
    """The default widths and height (again once the window is shown: before, Qt spreads the window's
    width over the docks as it likes)."""
    sized = [docks[n] for n in WIDTHS if n in docks]
    window.resizeDocks(sized, [WIDTHS[d.objectName()] for d in sized], Qt.Orientation.Horizontal)
    bottom = [docks[n] for n in TAB_GROUPS[Qt.DockWidgetArea.BottomDockWidgetArea] if n in docks]
    window.resizeDocks(bottom[:1], [BOTTOM_HEIGHT], Qt.Orientation.Vertical)


def restore_layout(window: QMainWindow, settings: AppSettings) -> bool:
    """The size, place and dock layout saved at the last close; False (and the default layout kept) when
    there is none of this version or it cannot be read."""
    geometry, state = settings.window_layout(LAYOUT_VERSION)
    restored = False
    if geometry is not None and window.restoreGeometry(geometry):
        restored = True
    if state is not None and not window.restoreState(state, LAYOUT_VERSION):
        restored = False
    hide_stale_tab_bars(window)
    fit_to_screen(window)
    return restored


def save_layout(window: QMainWindow, settings: AppSettings) -> None:
    settings.set_window_layout(LAYOUT_VERSION, window.saveGeometry(), window.saveState(LAYOUT_VERSION))


def available_area(window: QMainWindow) -> QRect:
    screen = window.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry()


def fit_to_screen(window: QMainWindow) -> None:
    """Shrink and move the window so that its frame lies on the available part of its screen."""
    if window.isMaximized() or window.isFullScreen() or QGuiApplication.platformName() in VIRTUAL_PLATFORMS:
        return
    area = available_area(window)
    frame = window.frameGeometry()
    extra_w, extra_h = frame.width() - window.width(), frame.height() - window.height()
    width = min(window.width(), area.width() - extra_w)
    height = min(window.height(), area.height() - extra_h)
    if (width, height) != (window.width(), window.height()):
        window.resize(max(width, window.minimumWidth()), max(height, window.minimumHeight()))
    frame = window.frameGeometry()
    x = min(max(frame.x(), area.x()), area.x() + area.width() - frame.width())
    y = min(max(frame.y(), area.y()), area.y() + area.height() - frame.height())
    if (x, y) != (frame.x(), frame.y()):
        window.move(max(x, area.x()), max(y, area.y()))
