"""Detector keys -> classes, and settings given as text (`--set k=5`) turned into a typed config."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.errors import EarmarkError

if TYPE_CHECKING:
    from engine.detectors.base import Detector, DetectorConfig

DETECTORS: dict[str, type[Detector]] = {}


def register_detector(cls: type[Detector]) -> type[Detector]:
    DETECTORS[cls.key] = cls
    return cls


def _load_all() -> None:
    # Importing a detector's package registers it.
    from engine.classifiers import leak_detector  # noqa: F401
    from engine.detectors import ast_ae, dcase_ae, ensemble, knn, patch_memory  # noqa: F401


def detector_keys(supervised: bool | None = False) -> list[str]:
    """The detectors fitted on normal clips (the default), the ones trained from labels (True), or all (None)."""
    _load_all()
    return sorted(k for k, cls in DETECTORS.items() if supervised is None or cls.supervised == supervised)


def detector_class(key: str) -> type[Detector]:
    _load_all()
    if key not in DETECTORS:
        raise EarmarkError(f"unknown detector {key!r}; available: {', '.join(sorted(DETECTORS))}")
    return DETECTORS[key]


def make_config(key: str, settings: Mapping[str, object] | None = None) -> DetectorConfig:
    """The detector's config with `settings` applied; text values are converted to the field's type."""
    return configure(key, detector_class(key).Config(), settings)


def configure(what: str, config, settings: Mapping[str, object] | None = None, fixed: tuple[str, ...] = ()):
    """A copy of the dataclass `config` with `settings` (name -> value or text) applied, text converted to
    each field's type; `fixed` fields cannot be set. `what` names the owner in the error messages."""
    fields = [f.name for f in dataclasses.fields(config) if f.name not in fixed]
    values = {}
    for name, value in (settings or {}).items():
        if name not in fields:
            raise EarmarkError(f"{what} has no setting {name!r}; its settings are: {', '.join(fields)}")
        values[name] = _convert(what, name, value, getattr(config, name))
    return dataclasses.replace(config, **values)


def parse_settings(pairs: list[str]) -> dict[str, str]:
    """["k=5", "distance=cosine"] -> {"k": "5", "distance": "cosine"}."""
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise EarmarkError(f"setting {pair!r} is not of the form name=value")
        settings[name.strip()] = value.strip()
    return settings


def _convert(key: str, name: str, value: object, default: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            return tuple(type(default[0])(v) for v in value.split(",")) if default else tuple(value.split(","))
    except ValueError:
        raise EarmarkError(f"{key}: setting {name}={value!r} is not a valid {type(default).__name__}") from None
    return value
