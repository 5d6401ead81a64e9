"""Encoders turn waveforms into clip, frame and patch embeddings; `make_encoder(name, cache)` builds one."""

from __future__ import annotations

from engine.encoders import ast, beats, logmel  # noqa: F401  (registers the encoders)
from engine.encoders.base import ENCODERS, Embedding, Encoder, make_encoder

__all__ = ["ENCODERS", "Embedding", "Encoder", "make_encoder"]
