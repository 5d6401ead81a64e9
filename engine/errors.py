"""The one exception family for problems a user can cause and fix.

Every message says what was wrong and what to do about it; the GUI shows it in a dialog and the CLI
prints it on one line and exits with status 1.
"""

from __future__ import annotations

from pathlib import Path


class EarmarkError(Exception):
    """A problem with the user's input (a file, a project, a setting), not a bug in Earmark."""


class AudioError(EarmarkError):
    """An audio file that cannot be used, with the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ProjectError(EarmarkError):
    """A project folder that cannot be created, opened or written."""


class ArtifactError(EarmarkError):
    """A file the project refers to (a model's weights, a clip's lanes) that is missing, damaged or outside
    the project folder; the message says which file and whether to rescore or refit."""


class DiskFullError(EarmarkError):
    """The disk ran out of space during a write; the partial file was removed and nothing refers to it."""
