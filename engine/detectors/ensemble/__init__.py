"""The ensemble of detectors (`ensemble`): members' normalised scores, lanes and maps fused."""

from engine.detectors.ensemble.detector import (
    KEY,
    EnsembleConfig,
    EnsembleDetector,
    fitted_members,
    reusable_members,
)

__all__ = ["KEY", "EnsembleConfig", "EnsembleDetector", "fitted_members", "reusable_members"]
