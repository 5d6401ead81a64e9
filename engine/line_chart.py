"""Line charts as PNG files, drawn with numpy and encoded with zlib: the curves `earmark debug freeze` writes
beside its CSV, without a plotting library (the engine may not import Qt, and matplotlib and Pillow are not
among its dependencies).

A chart is one or more panels stacked top to bottom, each with its own axes, title and legend; text is drawn
with a small built-in 5 x 7 pixel font (lower case, digits and the punctuation of numbers and setting names;
capitals are drawn as small letters).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.files import write_atomic

#: The colours of successive curves (those of matplotlib's and pyqtgraph's usual cycle).
COLOURS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
BLACK, GREY = (0, 0, 0), (225, 225, 225)
SCALE = 2  # font pixels per glyph pixel
ADVANCE = 6 * SCALE  # a glyph's width and the gap after it
LINE = 10 * SCALE

# Each glyph: 7 rows of 5 columns, "#" drawn, and two more below the line for the letters that reach there.
_GLYPHS = {
    "a": "..... ..... .###. ....# .#### #...# .####",
    "b": "#.... #.... #.##. ##..# #...# #...# ####.",
    "c": "..... ..... .###. #.... #.... #...# .###.",
    "d": "....# ....# .##.# #..## #...# #...# .####",
    "e": "..... ..... .###. #...# ##### #.... .###.",
    "f": "..##. .#..# .#... ###.. .#... .#... .#...",
    "g": "..... ..... .#### #...# #...# #...# .#### ....# .###.",
    "h": "#.... #.... #.##. ##..# #...# #...# #...#",
    "i": "..#.. ..... .##.. ..#.. ..#.. ..#.. .###.",
    "j": "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..",
    "k": "#.... #.... #..#. #.#.. ##... #.#.. #..#.",
    "l": ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "m": "..... ..... ##.#. #.#.# #.#.# #...# #...#",
    "n": "..... ..... #.##. ##..# #...# #...# #...#",
    "o": "..... ..... .###. #...# #...# #...# .###.",
    "p": "..... ..... ####. #...# #...# #...# ####. #.... #....",
    "q": "..... ..... .#### #...# #...# #...# .#### ....# ....#",
    "r": "..... ..... #.##. ##..# #.... #.... #....",
    "s": "..... ..... .###. #.... .###. ....# ####.",
    "t": ".#... .#... ###.. .#... .#... .#..# ..##.",
    "u": "..... ..... #...# #...# #...# #..## .##.#",
    "v": "..... ..... #...# #...# #...# .#.#. ..#..",
    "w": "..... ..... #...# #...# #.#.# #.#.# .#.#.",
    "x": "..... ..... #...# .#.#. ..#.. .#.#. #...#",
    "y": "..... ..... #...# #...# #...# #...# .#### ....# .###.",
    "z": "..... ..... ##### ...#. ..#.. .#... #####",
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    ".": "..... ..... ..... ..... ..... .##.. .##..",
    "-": "..... ..... ..... ##### ..... ..... .....",
    "_": "..... ..... ..... ..... ..... ..... #####",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....",
    "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
    ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
    "/": "..... ....# ...#. ..#.. .#... #.... .....",
    ",": "..... ..... ..... ..... .##.. ..#.. .#...",
    "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
    "=": "..... ..... ##### ..... ##### ..... .....",
    "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
    " ": "..... ..... ..... ..... ..... ..... .....",
}
_FONT = {
    char: np.array([[c == "#" for c in row] for row in (rows.split() + ["....."] * 2)[:9]], dtype=bool)
    for char, rows in _GLYPHS.items()
}


@dataclass
class Panel:
    """One plot: a title and named curves, each (x values, y values); non-finite values leave a gap."""

    title: str
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]] = field(default_factory=dict)
    x_label: str = "epoch"


def write_chart(path: str | Path, panels: Sequence[Panel], width: int = 800, height: int = 600) -> Path:
    """Draw `panels` one above the other into a `width` x `height` PNG at `path` (written whole or not at
    all); returns the path."""
    pixels = render(panels, width, height)
    write_atomic(Path(path), lambda handle: handle.write(png_bytes(pixels)))
    return Path(path)


def render(panels: Sequence[Panel], width: int = 800, height: int = 600) -> np.ndarray:
    """The chart as RGB pixels [height, width, 3] (uint8)."""
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    share = height // max(len(panels), 1)
    for index, panel in enumerate(panels):
        _draw_panel(image, panel, index * share, share)
    return image


def png_bytes(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of `pixels` [height, width, 3]: each row with filter 0, one zlib stream."""
    height, width, _ = pixels.shape
    rows = np.concatenate([np.zeros((height, 1), dtype=np.uint8), pixels.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


# -- drawing ---------------------------------------------------------------------------------------------------
def _draw_panel(image: np.ndarray, panel: Panel, top: int, height: int) -> None:
    width = image.shape[1]
    curves = {name: _finite_pairs(xs, ys) for name, (xs, ys) in panel.curves.items()}
    xs = np.concatenate([c[0] for c in curves.values()] or [np.zeros(0)])
    ys = np.concatenate([c[1] for c in curves.values()] or [np.zeros(0)])
    x_ticks, (x0, x1), x_step = _ticks(xs, integers=True, inside=True)
    y_ticks, (y0, y1), y_step = _ticks(ys)
    y0 -= 0.03 * (y1 - y0)  # a curve along the lowest tick (a frozen branch's zero) stays clear of the axis
    labels = _labels(y_ticks, y_step)
    left = 16 + ADVANCE * max(len(t) for t in labels)
    text(image, panel.title, (width - ADVANCE * len(panel.title)) // 2, top + 8)
    legend_bottom = _legend(image, list(curves), left, width - 20, top + 12 + LINE)
    box = (left, legend_bottom + 8, width - 20, top + height - 2 * LINE - 10)  # x0, y0, x1, y1 of the plot area

    def at(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        px = box[0] + (x - x0) / (x1 - x0) * (box[2] - box[0])
        py = box[3] - (y - y0) / (y1 - y0) * (box[3] - box[1])
        return px, py

    for tick, label in zip(y_ticks, labels, strict=True):
        _, py = at(np.array([x0]), np.array([tick]))
        row = round(float(py[0]))
        image[row, box[0] : box[2]] = GREY
        image[row, box[0] - 5 : box[0]] = BLACK
        text(image, label, box[0] - 8 - ADVANCE * len(label), row - 3 * SCALE)
    for tick, label in zip(x_ticks, _labels(x_ticks, x_step), strict=True):
        px, _ = at(np.array([tick]), np.array([y0]))
        column = round(float(px[0]))
        image[box[1] : box[3], column] = np.minimum(image[box[1] : box[3], column], GREY)
        image[box[3] : box[3] + 5, column] = BLACK
        text(image, label, column - ADVANCE * len(label) // 2, box[3] + 8)
    text(image, panel.x_label, (box[0] + box[2] - ADVANCE * len(panel.x_label)) // 2, box[3] + 10 + LINE)
    image[box[1] : box[3] + 1, box[0]] = BLACK
    image[box[3], box[0] : box[2] + 1] = BLACK
    for index, (cx, cy) in enumerate(curves.values()):
        colour = COLOURS[index % len(COLOURS)]
        px, py = at(cx, cy)
        if len(px) == 1:
            _dot(image, px[0], py[0], colour)
        for a in range(len(px) - 1):
            _segment(image, px[a], py[a], px[a + 1], py[a + 1], colour)
    if not curves:
        text(image, "no figures", (box[0] + box[2]) // 2 - 5 * ADVANCE, (box[1] + box[3]) // 2)


def _legend(image: np.ndarray, names: list[str], left: int, right: int, top: int) -> int:
    """Each curve's colour and name in rows between `left` and `right` from `top` (above the plot, where it
    hides no curve); returns the bottom of the last row."""
    x, y = left, top
    for index, name in enumerate(names):
        wide = 28 + ADVANCE * len(name)
        if x > left and x + wide > right:
            x, y = left, y + LINE
        row = y + 3 * SCALE
        image[row - 1 : row + 2, x : x + 22] = COLOURS[index % len(COLOURS)]
        text(image, name, x + 28, y)
        x += wide + 3 * ADVANCE
    return y + LINE if names else top


def text(image: np.ndarray, words: str, x: int, y: int, colour: tuple[int, int, int] = BLACK) -> None:
    """Draw `words` with its top-left corner at (x, y); what falls outside the image is cut off."""
    height, width, _ = image.shape
    for index, char in enumerate(words):
        glyph = _FONT.get(char.lower(), _FONT["?"])
        big = np.kron(glyph, np.ones((SCALE, SCALE), dtype=bool))
        rows, columns = np.nonzero(big)
        rows, columns = rows + y, columns + x + index * ADVANCE
        inside = (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)
        image[rows[inside], columns[inside]] = colour


def _segment(image: np.ndarray, xa: float, ya: float, xb: float, yb: float, colour: tuple[int, int, int]) -> None:
    steps = int(max(abs(xb - xa), abs(yb - ya))) + 2
    for x, y in zip(np.linspace(xa, xb, steps), np.linspace(ya, yb, steps), strict=True):
        _dot(image, x, y, colour)


def _dot(image: np.ndarray, x: float, y: float, colour: tuple[int, int, int]) -> None:
    """A 2 x 2 pixel point: lines two pixels thick."""
    row, column = round(float(y)), round(float(x))
    image[max(row - 1, 0) : row + 1, max(column - 1, 0) : column + 1] = colour


# -- axes --------------------------------------------------------------------------------------------------------
def _finite_pairs(xs: Sequence[float], ys: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _ticks(
    values: np.ndarray,
    integers: bool = False,
    count: int = 5,
    inside: bool = False,
) -> tuple[list[float], tuple[float, float], float]:
    """Round tick values for `values`, the axis range and the step between ticks. The range is the outer ticks,
    or with `inside` the values' own range (epochs: the axis starts at the first and ends at the last)."""
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    if high - low < 1e-12 * max(abs(low), abs(high), 1e-300):  # one value: a range around it
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / count
    step = min(
        m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10) if m * 10 ** math.floor(math.log10(raw)) >= raw
    )
    if integers:
        step = max(step, 1.0)
    start = math.ceil(low / step) if inside else math.floor(low / step)
    stop = math.floor(high / step) if inside else math.ceil(high / step)
    ticks = [i * step for i in range(start, stop + 1)]
    if inside and integers and len(values) and (not ticks or ticks[0] - low >= step / 2):
        ticks.insert(0, low)  # the first epoch is labelled too
    return ticks, ((low, high) if inside else (ticks[0], ticks[-1])), step


def _labels(ticks: Sequence[float], step: float) -> list[str]:
    """Tick labels with as many decimals as the step needs, so that neighbours differ (0.9985, 0.999, ...):
    fixed notation for everyday sizes, scientific for tiny and huge ones."""
    largest = max(abs(t) for t in ticks) if ticks else 0.0
    if largest and (largest < 1e-3 or largest >= 1e6):
        digits = max(1, math.floor(math.log10(largest)) - math.floor(math.log10(step)) + 1)
        return [f"{t:.{digits - 1}e}".replace("e-0", "e-").replace("e+0", "e") if t else "0" for t in ticks]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return [f"{t:.{decimals}f}" if abs(t) > step * 1e-6 else "0" for t in ticks]
