"""What is drawn over a clip's spectrogram, as plain data: each detector's stored `Detection` (score,
thresholds, lanes and map), the ground-truth and labelled regions; and the colour maps. The main window
fills a `ClipDisplay` from the project."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg

from engine.audio.display import hz_to_mel
from engine.data.detection import Detection
from engine.store.labels import Region

OVERLAYS = ("map", "lane", "truth", "labels", "playhead")
OVERLAY_TITLES = {
    "map": "Anomaly map",
    "lane": "Frame-score lane",
    "truth": "Ground-truth regions",
    "labels": "Labelled regions",
    "playhead": "Playhead",
}
DEFAULT_OPACITY = {"map": 0.6, "lane": 1.0, "truth": 0.2, "labels": 0.35, "playhead": 1.0}

SPECTROGRAM_MAPS = ("grey_r", "grey", "viridis", "magma", "cividis")
MAP_COLOUR_MAPS = ("inferno", "turbo", "plasma")
TRUTH_COLOUR = "#ff3b30"
THRESHOLD_COLOUR = "#d32f2f"
#: The percentile of a clip's map cells that tops its colour scale when the clip is above threshold (the very
#: top cells are often single outliers).
MAP_TOP_PERCENTILE = 99.5
#: The colour scale of a map reaches at least this many times the frame threshold.
MAP_HEADROOM = 1.5


@dataclass
class ClipDisplay:
    clip_id: str
    path: str
    name: str
    duration_s: float
    sample_rate: int
    truth: list[tuple[float, float]] = field(default_factory=list)
    #: The clip's manual regions and proposals, and each label's colour.
    regions: list[Region] = field(default_factory=list)
    colours: dict[str, str] = field(default_factory=dict)
    #: The detector of each model whose proposals are among the regions (by model id).
    sources: dict[int, str] = field(default_factory=dict)
    #: Each detector's newest stored detection of the clip (score, thresholds, lanes, map, model id) ...
    lanes: dict[str, Detection] = field(default_factory=dict)
    #: ... and the same on the normalised scale (side by side shows these); only for models that have one.
    normalised: dict[str, Detection] = field(default_factory=dict)
    caption: str = ""
    #: The channel the clip uses (0-based), or None for the mono mix: the spectrogram shows the same audio.
    channel: int | None = None
    #: What could not be read for the clip (a damaged lanes file), one line each: the window says so.
    problems: list[str] = field(default_factory=list)


def spectrogram_colour_map(name: str) -> pg.ColorMap:
    if name.startswith("grey"):
        base = pg.colormap.get("CET-L1")
        positions, colours = base.getStops(mode="byte")
        return pg.ColorMap(positions, colours[::-1]) if name.endswith("_r") else pg.ColorMap(positions, colours)
    return pg.colormap.get(name if name in pg.colormap.listMaps() else "viridis")


def map_colour_map(name: str) -> pg.ColorMap:
    """The map's colours with transparency rising from 0 (typical) to full at the top of the range, so
    ordinary time-frequency cells leave the spectrogram visible and only what stands out is coloured."""
    base = pg.colormap.get(name if name in pg.colormap.listMaps() else "inferno")
    positions = np.linspace(0.0, 1.0, 64)
    colours = base.map(positions, mode="byte").astype(np.float64)
    alpha = np.clip((positions - 0.25) / 0.5, 0.0, 1.0) ** 0.8
    colours[:, 3] = 255 * alpha
    return pg.ColorMap(positions, colours.astype(np.ubyte))


def map_levels(lanes: Detection) -> tuple[float, float]:
    """The colour range of a detector's map on one clip, in the map's units (those of its frame scores).

    The top is the clip's own high percentile, but never below MAP_HEADROOM x the model's frame threshold: a
    clip that stays under the threshold is drawn on one scale for every such clip, where a cell at the
    threshold is mid-colour and half transparent and ordinary cells are transparent; a clip above it has its
    strongest cells at full colour, and a clip far above the threshold everywhere still shows which of its
    cells are strongest (a fixed top at the threshold made it one saturated block). The low end,
    threshold x (1 - threshold / top), lies a little below the threshold when the top is far above it and
    moves smoothly down as the top comes nearer, so the threshold always stays on the scale. Without a
    threshold, the map's own range."""
    values = lanes.anomaly_map[np.isfinite(lanes.anomaly_map)] if lanes.anomaly_map is not None else np.zeros(0)
    threshold = lanes.frame_threshold
    if threshold is not None and threshold > 0:
        top = float(np.percentile(values, MAP_TOP_PERCENTILE)) if values.size else threshold
        top = max(top, MAP_HEADROOM * threshold)
        return float(threshold * (1.0 - threshold / top)), top
    low, high = np.percentile(values, [2, MAP_TOP_PERCENTILE]) if values.size else (0.0, 1.0)
    return float(low), float(high if high > low else low + 1.0)


