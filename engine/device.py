"""The one place that picks where tensors live: CUDA when present, else Apple's MPS, else the CPU.

`EARMARK_DEVICE` (auto | cpu | cuda | mps) overrides the choice, as does the GUI's setting. Mixed precision
is used on CUDA only; nothing in Earmark assumes a GPU.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from engine.errors import EarmarkError

CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(preference: str | None = None) -> torch.device:
    """The device to compute on; `preference` (or $EARMARK_DEVICE) of auto, cpu, cuda or mps."""
    choice = (preference or os.environ.get("EARMARK_DEVICE") or "auto").lower()
    if choice not in CHOICES:
        raise EarmarkError(f"unknown device {choice!r}; choose one of {', '.join(CHOICES)}")
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise EarmarkError("device 'cuda' was asked for but no CUDA GPU is available; choose auto or cpu")
    if choice == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EarmarkError("device 'mps' was asked for but is not available here; choose auto or cpu")
    return torch.device(choice)


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """Mixed precision (float16) on CUDA; full precision everywhere else."""
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.float16):
            yield
    else:
        yield
