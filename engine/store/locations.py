"""Where projects go by default: `projects/` in a source checkout, the user's data directory otherwise."""

from __future__ import annotations

from pathlib import Path


def default_projects_dir() -> Path:
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "projects").is_dir():
        return checkout / "projects"
    from platformdirs import user_data_path

    return user_data_path("earmark", appauthor=False) / "projects"
