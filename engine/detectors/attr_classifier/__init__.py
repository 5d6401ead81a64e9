"""The attribute classifier with a k-NN back-end (`attr_classifier`)."""

from engine.detectors.attr_classifier.config import AttrClassifierConfig
from engine.detectors.attr_classifier.detector import AttrClassifierDetector

__all__ = ["AttrClassifierConfig", "AttrClassifierDetector"]
