"""A real X server for the tests that the offscreen platform cannot stand in for (shortcuts the X11 key
bindings make ambiguous, a window's frame on a laptop-sized screen): Xvfb on a free display, and key presses
sent through the server's XTest extension (libXtst, by ctypes: no extra Python package), so they travel the
same way as a user's keys: X server, Qt's xcb platform, the shortcut map, the action."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class NoXServer(Exception):
    """Why no X server could be started (the caller skips, with this reason)."""


def _free_display() -> int:
    for number in range(90, 190):
        if not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return number
    raise NoXServer("no free X display number between :90 and :189")


@contextmanager
def xvfb(width: int = 1366, height: int = 768) -> Iterator[str]:
    """Start Xvfb with one screen of `width` x `height`; yields the DISPLAY value. Raises NoXServer."""
    binary = shutil.which("Xvfb")
    if binary is None:
        raise NoXServer("Xvfb is not installed (apt-get install xvfb)")
    for _attempt in range(3):  # another process may take the display number between the check and the start
        display = f":{_free_display()}"
        server = subprocess.Popen(
            [binary, display, "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        socket = Path(f"/tmp/.X11-unix/X{display[1:]}")
        deadline = time.monotonic() + 10
        while server.poll() is None and not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if server.poll() is None and socket.exists():
            break
        error = server.stderr.read().decode(errors="replace")[-300:] if server.poll() is not None else ""
        server.kill()
        server.wait()
    else:
        raise NoXServer(f"Xvfb did not start: {error.strip() or 'no socket after 10 s'}")
    try:
        yield display
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _library(name: str, package: str) -> ctypes.CDLL:
    path = ctypes.util.find_library(name)
    try:
        return ctypes.cdll.LoadLibrary(path or f"lib{name}.so.6")
    except OSError as exc:
        raise NoXServer(f"lib{name} cannot be loaded ({exc}); apt-get install {package}") from exc


def press_keys(display: str, *keysyms: str) -> None:
    """Press the keys in order and release them in reverse (a chord like Control_L, q), through XTest."""
    x11, xtst = _library("X11", "libx11-6"), _library("Xtst", "libxtst6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XStringToKeysym.restype = ctypes.c_ulong
    x11.XStringToKeysym.argtypes = [ctypes.c_char_p]
    x11.XKeysymToKeycode.restype = ctypes.c_ubyte
    x11.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    x11.XFlush.argtypes = x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    xtst.XTestFakeKeyEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
    connection = x11.XOpenDisplay(display.encode())
    if not connection:
        raise NoXServer(f"cannot connect to the X server {display}")
    try:
        codes = [x11.XKeysymToKeycode(connection, x11.XStringToKeysym(k.encode())) for k in keysyms]
        for code in codes:
            xtst.XTestFakeKeyEvent(connection, code, 1, 0)
        for code in reversed(codes):
            xtst.XTestFakeKeyEvent(connection, code, 0, 0)
        x11.XFlush(connection)
    finally:
        x11.XCloseDisplay(connection)


def x_environment(display: str, config_dir: Path) -> dict[str, str]:
    """The environment of a child that shows its window on `display` through Qt's xcb platform."""
    env = dict(os.environ)
    env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", EARMARK_CONFIG_DIR=str(config_dir), OMP_NUM_THREADS="1")
    env.pop("WAYLAND_DISPLAY", None)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")) if p
    )
    return env
