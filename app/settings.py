"""The window's own settings (recent projects, the group dropped files are scored with, spectrogram look, the
detectors shown side by side, device, the window's size and dock layout), kept in `gui.ini` next to the
weights settings in the user's config directory."""

from __future__ import annotations

from dataclasses import dataclass, fields

from PySide6.QtCore import QByteArray, QSettings

from engine.weights import config_dir

MAX_RECENT = 8


@dataclass
class SpectrogramSettings:
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 128
    db_floor: float = -70.0
    db_ceiling: float = -15.0
    colour_map: str = "grey_r"
    map_colour_map: str = "inferno"


class AppSettings:
    def __init__(self) -> None:
        folder = config_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self._q = QSettings(str(folder / "gui.ini"), QSettings.Format.IniFormat)

    # -- recent projects -----------------------------------------------------------------------------
    def recent_projects(self) -> list[str]:
        value = self._q.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value or []]

    def add_recent(self, folder: str) -> None:
        recent = [folder] + [f for f in self.recent_projects() if f != folder]
        self._q.setValue("recent", recent[:MAX_RECENT])

    def remove_recent(self, folder: str) -> None:
        self._q.setValue("recent", [f for f in self.recent_projects() if f != folder])

    # -- single values -------------------------------------------------------------------------------
    def drop_group(self, project: str) -> str | None:
        value = self._q.value(f"drop_group/{_key(project)}")
        return str(value) if value else None

    def set_drop_group(self, project: str, group: str) -> None:
        self._q.setValue(f"drop_group/{_key(project)}", group)

    @property
    def device(self) -> str:
        return str(self._q.value("device", "auto"))

    @device.setter
    def device(self, value: str) -> None:
        self._q.setValue("device", value)

    @property
    def normalised_scores(self) -> bool:
        """The clip table shows normalised scores instead of raw ones."""
        return str(self._q.value("table/normalised_scores", "false")).lower() == "true"

    @normalised_scores.setter
    def normalised_scores(self, on: bool) -> None:
        self._q.setValue("table/normalised_scores", "true" if on else "false")

    @property
    def evaluation_open(self) -> bool:
        """The evaluation dock was open when the window closed (it is made on first use, so the saved dock
        layout alone cannot bring it back)."""
        return str(self._q.value("window/evaluation_open", "false")).lower() == "true"

    @evaluation_open.setter
    def evaluation_open(self, on: bool) -> None:
        self._q.setValue("window/evaluation_open", "true" if on else "false")

    def view_detectors(self) -> tuple[list[str], bool]:
        """The detectors of the spectrogram's columns chosen last, the first column's first, and whether side by
        side was on."""
        value = self._q.value("view/detectors", [])
        names = [value] if isinstance(value, str) else [str(v) for v in value or []]
        return names, str(self._q.value("view/side_by_side", "false")).lower() == "true"

    def set_view_detectors(self, names: list[str], side_by_side: bool) -> None:
        self._q.setValue("view/detectors", names)
        self._q.setValue("view/side_by_side", side_by_side)

    def spectrogram(self) -> SpectrogramSettings:
        defaults = SpectrogramSettings()
        values = {}
        for f in fields(SpectrogramSettings):
            raw = self._q.value(f"spectrogram/{f.name}", getattr(defaults, f.name))
            try:
                values[f.name] = type(getattr(defaults, f.name))(raw)
            except (TypeError, ValueError):
                values[f.name] = getattr(defaults, f.name)
        return SpectrogramSettings(**values)

    def set_spectrogram(self, settings: SpectrogramSettings) -> None:
        for f in fields(SpectrogramSettings):
            self._q.setValue(f"spectrogram/{f.name}", getattr(settings, f.name))

    # -- the window's size and dock layout ---------------------------------------------------------------
    def window_layout(self, version: int) -> tuple[QByteArray | None, QByteArray | None]:
        """The geometry and dock state saved by layout `version`; (None, None) for another version's."""
        try:
            saved_version = int(self._q.value("window/version", -1))
        except (TypeError, ValueError):
            saved_version = -1
        if saved_version != version:
            return None, None
        geometry, state = self._q.value("window/geometry"), self._q.value("window/state")
        return (
            geometry if isinstance(geometry, QByteArray) else None,
            state if isinstance(state, QByteArray) else None,
        )

    def set_window_layout(self, version: int, geometry: QByteArray, state: QByteArray) -> None:
        self._q.setValue("window/version", version)
        self._q.setValue("window/geometry", geometry)
        self._q.setValue("window/state", state)

    def sync(self) -> None:
        self._q.sync()


def _key(folder: str) -> str:
    return folder.replace("/", "|").replace("\\", "|")
