"""Earmark's headless core: audio, data sets, detectors, evaluation and the project store.

Nothing in this package imports Qt; the desktop front end in `app` sits on top of it.
"""
from __future__ import annotations

__version__ = "0.1.0"
