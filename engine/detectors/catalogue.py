"""The mapping from detector keys to classes, and settings given as text (`--set k=5`) turned into a typed
config. It sits low (beside the contract in `base`), so that a detector that works with other detectors by
key (the ensemble) can look them up without importing the registry above it. The registry
(`engine.detectors.registry`) is the one module that imports every detector folder and fills `CATALOGUE`;
everything above the detectors asks the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

from engine.detectors.base import Detector, DetectorConfig, Learning
from engine.errors import EarmarkError


class Catalogue:
    """Detector classes by key, in the order they were added."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Detector]] = {}

    def add(self, *classes: type[Detector]) -> None:
        for cls in classes:
            if not cls.key or self._classes.get(cls.key, cls) is not cls:
                raise ValueError(f"{cls.__name__}: a detector needs a key of its own, not {cls.key!r}")
            self._classes[cls.key] = cls

    def __iter__(self) -> Iterator[type[Detector]]:
        return iter(self._filled().values())

    def keys(self, learning: Learning | None = Learning.ONE_CLASS) -> list[str]:
        """The keys of the detectors that learn this way (all of them for None), sorted."""
        return sorted(k for k, cls in self._filled().items() if learning is None or cls.learning is learning)

    def detector_class(self, key: str) -> type[Detector]:
        classes = self._filled()
        if key not in classes:
            raise EarmarkError(f"unknown detector {key!r}; available: {', '.join(sorted(classes))}")
        return classes[key]

    def make_config(self, key: str, settings: Mapping[str, object] | None = None) -> DetectorConfig:
        """The detector's config with `settings` applied; text values are converted to the field's type."""
        return configure(key, self.detector_class(key).Config(), settings)

    def _filled(self) -> dict[str, type[Detector]]:
        if not self._classes:  # a programming error, not a user's: nothing imported the registry
            raise RuntimeError("no detector is registered yet: import engine.detectors.registry first")
        return self._classes


#: Filled by `engine.detectors.registry` when it is imported.
CATALOGUE = Catalogue()


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
