"""Files dropped on the window with no machine or section: scored by the models of the group they resemble
most, said to be guessed, or said to be unlike every trained group; a drop of a known group is scored by
that group's models. The drops are new recordings written outside the data set."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.data.importers import import_files
from engine.data.toy import plan, render
from engine.detectors import drops, runs
from engine.store import results
from tests.conftest import SMALL_TOY

FAN, VALVE = "fan/section_00", "valve/section_00"


def new_recording(folder: Path, machine: str, name: str, label: str = "normal", take: int = 900) -> Path:
    """A fresh recording of the synthetic set's machine (section 00): same machine, new noise and speed."""
    item = next(
        i
        for i in plan(SMALL_TOY)
        if i.machine == machine and i.section == 0 and i.split == "test" and i.label == label and i.domain == "source"
    )
    item = dataclasses.replace(item, index=take, seed=(*item.seed[:-1], take))
    samples, _ = render(item, SMALL_TOY)
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / name, samples, SMALL_TOY.sample_rate, subtype="PCM_16")
    return folder / name


@pytest.fixture
def fitted(toy_project):
    """The toy project with two groups fitted: fan and valve, section 00."""
    session = runs.Session(toy_project)
    for group in (FAN, VALVE):
        runs.fit(session, "knn", group=group)
        runs.fit(session, "dcase_ae", {"epochs": 1}, group=group)
    return session


def drop(session, *paths: Path):
    report = import_files(session.project, paths, source="inbox")
    return [session.project.clip(clip_id) for clip_id in report.clip_ids]


def test_a_dropped_recording_of_one_machine_is_scored_by_that_machines_models(fitted, tmp_path):
    project = fitted.project
    fan_files = [new_recording(tmp_path / "drops", "fan", f"fan_{k}.wav", take=900 + k) for k in range(3)]
    valve_file = new_recording(tmp_path / "drops", "valve", "valve.wav")
    clips = drop(fitted, *fan_files, valve_file)
    assert all(c.machine_type is None and c.section_id is None for c in clips)

    verdicts = {v.clip_id: v for v in drops.score_drops(fitted, clips)}
    for clip in clips[:3]:
        verdict = verdicts[clip.clip_id]
        assert verdict.group == FAN and verdict.guessed and not verdict.unlike_every_group, verdict.resemblance
        assert set(verdict.resemblance) == {FAN, VALVE}
        assert verdict.distances[FAN] < verdict.distances[VALVE]  # nearer the fan normals than the valve ones
        assert "scored by fan/section_00 (guessed: closest of 2 groups" in verdict.describe()
    assert verdicts[clips[3].clip_id].group == VALVE
    # The scores the table shows are the fan models' own, and the guess outlives the session.
    fan_models = {results.latest_models(project, d)[FAN].model_id for d in ("knn", "dcase_ae")}
    stored = results.clip_scores(project, clips[0].clip_id)[clips[0].clip_id]
    assert {s.model_id for s in stored.values()} == fan_models
    assert stored["knn"].score == pytest.approx(verdicts[clips[0].clip_id].detections["knn"].score)
    again = project.clip(clips[0].clip_id).attributes
    assert again[drops.GUESSED_GROUP] == FAN and again[drops.SCORED_BY] == FAN and drops.UNLIKE not in again


