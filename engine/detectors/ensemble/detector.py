"""`ensemble`: several detectors fitted on the same clips, their normalised scores, lanes and maps fused.
See README.md in this folder for the idea, its settings and its figures."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.data.clip import Clip
from engine.detectors.base import FEW_NORMALS, Detection, Detector, DetectorConfig, TrainingScores, few_normals_warning
from engine.detectors.catalogue import CATALOGUE
from engine.detectors.ensemble.grid import FUSIONS, common_times, fuse, lane_on, map_on, mel_bands, time_spans
from engine.detectors.normalisation import DOMAINS, MIN_PER_DOMAIN, domain_shift, normalised_score, score_stats
from engine.errors import EarmarkError
from engine.jobs import Progress, spans

KEY = "ensemble"
NORMALISE_BY = ("domain", "pooled")
#: The largest `shift_power`: beyond it a member whose scores move with the domain at all is left out.
MAX_SHIFT_POWER = 10.0
#: Prefix of the members' held-out scores in the saved state.
HELD_OUT = "held_out_by_member"


def default_members() -> tuple[str, ...]:
    """Every detector fitted on normal clips, except the ensemble itself and those not taken `by_default` (a
    transformer trained per group would multiply the ensemble's fitting time; `--set members=...,ast_ae`
    adds it)."""
    return tuple(k for k in eligible_members() if CATALOGUE.detector_class(k).by_default)


def eligible_members() -> tuple[str, ...]:
    """Every detector fitted on normal clips, except the ensemble itself: what `members` may name."""
    return tuple(k for k in CATALOGUE.keys() if k != KEY)


def fitted_members(fitted: Sequence[str]) -> dict[str, str]:
    """The `members` setting an ensemble fitted in a project gets when none is given: the detectors fitted on
    normal clips that the project has fitted (`fitted`), where there are two or more; else nothing (every
    one, the config's default)."""
    chosen = [k for k in fitted if k in default_members()]
    return {"members": ",".join(chosen)} if len(chosen) >= 2 else {}


def reusable_members(
    config: EnsembleConfig,
    group: str,
    fitted: Mapping[tuple[str, str], Detector] | None,
) -> list[Detector] | None:
    """The members of an ensemble with `config` for `group` among `fitted` ((detector, group) -> a model fitted
    in the same run), where every one is there with the settings the ensemble would give it and its held-out
    training scores; else None."""
    if not fitted:
        return None
    found = [fitted.get((key, group)) for key in config.members]
    if any(
        m is None
        or not m.held_out_by_clip  # a model saved before held-out scores were kept cannot join
        or _as_json(m.config) != _as_json(CATALOGUE.make_config(key, config.settings_for(key)))
        for key, m in zip(config.members, found, strict=True)
    ):
        return None
    return found


def _as_json(config: DetectorConfig) -> str:
    """A config as saved (a loaded model's tuples come back as lists), to compare settings."""
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


@dataclass
class EnsembleConfig(DetectorConfig):
    #: The detectors fitted and fused (`--set members=knn,dcase_ae`).
    members: tuple[str, ...] = field(default_factory=default_members)
    #: How the members' normalised scores (and lanes and maps) are fused: "mean", "min" or "max".
    fusion: str = "mean"
    #: A member's weight in the mean as detector:weight (`--set weights=patch_memory:2,knn:1`); a member not
    #: named weighs 1. Chosen on the condition matrix (README).
    weights: tuple[str, ...] = ("patch_memory:4",)
    #: Each member's score against its held-out training scores of the clip's domain ("domain": its
    #: `Detection.normalised`) or of both domains pooled ("pooled").
    normalise_by: str = "domain"
    #: In the target domain a member weighs w / (1 + shift) ** shift_power, where shift is the distance
    #: between the means of its held-out target and source scores over the narrower of their spreads: a
    #: member whose score moves with the domain has learnt the target domain from too few clips (0: the same
    #: weights in both domains).
    shift_power: float = 3.0
    #: Members' own settings as detector.setting=value (`--set member_settings=dcase_ae.epochs=20`); a setting
    #: of a detector that is not a member is ignored.
    member_settings: tuple[str, ...] = ()
    #: Mel-spaced frequency bands of the fused map, from 0 Hz to the top of the members' maps.
    map_bands: int = 32
    #: Seconds between the fused lane's frames; 0: the finest member lane's times.
    frame_step_s: float = 0.0

    def __post_init__(self) -> None:
        self.members = tuple(str(m).strip() for m in self.members if str(m).strip())
        self.member_settings = tuple(str(s) for s in self.member_settings)
        try:
            weights = {name.strip(): float(value) for name, _, value in (w.partition(":") for w in self.weights)}
        except ValueError:
            weights = {"": -1.0}
        if (
            any(w < 0 or not np.isfinite(w) for w in weights.values())
            or set(weights) - set(eligible_members())
            or all(weights.get(m, 1.0) == 0 for m in self.members)
        ):
            raise EarmarkError(
                f"ensemble: weights must be detector:weight pairs such as patch_memory:2 (a weight "
                f"of 0 or more, not 0 for every member, for detectors among "
                f"{', '.join(eligible_members())}), not "
                f"{','.join(self.weights)}"
            )
        if self.fusion not in FUSIONS:
            raise EarmarkError(f"ensemble: fusion must be one of {', '.join(FUSIONS)}, not {self.fusion!r}")
        if self.normalise_by not in NORMALISE_BY:
            raise EarmarkError(
                f"ensemble: normalise_by must be one of {', '.join(NORMALISE_BY)}, not {self.normalise_by!r}"
            )
        fitted_on_normals = [k for k in CATALOGUE.keys() if k != KEY]
        unknown = [m for m in self.members if m not in fitted_on_normals]
        if unknown or len(set(self.members)) < 2 or len(set(self.members)) != len(self.members):
            raise EarmarkError(
                f"ensemble: members must be two or more different detectors among "
                f"{', '.join(fitted_on_normals)}, not {','.join(self.members) or 'none'}"
            )
        if self.map_bands < 1 or self.frame_step_s < 0:
            raise EarmarkError("ensemble: map_bands must be at least 1 and frame_step_s at least 0")
        if not 0 <= self.shift_power <= MAX_SHIFT_POWER:
            raise EarmarkError(
                f"ensemble: shift_power must lie between 0 and {MAX_SHIFT_POWER:g}, not {self.shift_power:g}"
            )
        for member in eligible_members():
            CATALOGUE.make_config(member, self.settings_for(member))  # a wrong member setting fails now, not mid-fit

    def weight(self, member: str) -> float:
        """The member's weight in the mean (1 where `weights` does not name it)."""
        return next((float(v) for k, _, v in (w.partition(":") for w in self.weights) if k.strip() == member), 1.0)

    def settings_for(self, member: str) -> dict[str, str]:
        """The settings given for `member` in `member_settings`."""
        settings: dict[str, str] = {}
        last: tuple[str, str] | None = None
        for piece in self.member_settings:  # "knn.augment_snrs=0,10" arrives split at its comma: rejoin it
            if "=" not in piece and last is not None:
                if last[0] == member:
                    settings[last[1]] += f",{piece.strip()}"
                continue
            name, sep, value = piece.partition("=")
            owner, dot, setting = name.strip().partition(".")
            if not sep or not dot or owner not in eligible_members():
                raise EarmarkError(
                    f"ensemble: member setting {piece!r} is not of the form detector.setting=value "
                    f"for a detector among {', '.join(eligible_members())}"
                )
            last = (owner, setting.strip())
            if owner == member:
                settings[last[1]] = value.strip()
        return settings


class EnsembleDetector(Detector):
    key = KEY
    title = "Ensemble of detectors"
    Config = EnsembleConfig
    config: EnsembleConfig

    def __init__(self, config: EnsembleConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.members: list[Detector] = []

    @classmethod
    def from_members(
        cls,
        members: Sequence[Detector],
        config: EnsembleConfig | None = None,
        **kwargs,
    ) -> EnsembleDetector:
        """A fitted ensemble of already fitted detectors (fitted on the same group's clips): only the
        combination is learnt. `config`'s members are set to the detectors given."""
        members = list(members)
        for member in members:
            member._require_fitted()
        keys = tuple(m.key for m in members)
        config = dataclasses.replace(config or cls.Config(members=keys), members=keys)
        ensemble = cls(config, **{"cache": members[0].cache, "device": members[0].device, **kwargs})
        ensemble.members = members
        ensemble.held_out_domains = {}
        training = ensemble._combine()
        ensemble._learn_thresholds(training)
        ensemble._learn_normalisation(training, [])
        counts = {name: max(int(m.info.get(name, 0)) for m in members) for name in ("trained_on", "source", "target")}
        ensemble.info.update(counts)
        if counts["trained_on"] < FEW_NORMALS:
            ensemble.info["warning"] = few_normals_warning(counts["trained_on"], len(training.clip_scores))
        return ensemble

    # -- fitting ----------------------------------------------------------------------------------------------
    def _fit(self, normals: list[Clip], supplemental: list[Clip], progress: Progress) -> TrainingScores:
        keys = self.config.members
        configs = [CATALOGUE.make_config(key, self.config.settings_for(key)) for key in keys]
        shares = spans(
            [CATALOGUE.detector_class(key).fit_seconds(config, 1.0) for key, config in zip(keys, configs, strict=True)]
        )
        self.members = []
        for index, (key, config, share) in enumerate(zip(keys, configs, shares, strict=True)):
            member = CATALOGUE.detector_class(key)(config, cache=self.cache, device=self.device)
            member.fit([*normals, *supplemental], progress.child(f"{key} ({index + 1}/{len(keys)}): ", span=share))
            self.members.append(member)
        return self._combine()

    def _enrol(self, clips: list[Clip], progress: Progress) -> TrainingScores:
        for index, member in enumerate(self.members):
            member.enrol(clips, progress.child(f"{member.key}: ", index, len(self.members)))
        return self._combine()

    def _combine(self) -> TrainingScores:
        """The ensemble's held-out scores: each training normal's held-out scores, normalised by each member
        that held it out (`left_out_normalised`), fused over those members (aligned by clip id) with the
        weights of the clip's domain. The frame threshold: the members' frame thresholds, normalised, fused
        the same way. Records the members in `info`."""
        ids: dict[str, None] = {}
        self.held_clips = list(dict.fromkeys(c for m in self.members for c in m.held_clips))
        for member in self.members:
            ids.update(dict.fromkeys(member.held_out_by_clip))
            self.held_out_domains.update(member.held_out_domains)
        normalised = [left_out_normalised(m, self.config.normalise_by == "domain") for m in self.members]
        self._learn_target_weights()
        weights = {domain: self.member_weights(domain) for domain in (*DOMAINS, None)}
        fused = []
        for clip_id in ids:
            chosen = [
                (n[clip_id], w) for n, w in zip(normalised, weights[self._domain(clip_id)], strict=True) if clip_id in n
            ]
            fused.append(float(fuse(np.array([v for v, _ in chosen]), self.config.fusion, [w for _, w in chosen])))
        if not ids:
            raise EarmarkError(
                "ensemble: its members kept no held-out training scores to learn a threshold "
                "from; fit the ensemble again"
            )
        levelled = [m for m in self.members if m.frame_threshold is not None]
        frame_levels = [float(m.normalise_frames(np.array([m.frame_threshold]))[0]) for m in levelled]
        level = (
            fuse(np.array(frame_levels), self.config.fusion, [self.config.weight(m.key) for m in levelled])
            if frame_levels
            else np.nan
        )
        if np.isfinite(level):
            self.frame_threshold = float(level)
        self.info["frame_normalisation"] = [0.0, 1.0]  # fused lanes are already on the members' normalised scale
        self.info["members"] = [_member_record(m) for m in self.members]
        return TrainingScores(np.asarray(fused, dtype=np.float64), np.zeros(0), list(ids))

    def _domain(self, clip_id: str) -> str | None:
        domain = self.held_out_domains.get(clip_id)
        return domain if domain in DOMAINS else None

    def _learn_target_weights(self) -> None:
        """Each member's weight in the target domain, kept in `info` (for the mean; min and max take no
        weights): its `weights` entry over (1 + its domain shift) ** `shift_power` (`normalisation.domain_shift`,
        from its held-out scores), computed in logs and kept above 0, so that no shift empties a domain."""
        if self.config.fusion != "mean":
            self.info.pop("target_weights", None)
            return
        power = self.config.shift_power
        self.info["target_weights"] = {
            m.key: self.config.weight(m.key)
            * math.exp(max(-power * math.log1p(domain_shift(m.info.get("normalisation"))), -700.0))
            for m in self.members
        }

    def member_weights(self, domain: str | None) -> list[float]:
        """Each member's weight in the mean of a clip score of `domain`: its `weights` entry, and in the target
        domain the weight learnt with the members (a model saved before those were learnt weighs both
        domains alike)."""
        learnt = self.info.get("target_weights", {}) if domain == "target" else {}
        return [float(learnt.get(m.key, self.config.weight(m.key))) for m in self.members]

    # -- scoring ----------------------------------------------------------------------------------------------
    def _detect(self, clips: Sequence[Clip], progress: Progress) -> list[Detection]:
        heard: dict[str, str] = {}
        found: list[dict[str, Detection]] = []
        for index, member in enumerate(self.members):
            step = progress.child(f"{member.key}: ", index, len(self.members))
            # Every member meets the same unreadable clip: the user hears of it once, from the first.
            step._on_problem = lambda line: heard.setdefault(line.partition(":")[0], line)
            found.append({d.clip_id: d for d in member.score(clips, step)})
        for line in heard.values():
            progress.problem(line)
        # The weights, looked up once: per domain for the clip score, as given for lanes and maps.
        keys = [m.key for m in self.members]
        weights = {domain: dict(zip(keys, self.member_weights(domain), strict=True)) for domain in (*DOMAINS, None)}
        detections = []
        for clip in clips:
            scored = [
                (m, by_clip[clip.clip_id])
                for m, by_clip in zip(self.members, found, strict=True)
                if clip.clip_id in by_clip
            ]
            if scored:
                detections.append(
                    self._fused(
                        clip.clip_id,
                        scored,
                        weights[clip.domain if clip.domain in DOMAINS else None],
                        weights["source"],
                    )
                )
        return detections

    def _fused(
        self,
        clip_id: str,
        scored: list[tuple[Detector, Detection]],
        weights: dict[str, float],
        frame_weights: dict[str, float],
    ) -> Detection:
        """One clip's detection from its members': normalised scores (with `weights`, those of the clip's
        domain), lanes and maps (with `frame_weights`, the weights as given: one frame threshold serves both
        domains) fused on one grid."""
        fusion = self.config.fusion
        by_domain = self.config.normalise_by == "domain"
        score = float(
            fuse(
                np.array(
                    [
                        d.normalised if by_domain else normalised_score(d.score, None, m.info.get("normalisation"))
                        for m, d in scored
                    ]
                ),
                fusion,
                [weights[m.key] for m, _ in scored],
            )
        )
        times = common_times([d.frame_times for _, d in scored], self.config.frame_step_s)
        lane = fuse(
            np.stack([lane_on(d.frame_times, m.normalise_frames(d.frame_scores), times) for m, d in scored]),
            fusion,
            [frame_weights[m.key] for m, _ in scored],
        )
        mapped = [(m, d) for m, d in scored if d.anomaly_map is not None and d.map_freq_spans_hz is not None]
        anomaly_map = bands = columns = None
        if mapped:
            bands = mel_bands(max(float(np.max(d.map_freq_spans_hz)) for _, d in mapped), self.config.map_bands)
            anomaly_map = fuse(
                np.stack(
                    [
                        map_on(m.normalise_frames(d.anomaly_map), d.map_freq_spans_hz, d.map_time_spans_s, bands, times)
                        for m, d in mapped
                    ]
                ),
                fusion,
                [frame_weights[m.key] for m, _ in mapped],
            ).astype(np.float32)
            columns = time_spans(times, end_s=max(float(np.max(d.map_time_spans_s)) for _, d in mapped))
        return Detection(
            clip_id,
            score,
            False,
            lane.astype(np.float32),
            times,
            anomaly_map=anomaly_map,
            map_freq_spans_hz=bands,
            map_time_spans_s=columns,
        )

    # -- state: the members' tensors under their keys; their settings and thresholds in `info` ----------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        self.info["members"] = [_member_record(m) for m in self.members]
        state = {f"{m.key}.{name}": tensor for m in self.members for name, tensor in m.state_dict().items()}
        # Each member's held-out scores in its own order (its enrolment pairs them with its own arrays by
        # position), with where each clip is among the ensemble's held-out clips (sorted, as saved): kept as
        # tensors, since in `info` they would fill the project's model table.
        where = {clip_id: index for index, clip_id in enumerate(sorted(self.held_out_by_clip))}
        for member in self.members:
            state[f"{HELD_OUT}.{member.key}.scores"] = torch.tensor(
                list(member.held_out_by_clip.values()), dtype=torch.float64
            )
            state[f"{HELD_OUT}.{member.key}.clips"] = torch.tensor(
                [where[c] for c in member.held_out_by_clip], dtype=torch.long
            )
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "members" in self.info and "target_weights" not in self.info and self.config.fusion == "mean":
            # saved before target weights were learnt: it keeps the same weights in both domains, also when
            # it enrols clips later
            self.config = dataclasses.replace(self.config, shift_power=0.0)
        self.members = []
        for record in self.info.get("members", []):
            klass = CATALOGUE.detector_class(record["detector"])
            known = {f.name for f in dataclasses.fields(klass.Config)}
            member = klass(
                klass.Config(**{k: v for k, v in record["config"].items() if k in known}),
                cache=self.cache,
                device=self.device,
            )
            member.threshold, member.frame_threshold = record["threshold"], record["frame_threshold"]
            member.info = record.get("info", {})
            ids = sorted(self.held_out_by_clip)
            where = state.get(f"{HELD_OUT}.{member.key}.clips", torch.zeros(0, dtype=torch.long)).tolist()
            scores = state.get(f"{HELD_OUT}.{member.key}.scores", torch.zeros(0)).tolist()
            member.held_out_by_clip = {ids[index]: score for index, score in zip(where, scores, strict=True)}
            member.held_out_domains = {
                clip_id: self.held_out_domains.get(clip_id) for clip_id in member.held_out_by_clip
            }
            prefix = f"{member.key}."
            member.load_state_dict(
                {name[len(prefix) :]: tensor for name, tensor in state.items() if name.startswith(prefix)}
            )
            self.members.append(member)
        if not self.members:
            raise EarmarkError("this ensemble model names no members; fit the ensemble again")


def left_out_normalised(member: Detector, by_domain: bool = True) -> dict[str, float]:
    """Each held-out training score of `member`, normalised as an unseen clip of its domain is (against its
    domain's held-out scores where the domain has `MIN_PER_DOMAIN`, else against all of them; against all
    of them with `by_domain` False), but with the statistics learnt without the clip itself. Normalised with
    statistics that include it, a score cannot stray far (with 3 target clips, never beyond 1.15 standard
    deviations), and a threshold learnt from such scores sits too low for unseen clips.
    """
    ids = list(member.held_out_by_clip)
    scores = np.array([member.held_out_by_clip[i] for i in ids], dtype=np.float64)
    domains = np.array([(member.held_out_domains.get(i) or "") if by_domain else "" for i in ids])
    found = {}
    for index, clip_id in enumerate(ids):
        others = np.arange(len(ids)) != index
        same = others & (domains == domains[index]) if domains[index] in DOMAINS else np.zeros_like(others)
        chosen = same if same.sum() + 1 >= MIN_PER_DOMAIN else others
        stats = score_stats(scores[chosen]) if chosen.any() else None
        if stats is None:  # a single held-out clip: the member's own statistics are all there is
            found[clip_id] = normalised_score(scores[index], domains[index] or None, member.info.get("normalisation"))
        else:
            found[clip_id] = float((scores[index] - stats[0]) / stats[1])
    return found


def _member_record(member: Detector) -> dict:
    """What a saved ensemble keeps of a member besides its tensors (what `Detector.save` writes to JSON)."""
    return {
        "detector": member.key,
        "config": dataclasses.asdict(member.config),
        "threshold": member.threshold,
        "frame_threshold": member.frame_threshold,
        "info": dict(member.info),
    }