def colour_bar_ticks(low: float, high: float, threshold: float | None, count: int = 4) -> list[tuple[float, str]]:
    """The labels of a map's colour bar: about `count` round values between low and high, and the threshold
    (labelled "thr") where it lies on the scale; a round value too close to the threshold gives way to it."""
    span = high - low
    if not np.isfinite(span) or span <= 0:
        return []
    raw = span / count
    magnitude = 10.0 ** np.floor(np.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    values = np.arange(np.ceil(low / step) * step, high + 1e-9 * span, step)
    inside = threshold is not None and low <= threshold <= high
    ticks = [(float(v), short_number(v)) for v in values if not inside or abs(v - threshold) > 0.15 * span]
    if inside:
        ticks.append((float(threshold), "thr"))
    return sorted(ticks)


def short_number(value: float, digits: int = 2) -> str:
    """A number in a few characters (1.5k, 20, 0.35), so a narrow axis or title has room for it: `digits`
    significant digits for thousands and millions (two on a scale: "15k", not "14.8k", which a colour bar's
    narrow scale cuts off; a title takes three)."""
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.{digits}g}M"
    if size >= 1e3:
        return f"{value / 1e3:.{digits}g}k"
    return f"{value:.3g}" if size >= 0.01 or size == 0 else f"{value:.1g}"


def raster_map(
    lanes: Detection, mel_low: float, mel_high: float, rows: int = 128, max_columns: int = 4000
) -> tuple[np.ndarray, tuple[float, float]] | None:
    """The anomaly map drawn on the spectrogram's grid: `rows` rows evenly spaced in mel between mel_low and
    mel_high, columns of equal time covering the map's time spans. Cells the map does not cover are NaN.
    Returns the [rows, columns] image (row 0 lowest) and its (start_s, end_s)."""
    if lanes.anomaly_map is None or lanes.anomaly_map.size == 0:
        return None
    grid = np.asarray(lanes.anomaly_map, dtype=np.float32)
    freq = np.asarray(lanes.map_freq_spans_hz, dtype=np.float64)
    times = np.asarray(lanes.map_time_spans_s, dtype=np.float64)
    start, end = float(times[:, 0].min()), float(times[:, 1].max())
    width = float(np.min(times[:, 1] - times[:, 0]))
    columns = int(min(max_columns, max(1, np.ceil((end - start) / max(width / 4, 1e-6)))))
    column_centres = start + (np.arange(columns) + 0.5) * (end - start) / columns
    row_centres = mel_low + (np.arange(rows) + 0.5) * (mel_high - mel_low) / rows
    freq_mel = hz_to_mel(freq)
    row_index = _cover(row_centres, freq_mel)
    column_index = _cover(column_centres, times)
    image = np.full((rows, columns), np.nan, dtype=np.float32)
    valid_rows, valid_columns = row_index >= 0, column_index >= 0
    image[np.ix_(valid_rows, valid_columns)] = grid[np.ix_(row_index[valid_rows], column_index[valid_columns])]
    return np.ascontiguousarray(image), (start, end)


def _cover(points: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """For each point, the index of a span (low, high) that holds it (the last such), else -1."""
    found = np.full(points.shape, -1, dtype=np.int64)
    for index, (low, high) in enumerate(spans):
        found[(points >= low) & (points < high)] = index
    return found
