"""The window on a real X server (Xvfb), where the offscreen platform cannot stand in: on a 1366 x 768 laptop
screen the window and every dock are on the screen, three detectors side by side fit in the spectrogram, and
Ctrl+Q, pressed as a user presses it (an X key event), quits. (On X11 the standard Quit key is Ctrl+Q too:
given twice, the shortcut was ambiguous and did nothing.)

Skipped only when no X server can be started here, with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.app.xserver import NoXServer, press_keys, x_environment, xvfb

CHILD = Path(__file__).with_name("x11_window.py")
SCREEN = (1366, 768)


def _inside(rect: list[int], screen: list[int]) -> bool:
    x, y, w, h = rect
    sx, sy, sw, sh = screen
    return w > 0 and h > 0 and x >= sx and y >= sy and x + w <= sx + sw and y + h <= sy + sh


def _read_layout(child: subprocess.Popen, lines: list[str]) -> dict | None:
    for line in child.stdout:
        lines.append(line)
        if line.startswith("LAYOUT "):
            return json.loads(line[len("LAYOUT ") :])
    return None


def test_on_a_laptop_screen_every_dock_is_reachable_and_ctrl_q_quits(demo_copy, tmp_path):
    _run_window(demo_copy, tmp_path, [], _check_docks)


def test_on_a_laptop_screen_three_detectors_side_by_side_fit_in_the_spectrogram(demo_copy, tmp_path):
    _run_window(demo_copy, tmp_path, ["--side-by-side"], _check_columns)


def _check_docks(layout: dict) -> None:
    screen = layout["available"]
    assert screen[2:] == list(SCREEN)
    assert _inside(layout["frame"], screen), layout["frame"]
    assert layout["minimum"][0] <= 1280, f"the window cannot be narrower than {layout['minimum'][0]} px"
    for name, dock in layout["docks"].items():
        assert not dock["floating"], name
        # In front: the dock itself is on the screen; behind another: its tab is, one click away.
        assert (dock["visible"] and _inside(dock["rect"], screen)) or (
            dock["tab"] is not None and _inside(dock["tab"], screen)
        ), (name, dock)
    spectrogram = layout["spectrogram"]
    assert _inside(spectrogram, screen)
    assert spectrogram[3] >= 0.4 * SCREEN[1], f"the spectrogram is {spectrogram[3]} px tall"
    assert "16000 Hz" in layout["caption"] and "mono" in layout["caption"]


def _check_columns(layout: dict) -> None:
    spectrogram, columns = layout["spectrogram"], layout["columns"]
    assert [title.split("</b>")[0].split("<b>")[-1] for *_, title in columns] == ["patch_memory", "dcase_ae", "knn"]
    for *rect, _title in columns:
        assert _inside(rect, spectrogram), (rect, spectrogram)
        assert rect[2] >= 0.25 * spectrogram[2], f"a column is {rect[2]} px wide of {spectrogram[2]}"
    for left, right in zip(columns, columns[1:], strict=False):
        assert left[0] + left[2] <= right[0] + 1, "columns overlap"


def _run_window(project, tmp_path, options: list[str], check) -> None:
    try:
        server = xvfb(*SCREEN)
        display = server.__enter__()
    except NoXServer as exc:
        pytest.skip(f"no X server: {exc}")
    child = None
    try:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(project), *options],
            env=x_environment(display, tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        found: dict = {}
        reader = threading.Thread(target=lambda: found.setdefault("layout", _read_layout(child, lines)), daemon=True)
        reader.start()
        reader.join(timeout=90)
        layout = found.get("layout")
        assert layout is not None, "the window did not report its layout:\n" + "".join(lines)[-3000:]

        check(layout)

        press_keys(display, "Control_L", "q")
        try:
            status = child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("Ctrl+Q did not quit the window:\n" + "".join(lines)[-3000:])
        reader.join(timeout=5)
        output = "".join(lines) + (child.stdout.read() if not reader.is_alive() else "")
        assert status == 0, output[-3000:]
        assert "Ambiguous shortcut" not in output
        assert layout["twice"] == {}, f"keys given to more than one action: {layout['twice']}"
        settings = tmp_path / "gui.ini"
        assert "geometry" in settings.read_text(), "the layout was not saved at close"
    except NoXServer as exc:
        pytest.skip(f"no X server: {exc}")
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        server.__exit__(None, None, None)
