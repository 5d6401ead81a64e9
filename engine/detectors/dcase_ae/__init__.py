"""The DCASE Task 2 baseline auto-encoder (`dcase_ae`)."""

from engine.detectors.dcase_ae.config import DcaseAEConfig
from engine.detectors.dcase_ae.detector import DcaseAEDetector

__all__ = ["DcaseAEConfig", "DcaseAEDetector"]
