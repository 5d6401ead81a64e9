"""The trained leak classifier as a detector (`leak_binary`, `leak_multiclass`); trained by
`engine.classifiers.leak` (`earmark train leak`)."""

from engine.detectors.leak.detector import BinaryLeakDetector, LeakDetector, LeakDetectorConfig, MulticlassLeakDetector

__all__ = ["BinaryLeakDetector", "LeakDetector", "LeakDetectorConfig", "MulticlassLeakDetector"]
