"""The AST auto-encoder (`ast_ae`)."""

from engine.detectors.ast_ae.detector import AstAEConfig, AstAEDetector

__all__ = ["AstAEConfig", "AstAEDetector"]
