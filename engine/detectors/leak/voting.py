"""File-level judgement of the leak detector, as leak surveys judge: a file is cut into long segments, the
short-segment leak probabilities inside each long segment are averaged, and the file is LEAK when at least
half of its long segments reach the threshold. Model selection uses the F1 of these file decisions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

EVAL_METHOD = "file_level_long_segment_mean_50pct_voting"


def long_segment_means(probabilities: Sequence[float], long_ids: Sequence[int]) -> np.ndarray:
    """The mean probability of each long segment, in the order of their ids."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    long_ids = np.asarray(long_ids)
    if probabilities.shape != long_ids.shape:
        raise ValueError("one long-segment id per probability is needed")
    ids, inverse = np.unique(long_ids, return_inverse=True)
    sums = np.bincount(inverse, weights=probabilities, minlength=len(ids))
    return sums / np.bincount(inverse, minlength=len(ids))


def vote_fraction(long_means: Sequence[float], threshold: float = 0.5) -> float:
    """The share of long segments whose mean probability reaches `threshold` (0 for a file with none)."""
    means = np.asarray(long_means, dtype=np.float64)
    return float(np.mean(means >= threshold)) if means.size else 0.0


def file_is_leak(long_means: Sequence[float], threshold: float = 0.5, fraction: float = 0.5) -> bool:
    """LEAK when at least `fraction` of the long segments reach `threshold`."""
    return bool(np.asarray(long_means).size) and vote_fraction(long_means, threshold) >= fraction


@dataclass(frozen=True)
class FileLevel:
    """File decisions against the files' truth, with leak as the positive class."""

    f1: float
    precision: float
    recall: float
    accuracy: float
    files: int
    predicted_leak: int
    decisions: dict[str, bool]
    #: Files by truth (rows: not leak, leak) and decision (columns: not leak, leak).
    confusion: list[list[int]]

    def as_dict(self) -> dict:
        return {
            "file_leak_f1": self.f1,
            "file_precision": self.precision,
            "file_recall": self.recall,
            "file_accuracy": self.accuracy,
            "files": self.files,
            "predicted_leak": self.predicted_leak,
            "file_confusion": self.confusion,
        }


def judge_files(
    probabilities: Sequence[float],
    file_ids: Sequence[str],
    long_ids: Sequence[int],
    truth: Mapping[str, bool],
    threshold: float = 0.5,
    fraction: float = 0.5,
) -> FileLevel:
    """File-level decisions and their F1 from every short segment's leak probability, the file and long
    segment each belongs to, and each file's truth (True = leak)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    file_ids = np.asarray(file_ids)
    long_ids = np.asarray(long_ids)
    decisions = {}
    for file in truth:
        mine = file_ids == file
        decisions[file] = file_is_leak(long_segment_means(probabilities[mine], long_ids[mine]), threshold, fraction)
    confusion = [[0, 0], [0, 0]]
    for file, decided in decisions.items():
        confusion[int(truth[file])][int(decided)] += 1
    (_, fp), (fn, tp) = confusion
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = sum(decisions[f] == truth[f] for f in truth) / len(truth) if truth else 0.0
    return FileLevel(f1, precision, recall, accuracy, len(truth), sum(decisions.values()), decisions, confusion)
