"""The metadata ProtoNet detector (`meta_proto`)."""

from engine.detectors.meta_proto.config import MetaProtoConfig
from engine.detectors.meta_proto.detector import MetaProtoDetector

__all__ = ["MetaProtoConfig", "MetaProtoDetector"]
