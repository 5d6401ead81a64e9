"""How long a fit will take, said before a long run starts (Fit all warns with it).

The costs are seconds of computing per second of audio, measured on a 2-core CPU with Earmark's thread
policy while other work was running (the demo data set: 9 groups of about 53 ten-second training clips):
dcase_ae trained at about 24 ms per batch of 256 frames, that is 0.003 s per second of audio per epoch;
knn and patch_memory fitted all 9 groups in about 7 s together; scoring the three took about 13 s for 270
test clips. Each detector class holds its own cost (`Detector.fit_cost`); one without a measured cost gets a
cautious default. A GPU is much faster for dcase_ae;
the estimate errs long there. The ensemble costs what its members cost (only their scoring when they are
fitted in the same run: it combines those models instead of fitting them again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.data.clip import Clip
from engine.detectors.registry import detector_class, make_config
from engine.errors import EarmarkError
from engine.jobs import describe_duration

#: Seconds per second of test audio, per detector scored.
SCORE_COST = 0.002


@dataclass
class FitEstimate:
    detectors: list[str]
    groups: int
    training_clips: int
    seconds_by_detector: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.seconds_by_detector.values())

    def weights(self) -> list[float]:
        """Each detector's expected share of the run (for the job's progress)."""
        return [max(self.seconds_by_detector.get(d, 0.0), 0.1) for d in self.detectors]

    def describe(self) -> str:
        parts = ", ".join(f"{d} {describe_duration(s)}" for d, s in self.seconds_by_detector.items())
        return (
            f"{len(self.detectors)} detector(s) x {self.groups} group(s) ({self.training_clips} training clips): "
            f"about {describe_duration(self.seconds)} on a 2-core CPU ({parts})"
        )


def estimate_fit(
    clips: Sequence[Clip],
    detectors: Sequence[str],
    settings: Mapping[str, object] | None = None,
    group: str | None = None,
    then_score: bool = True,
) -> FitEstimate:
    """The expected time to fit `detectors` on the normal training clips of `clips` (and score the tests)."""
    training = [c for c in clips if c.split in ("train", "supplemental") and (group is None or c.group == group)]
    tests = [c for c in clips if c.split == "test" and (group is None or c.group == group)]
    train_s = sum(c.duration_s or 0.0 for c in training)
    test_s = sum(c.duration_s or 0.0 for c in tests) if then_score else 0.0
    estimate = FitEstimate(list(detectors), len({c.group for c in training}), len(training))
    for detector in detectors:
        try:
            config = make_config(detector, settings or {})
        except EarmarkError:  # settings meant for another detector: this one's defaults
            config = make_config(detector, {})
        members = getattr(config, "members", None)
        if members:  # the ensemble: its members' costs, fitting none of them when they are fitted in the run
            fit = (
                0.0
                if set(members) <= set(detectors)
                else sum(fit_seconds(m, make_config(m, config.settings_for(m)), train_s) for m in members)
            )
            cost = fit + SCORE_COST * test_s * len(members)
        else:
            cost = fit_seconds(detector, config, train_s) + SCORE_COST * test_s
        estimate.seconds_by_detector[detector] = cost
    return estimate


def fit_seconds(detector: str, config, train_s: float) -> float:
    """Expected seconds to fit `detector` with `config` on `train_s` seconds of training audio."""
    return detector_class(detector).fit_seconds(config, train_s)
