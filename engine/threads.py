"""How many CPU threads torch computes with: one place for the policy, chosen for the work and the load.

Earmark's own models are small (the dcase_ae auto-encoder, k-NN distances over a few thousand rows): their
operations are too short to share between threads, and OpenMP threads that spin-wait for each other cost
far more than they save once anything else runs on the machine (a dcase_ae training step on 2 cores with
another busy process: 24 ms on one thread, 938 ms on two). So small work runs on one thread; large work
(pretrained encoders) gets the cores the machine's load leaves free. Waiting OpenMP threads sleep instead
of spinning (OMP_WAIT_POLICY=PASSIVE), which the OpenMP runtime reads once, when torch is first imported:
`prefer_passive_waits()` runs before that at every entry point. $EARMARK_THREADS (a number) overrides the
choice, and a user's own OMP_NUM_THREADS is respected.
"""

from __future__ import annotations

import os
from typing import Literal

Work = Literal["small", "large"]


def prefer_passive_waits() -> None:
    """Let idle OpenMP threads sleep rather than spin; only effective before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def threads_for(work: Work = "small", cpus: int | None = None, load: float | None = None) -> int:
    """The thread count for `work` on a machine with `cpus` cores under `load` (1-minute load average)."""
    chosen = os.environ.get("EARMARK_THREADS") or os.environ.get("OMP_NUM_THREADS")
    if chosen and chosen.strip().isdigit() and int(chosen) > 0:
        return int(chosen)
    if work == "small":
        return 1
    cpus = cpus or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on every platform
            load = 0.0
    return max(1, min(cpus, cpus - int(round(load))))


def configure_threads(work: Work = "small") -> int:
    """Set torch's thread count for `work` (see the module's docstring); returns the count."""
    import torch

    count = threads_for(work)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
