"""Progress a user can read: nested steps (detector, group, epoch) roll up into one overall fraction of the
job, with the time left, in the terminal bar as in the window."""

from __future__ import annotations

import io

import pytest

from engine.jobs import UNITS, Cancelled, RecordingProgress, TerminalProgress, TimeLeft, describe_time_left, spans


def fractions(progress: RecordingProgress) -> list[float]:
    return [done / total for done, total, *_ in progress.updates if total]


def test_epoch_66_of_the_first_section_of_the_first_detector_is_two_percent_of_fit_all():
    job = RecordingProgress()
    for d in range(3):
        detector = job.child(f"detector ({d + 1}/3): ", d, 3)
        for g in range(9):
            group = detector.child(f"section {g:02d} ({g + 1}/9): ", g, 9)
            for epoch in range(100):
                group.update(epoch + 1, 100, f"epoch {epoch + 1}/100")
                if (d, g, epoch) == (0, 0, 65):
                    done, total, message, _ = job.updates[-1]
                    assert total == UNITS
                    assert done / total == pytest.approx(0.66 / 27, abs=1e-3)  # ~2 %, not 66 %
                    assert message == "detector (1/3): section 00 (1/9): epoch 66/100"
    values = fractions(job)
    assert values == sorted(values), "the overall fraction never goes back"
    assert values[-1] == 1.0
    assert len(values) == 2700


def test_a_step_that_starts_a_second_phase_never_moves_the_job_backwards():
    job = RecordingProgress()
    first = job.child("group 1: ", 0, 2)
    first.update(10, 10, "features")  # the first phase ends at the group's share ...
    first.update(1, 100, "epoch 1")  # ... and training starts again at zero
    second = job.child("group 2: ", 1, 2)
    second.update(1, 2, "epoch 1")
    assert fractions(job) == [0.5, 0.5, 0.75]


def test_a_plain_child_passes_its_counts_through_as_before():
    job = RecordingProgress()
    job.child("importing: ").update(3, 7, "a.wav")
    assert job.updates[-1][:3] == (3, 7, "importing: a.wav")


def test_a_plain_child_inside_a_share_rolls_up_with_it():
    job = RecordingProgress()
    job.child("b: ", 1, 2).child("threshold: ").update(1, 2, "x")
    assert job.updates[-1][:3] == (UNITS * 3 // 4, UNITS, "b: threshold: x")


def test_spans_follow_the_weights_of_the_steps():
    assert spans([1, 3]) == [(0.0, 0.25), (0.25, 1.0)]
    assert spans([0, 0]) == [(0.0, 0.5), (0.5, 1.0)]


def test_cancelling_the_job_stops_its_innermost_step():
    job = RecordingProgress(cancel_after=2)
    step = job.child("a: ", 0, 2).child("b: ", 0, 3)
    step.update(1, 10)
    with pytest.raises(Cancelled):
        step.update(2, 10)


def test_time_left_comes_from_the_rate_of_the_overall_fraction_once_enough_time_has_passed():
    clock = TimeLeft(min_elapsed_s=5.0)
    assert clock.add(0.0, now=100.0) is None
    assert clock.add(0.01, now=101.0) is None  # too early to say
    for second in range(2, 31):
        left = clock.add(0.01 * second, now=100.0 + second)
    assert left == pytest.approx(70.0, rel=0.05)  # 1 % a second, 30 % done
    assert describe_time_left(left) == "about 1 min left"
    assert describe_time_left(30) == "less than a minute left"
    assert describe_time_left(250 * 60) == "about 4 h 10 min left"
    assert describe_time_left(None) == ""


def test_the_terminal_bar_shows_the_overall_fraction_on_a_fixed_scale_with_the_step_message(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with TerminalProgress("fitting", delay_s=0) as job:
        seen = []
        for g, epochs in enumerate((20, 40)):  # a total that differs per step ...
            group = job.child(f"fan {g} ({g + 1}/2): ", g, 2)
            for epoch in range(epochs // 2):
                group.update(epoch + 1, epochs, f"epoch {epoch + 1}/{epochs}")
                seen.append((job._bar.total, job._bar.n))
        assert {total for total, _ in seen} == {1000}  # ... never changes the bar's
        assert [n for _, n in seen] == sorted(n for _, n in seen)
        assert job._bar.n == 750
        assert job._bar.postfix.endswith("fan 1 (2/2): epoch 20/40")


def test_a_real_fit_over_two_groups_reports_one_fraction_that_only_grows(toy_project):
    from engine.detectors import runs

    groups = sorted({c.group for c in toy_project.clips(split="train")})
    assert len(groups) >= 2
    job = RecordingProgress()
    runs.fit(runs.Session(toy_project), "dcase_ae", {"epochs": 3}, progress=job)
    values = fractions(job)
    assert values == sorted(values) and values[-1] == 1.0
    first_group = [done / total for done, total, message, _ in job.updates if f"(1/{len(groups)})" in message]
    last_group = [
        done / total for done, total, message, _ in job.updates if f"({len(groups)}/{len(groups)})" in message
    ]
    assert max(first_group) <= 1 / len(groups) + 1 / UNITS  # the first group's epochs fill only its own share
    assert min(last_group) >= (len(groups) - 1) / len(groups) - 1 / UNITS
    assert any("epoch 3/3" in message for *_, message, _ in job.updates)


def test_the_fit_estimate_grows_with_the_epochs_and_names_groups_and_detectors(toy_project):
    from engine.fit_estimate import estimate_fit

    clips = toy_project.clips()
    groups = len({c.group for c in clips if c.split == "train"})
    short = estimate_fit(clips, ["knn", "dcase_ae"], {"epochs": 10})
    long = estimate_fit(clips, ["knn", "dcase_ae"], {"epochs": 100})
    assert long.seconds_by_detector["dcase_ae"] > 5 * short.seconds_by_detector["dcase_ae"]
    assert long.seconds_by_detector["knn"] == short.seconds_by_detector["knn"]
    assert long.describe().startswith(f"2 detector(s) x {groups} group(s)")
    assert len(long.weights()) == 2 and long.weights()[1] > long.weights()[0]
