"""The `Clip` record: one recording in a project, with its metadata and QA figures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.audio.io import QA

DOMAINS = ("source", "target")
SPLITS = ("train", "test", "supplemental")
LABELS = ("normal", "anomaly")


@dataclass(frozen=True)
class Clip:
    """One recording. Audio stays where it is; `path` is absolute.

    `label` is the anomaly-detection label (normal | anomaly | None); any other class name a data set
    gives (a folder name, a sound class) is kept in `attributes["class"]`.
    """

    clip_id: str
    path: str
    sample_rate: int
    duration_s: float
    machine_type: str | None = None
    section_id: str | None = None
    domain: str | None = None
    split: str | None = None
    label: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict, hash=False)
    anomaly_regions: tuple[tuple[float, float], ...] = ()
    qa: QA | None = None
    checksum: str = ""
    channels: int = 1
    format: str = ""
    #: The channel used (0-based) of a multi-channel file; None: the mono mix of all channels.
    channel: int | None = None
    #: The file's size in bytes and modification time (seconds since the epoch) when it was last read;
    #: scoring compares them with the file on disk to notice a file changed after import.
    file_size: int | None = None
    file_mtime: float | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("domain", DOMAINS), ("split", SPLITS), ("label", LABELS)):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)} or empty, not {value!r}")
        for start, end in self.anomaly_regions:
            if not 0 <= start < end:
                raise ValueError(f"anomaly region ({start}, {end}) must have 0 <= start < end")
        object.__setattr__(self, "attributes", {str(k): str(v) for k, v in self.attributes.items()})
        object.__setattr__(self, "anomaly_regions", tuple((float(s), float(e)) for s, e in self.anomaly_regions))

    @property
    def channel_caption(self) -> str:
        """Which audio is used, for a caption: "channel 2 of 4", "mono mix of 2 channels", or "" (mono file)."""
        if self.channel is not None:
            return f"channel {self.channel + 1} of {self.channels}"
        return f"mono mix of {self.channels} channels" if self.channels > 1 else ""

    @property
    def group(self) -> str:
        """The model group a detector is fitted per: machine type and section."""
        return group_key(self.machine_type, self.section_id)


def group_key(machine_type: str | None, section_id: str | None) -> str:
    """The name of the model group of clips with this machine type and section."""
    return f"{machine_type or 'unknown'}/section_{section_id or 'none'}"
