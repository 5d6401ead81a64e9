"""The attribute classifier with a k-NN back-end (`attr_classifier`)."""

from engine.detectors.attr_classifier.detector import AttrClassifierConfig, AttrClassifierDetector

__all__ = ["AttrClassifierConfig", "AttrClassifierDetector"]
