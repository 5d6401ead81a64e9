"""What the metadata detectors (`meta_proto`, `attr_classifier`) share: the clips' metadata as auxiliary
classification tasks (and self-supervised pseudo-classes where there is none), the log-mel segments they
read, and the small conv encoder they train."""

from engine.detectors.metadata.network import ConvEmbedding
from engine.detectors.metadata.segments import ClipSegments, SegmentConfig, clip_segments
from engine.detectors.metadata.tasks import Task, fallback_report, joint_classes, metadata_tasks, pseudo_views

__all__ = [
    "ClipSegments",
    "ConvEmbedding",
    "SegmentConfig",
    "Task",
    "clip_segments",
    "fallback_report",
    "joint_classes",
    "metadata_tasks",
    "pseudo_views",
]
