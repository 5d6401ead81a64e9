"""The detector catalogue: every detector Earmark has, by key, and loading a saved model.

This module sits on top of `engine.detectors`: it imports each detector's folder and adds its classes to
`CATALOGUE` (`engine.detectors.catalogue`, which the ensemble reads from below to build its members). The
contract (`engine.detectors.base`) and the detectors never import it; everything above them (runs, the CLI,
the window, the classifiers' training) asks it. A new detector is one import and one entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from engine.audio.feature_cache import FeatureCache
from engine.detectors.ast_ae import AstAEDetector
from engine.detectors.attr_classifier import AttrClassifierDetector
from engine.detectors.base import Detector, DetectorConfig, Learning, read_saved
from engine.detectors.catalogue import CATALOGUE, configure, parse_settings
from engine.detectors.dcase_ae import DcaseAEDetector
from engine.detectors.ensemble import EnsembleDetector
from engine.detectors.knn import KnnDetector
from engine.detectors.leak import BinaryLeakDetector, MulticlassLeakDetector
from engine.detectors.meta_proto import MetaProtoDetector
from engine.detectors.patch_memory import PatchMemoryDetector
from engine.errors import EarmarkError
from engine.labels.proposals import ANOMALY_FINDING

__all__ = [
    "CATALOGUE",
    "configure",
    "detector_class",
    "detector_keys",
    "finding_label",
    "fit_all_keys",
    "load_model",
    "make_config",
    "parse_settings",
]

CATALOGUE.add(
    AstAEDetector,
    AttrClassifierDetector,
    DcaseAEDetector,
    KnnDetector,
    PatchMemoryDetector,
    EnsembleDetector,
    BinaryLeakDetector,
    MulticlassLeakDetector,
    MetaProtoDetector,
)


def detector_keys(learning: Learning | None = Learning.ONE_CLASS) -> list[str]:
    """The detectors fitted on normal clips (the default), those trained from labels
    (`Learning.SUPERVISED`), or all (None); sorted."""
    return CATALOGUE.keys(learning)


def fit_all_keys() -> list[str]:
    """The detectors a run fits when it fits every one without naming them (the window's Fit all): those
    fitted on normal clips and taken `by_default`; sorted."""
    return [key for key in detector_keys() if detector_class(key).by_default]


def detector_class(key: str) -> type[Detector]:
    """The class of detector `key`; an unknown key raises `EarmarkError` naming the known ones."""
    return CATALOGUE.detector_class(key)


def make_config(key: str, settings: Mapping[str, object] | None = None) -> DetectorConfig:
    """The detector's config with `settings` applied; text values are converted to the field's type."""
    return CATALOGUE.make_config(key, settings)


def finding_label(key: str) -> str:
    """What a detector's proposals are labelled: the class a trained classifier finds (the leak classifier's
    LEAK), else `ANOMALY_FINDING` (also for a model of a detector this version does not know)."""
    try:
        return str(getattr(detector_class(key), "finding", ANOMALY_FINDING))
    except EarmarkError:
        return ANOMALY_FINDING


def load_model(
    folder: str | Path, *, cache: FeatureCache | None = None, device: torch.device | None = None
) -> Detector:
    """The model saved in `folder` by `Detector.save`, as the detector class its `model.json` names.
    Missing, truncated or inconsistent files raise `ArtifactError` naming the folder and saying to fit
    again; a detector this version does not know raises `EarmarkError`."""
    folder = Path(folder)
    meta, state = read_saved(folder)
    return detector_class(meta["detector"]).from_saved(folder, meta, state, cache=cache, device=device)
