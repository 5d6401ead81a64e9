"""The leak detector's training data: short mel segments cut from the project's labelled regions.

Every manual region whose label is one of the mode's classes is cut into short segments of
`segment_frames` frames of a 32-band log-mel spectrogram (computed once per clip by the project's feature
cache). Each segment remembers its file (the clip) and its long segment (`long_segment_s` stretches of its
region), for file-level voting. A file is LEAK when LEAK regions make up at least half of its labelled time.
The cut set is cached in `artifacts/classifiers/segments/`, keyed by the regions and the settings, so
training again on unchanged labels reads one file.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.audio.feature_cache import FeatureCache
from engine.data.changes import refresh_changed
from engine.detectors.leak.segments import LEAK, MULTICLASS, SegmentSettings, classes_for, cut_segments
from engine.errors import EarmarkError
from engine.files import save_npz_atomic
from engine.jobs import Progress
from engine.store.labels import regions as stored_regions
from engine.store.project import Project


def class_of(label: str, mode: str) -> str | None:
    """The training class of a region label in `mode`, or None when the mode has no use for it."""
    name = label.upper()
    if mode == "multiclass":
        return name if name in MULTICLASS else None
    if name == LEAK:
        return LEAK
    return "NOLEAK" if name in MULTICLASS or name == "NOLEAK" else None


@dataclass
class SegmentSet:
    x: np.ndarray  # [N, n_mels, segment_frames] log-mel dB
    classes: np.ndarray  # [N] index into `names`
    files: np.ndarray  # [N] clip ids
    long_ids: np.ndarray  # [N] long-segment id, unique within the file
    names: tuple[str, ...]
    truth: dict[str, bool]  # clip id -> the file is LEAK
    splits: dict[str, str | None]  # clip id -> the clip's split in the project

    def subset(self, files: set[str]) -> SegmentSet:
        keep = np.isin(self.files, sorted(files))
        return SegmentSet(
            self.x[keep],
            self.classes[keep],
            self.files[keep],
            self.long_ids[keep],
            self.names,
            {f: t for f, t in self.truth.items() if f in files},
            {f: s for f, s in self.splits.items() if f in files},
        )


def labelled_segments(
    project: Project, mode: str, settings: SegmentSettings, cache: FeatureCache, progress: Progress
) -> SegmentSet:
    """Every short segment of the project's labelled regions that `mode` can use."""
    names = classes_for(mode)
    usable = [(r, class_of(r.label, mode)) for r in stored_regions(project, kinds=("manual",))]
    ignored = sorted({r.label for r, name in usable if name is None})
    usable = [(r, name) for r, name in usable if name is not None]
    if ignored:
        progress.problem(f"labels not used by the {mode} leak classifier: {', '.join(ignored)}")
    if not usable:
        raise EarmarkError(
            f"no labelled regions to train the {mode} leak classifier on: label stretches of "
            f"clips as {' / '.join(MULTICLASS)} (Label menu), or import label files"
        )
    labelled_clips = {r.clip_id for r, _ in usable}
    # A recording changed on disk since it was labelled is read again (and named) before it is cut.
    clips = {
        c.clip_id: c
        for c in refresh_changed(project, [c for c in project.clips() if c.clip_id in labelled_clips], progress, cache)
    }
    usable = [(r, name) for r, name in usable if r.clip_id in clips]
    key = _cache_key(mode, settings, [(clips[r.clip_id].checksum, r.start_s, r.end_s, n) for r, n in usable])
    cached = project.artifacts / "classifiers" / "segments" / f"{key}.npz"
    if cached.is_file():
        try:
            return _read(cached, names)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # a damaged cache file is cut again
    wanted = sorted({r.clip_id for r, _ in usable})
    features = cache.features([clips[c] for c in wanted], settings.features, progress.child("features: "))
    xs, classes, files, long_ids = [], [], [], []
    labelled = defaultdict(lambda: [0, 0])  # clip -> [leak frames, labelled frames]
    frames_per_s = settings.sample_rate / settings.hop_length
    width = settings.segment_frames
    for number, (region, name) in enumerate(usable):
        mel = features.get(region.clip_id)
        if mel is None:
            continue  # unreadable: already reported by the cache
        # Bounded before int(): a region stored before times were held to the clip may end at 1e308 s.
        first = int(min(mel.shape[1], np.floor(region.start_s * frames_per_s)))
        last = int(min(mel.shape[1], np.floor(region.end_s * frames_per_s)))
        starts, cut, long_in_region = cut_segments(mel, first, last, settings, stride=width)
        if not len(starts):
            progress.problem(
                f"{region.clip_id}: a {name} region of {region.end_s - region.start_s:.2f} s is "
                f"shorter than one segment ({width / frames_per_s:.2f} s) and was left out"
            )
            continue
        xs.append(cut)
        classes.append(np.full(len(starts), names.index(name)))
        files.append(np.full(len(starts), region.clip_id, dtype=object))
        long_ids.append(number * 100000 + long_in_region)  # long segments never span two regions
        labelled[region.clip_id][0] += len(starts) if name == LEAK else 0
        labelled[region.clip_id][1] += len(starts)
    if not xs:
        raise EarmarkError(
            "none of the labelled regions gave a segment (unreadable audio, or regions shorter "
            f"than {width / frames_per_s:.2f} s)"
        )
    result = SegmentSet(
        np.concatenate(xs).astype(np.float32),
        np.concatenate(classes),
        np.concatenate(files).astype(str),
        np.concatenate(long_ids),
        names,
        {clip: leak * 2 >= total for clip, (leak, total) in labelled.items()},
        {clip: clips[clip].split for clip in labelled},
    )
    _write(cached, result)
    return result


def _cache_key(mode: str, settings: SegmentSettings, regions: list) -> str:
    text = json.dumps([mode, asdict(settings), sorted(regions)], default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def data_signature(segments: SegmentSet) -> str:
    digest = hashlib.sha1(segments.x.tobytes())
    digest.update(segments.classes.tobytes())
    digest.update("\n".join(segments.files.tolist()).encode())
    return digest.hexdigest()[:16]


def _write(path: Path, s: SegmentSet) -> None:
    truth = json.dumps({"truth": s.truth, "splits": s.splits})
    save_npz_atomic(
        path,
        {
            "x": s.x.astype(np.float16),
            "classes": s.classes,
            "files": s.files,
            "long_ids": s.long_ids,
            "meta": np.array(truth),
        },
    )


def _read(path: Path, names: tuple[str, ...]) -> SegmentSet:
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        return SegmentSet(
            data["x"].astype(np.float32),
            data["classes"],
            data["files"].astype(str),
            data["long_ids"],
            names,
            meta["truth"],
            meta["splits"],
        )
