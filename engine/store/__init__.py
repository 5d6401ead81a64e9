"""The project store: one SQLite file per project plus an artifacts folder."""

from __future__ import annotations

from engine.store.project import LabelClass, Project

__all__ = ["LabelClass", "Project"]
