"""The memory-bank k-NN detector (`knn`)."""

from engine.detectors.knn.detector import KnnConfig, KnnDetector

__all__ = ["KnnConfig", "KnnDetector"]
