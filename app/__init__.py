"""Earmark's desktop front end (PySide6 + pyqtgraph). It talks to the engine; the engine never imports it."""
