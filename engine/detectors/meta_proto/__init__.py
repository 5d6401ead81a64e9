"""The metadata ProtoNet detector (`meta_proto`)."""

from engine.detectors.meta_proto.detector import MetaProtoConfig, MetaProtoDetector

__all__ = ["MetaProtoConfig", "MetaProtoDetector"]
