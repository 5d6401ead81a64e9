"""Earmark's headless core: audio, data sets, detectors, evaluation and the project store.

Nothing in this package imports Qt; the desktop front end in `app` sits on top of it.
"""

from __future__ import annotations

__version__ = "0.1.0"

# Before anything imports torch (its OpenMP runtime reads this once): idle compute threads sleep, not spin.
from engine.threads import prefer_passive_waits  # noqa: E402

prefer_passive_waits()