def test_a_drop_unlike_every_group_is_marked_so(fitted, tmp_path):
    rng = np.random.default_rng(4)
    t = np.arange(SMALL_TOY.sample_rate) / SMALL_TOY.sample_rate
    (tmp_path / "odd").mkdir()
    sf.write(tmp_path / "odd" / "chirp.wav", (0.8 * np.sin(2 * np.pi * (200 + 3000 * t) * t)).astype(np.float32), 16000)
    loud_hiss = np.clip(0.5 * rng.standard_normal(t.size), -1, 1)
    sf.write(tmp_path / "odd" / "hiss.wav", loud_hiss.astype(np.float32), 16000)
    clips = drop(fitted, tmp_path / "odd" / "chirp.wav", tmp_path / "odd" / "hiss.wav")
    for verdict in drops.score_drops(fitted, clips):
        assert verdict.unlike_every_group, verdict.resemblance
        assert all(r > drops.UNLIKE_RATIO for r in verdict.resemblance.values())
        assert verdict.decision == "unlike every trained group"
        assert verdict.describe().startswith("unlike every trained group")
        assert fitted.project.clip(verdict.clip_id).attributes[drops.UNLIKE] == "yes"
    # A recording of a trained machine is not.
    [fan] = drop(fitted, new_recording(tmp_path / "drops", "fan", "fan.wav"))
    [verdict] = drops.score_drops(fitted, [fan])
    assert not verdict.unlike_every_group and verdict.decision in ("normal", "anomaly")


def test_a_drop_of_a_known_group_is_scored_by_its_group_without_guessing(fitted, tmp_path):
    project = fitted.project
    [clip] = drop(fitted, new_recording(tmp_path / "drops", "fan", "fan.wav"))
    [first] = drops.score_drops(fitted, [clip], group=VALVE)  # the user's choice, for a drop of no group
    assert first.group == VALVE and first.how == drops.CHOSEN and not first.resemblance
    assert "the group chosen for drops" in first.describe()
    # The user says what it is: machine and section set afterwards, then scored again.
    with project.db.atomic():
        project.db.execute("UPDATE clips SET machine_type = 'fan', section_id = '00' WHERE clip_id = ?", [clip.clip_id])
    [verdict] = drops.score_drops(fitted, [project.clip(clip.clip_id)], group=VALVE)
    assert verdict.group == FAN and verdict.how == drops.OWN and not verdict.guessed and not verdict.resemblance
    assert verdict.describe() == "scored by fan/section_00 (its own group)"
    stored = results.clip_scores(project, clip.clip_id)[clip.clip_id]
    models = {m.model_id: m.group_key for m in results.models(project)}
    assert {models[s.model_id] for s in stored.values()} == {FAN}  # the valve models' scores are gone
    attributes = json.loads(
        project.db.execute("SELECT attributes FROM clips WHERE clip_id = ?", [clip.clip_id]).fetchone()[0]
    )
    assert attributes[drops.SCORED_BY] == FAN and drops.GUESSED_GROUP not in attributes


def test_drops_before_any_fit_say_what_to_do(toy_project, tmp_path):
    from engine.errors import EarmarkError

    session = runs.Session(toy_project)
    clips = drop(session, new_recording(tmp_path, "fan", "fan.wav"))
    with pytest.raises(EarmarkError, match="no detector is fitted yet"):
        drops.score_drops(session, clips)


def test_group_fields_read_a_group_key():
    assert drops.group_fields("fan/section_00") == ("fan", "00")
    assert drops.group_fields("unknown/section_none") == (None, None)
    assert drops.group_fields(results.ALL_GROUPS) == (None, None)


def test_a_groups_threshold_comes_from_each_normals_distance_to_its_nearest_fellow():
    bank = np.random.default_rng(1).normal(size=(700, 8))  # more rows than one block
    brute = np.linalg.norm(bank[:, None] - bank[None], axis=2)
    np.fill_diagonal(brute, np.inf)
    assert np.allclose(drops._nearest_other(bank), brute.min(1))


def test_with_no_training_normals_left_to_compare_with_the_user_is_told_to_choose_the_group(fitted, tmp_path):
    from engine.errors import EarmarkError

    project = fitted.project
    with project.db.atomic():  # the training clips were set to another split after the models were fitted
        project.db.execute("UPDATE clips SET split = 'supplemental' WHERE split = 'train'")
    clips = drop(fitted, new_recording(tmp_path, "fan", "fan.wav"))
    with pytest.raises(EarmarkError, match="Score drops with"):
        drops.score_drops(fitted, clips)
    [chosen] = drops.score_drops(fitted, clips, group=FAN)
    assert chosen.group == FAN and chosen.detections
