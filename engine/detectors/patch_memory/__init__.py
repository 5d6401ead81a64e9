"""`patch_memory`: few-shot, training-free patch memory with anomaly maps."""

from engine.detectors.patch_memory.detector import PatchMemoryConfig, PatchMemoryDetector

__all__ = ["PatchMemoryConfig", "PatchMemoryDetector"]
