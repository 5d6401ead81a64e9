"""`earmark debug freeze|splits|recon` as a user types them on a small synthetic project: the freeze run's CSV
and chart, the ok / ng split files and their counts, and the reconstruction error of each split."""

from __future__ import annotations

import csv
import re
import struct
import zlib
from pathlib import Path

import pytest

from engine.files import safe_name
from engine.line_chart import COLOURS
from engine.store import Project, results
from tests.engine.test_cli import earmark

GROUP = "fan/section_00"
#: The trained detectors, with the parts of their loss (each logged as loss_<part>) and a short training.
DETECTORS = {"ast_ae": (("latent", "reconstruction"), "epochs=10"), "dcase_ae": (("reconstruction",), "epochs=20")}


@pytest.fixture(scope="module")
def plant(tmp_path_factory) -> Path:
    """A project of one machine and section: 13 normal training clips, 10 normal and 10 anomalous test clips."""
    folder = tmp_path_factory.mktemp("debug")
    made = earmark(
        "toy",
        folder / "toy",
        "--scale",
        "0.01",
        "--seed",
        "3",
        "--duration",
        "1",
        "--sections",
        "1",
        "--machines",
        "fan",
    )
    assert made.returncode == 0, made.stderr
    assert earmark("new", folder / "plant").returncode == 0
    assert earmark("import", folder / "plant", folder / "toy").returncode == 0
    return folder / "plant"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG, after checking it decodes: signature, chunk CRCs, and image data of the
    size its header promises (8-bit RGB, one filter byte per row)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = {}, 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        body = data[at + 8 : at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length : at + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        at += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2) and b"IEND" in chunks
    rows = zlib.decompress(chunks[b"IDAT"])
    assert len(rows) == height * (1 + 3 * width)
    pixels = {
        bytes(rows[at : at + 3])
        for r in range(height)
        for at in range(r * (1 + 3 * width) + 1, (r + 1) * (1 + 3 * width), 3)
    }
    assert {bytes(COLOURS[0]), bytes(COLOURS[1])} <= pixels  # the first two curves were drawn
    return width, height


def frozen_run(plant: Path, detector: str, branch: str) -> list[dict[str, str]]:
    done = earmark(
        "debug",
        "freeze",
        plant,
        "--detector",
        detector,
        "--branch",
        branch,
        "--epochs",
        "3",
        "--group",
        GROUP,
        "--device",
        "cpu",
    )
    assert done.returncode == 0, done.stderr
    logs = plant / "artifacts" / "logs"
    assert f"Wrote {logs / f'debug_freeze_{branch}.csv'} and {logs / f'debug_freeze_{branch}.png'}" in done.stdout
    assert png_size(logs / f"debug_freeze_{branch}.png") == (800, 600)
    return read_csv(logs / f"debug_freeze_{branch}.csv")


@pytest.mark.parametrize("detector", DETECTORS)
@pytest.mark.parametrize(("frozen", "free"), [("encoder", "decoder"), ("decoder", "encoder")])
def test_freeze_writes_the_curves_with_the_frozen_branch_still_and_the_other_learning(plant, detector, frozen, free):
    parts = [f"loss_{part}" for part in DETECTORS[detector][0]]
    with Project.open(plant) as project:
        models = results.models(project)

    rows = frozen_run(plant, detector, frozen)

    assert list(rows[0]) == ["epoch", "train_loss", *parts, "grad_norm_encoder", "grad_norm_decoder", "seconds"]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(float(r[f"grad_norm_{frozen}"]) == 0.0 for r in rows)
    assert all(float(r[f"grad_norm_{free}"]) > 0.0 for r in rows)
    for row in rows:  # the total is the sum of the parts
        assert float(row["train_loss"]) == pytest.approx(sum(float(row[p]) for p in parts), rel=1e-4)
        assert all(0.0 <= float(row[p]) < 1e3 for p in parts)
    # A scratch run: the project's models are as they were, and the Training curves dialog finds the run.
    with Project.open(plant) as project:
        assert results.models(project) == models
        from engine.histories import training_histories

        names = [h.name for h in training_histories(project).found]
    assert f"{detector} · {GROUP} · debug run, {frozen} frozen" in names
    scratch = plant / "artifacts" / "logs" / "debug_freeze" / detector / safe_name(GROUP) / frozen
    assert sorted(p.name for p in scratch.iterdir()) == ["history.json", "run.json"]  # no weights kept


@pytest.mark.parametrize("detector", DETECTORS)
def test_freeze_names_the_branches_a_detector_has(plant, detector):
    wrong = earmark("debug", "freeze", plant, "--detector", detector, "--branch", "b3", "--epochs", "1")
    untrained = earmark("debug", "freeze", plant, "--detector", "knn", "--branch", "encoder")

    assert wrong.returncode == 1
    assert f"{detector} has no branch 'b3'; its branches are: encoder, decoder" in wrong.stderr
    assert untrained.returncode == 1 and "knn does not train a network with branches" in untrained.stderr
    assert detector in untrained.stderr


def test_splits_lists_the_groups_normal_and_anomalous_test_clips(plant):
    done = earmark("debug", "splits", plant, "--group", GROUP)

    assert done.returncode == 0, done.stderr
    assert f"{GROUP}: ok 10 clip(s) (normal), ng 10 clip(s) (anomalous)" in done.stdout
    with Project.open(plant) as project:
        tests = project.clips(split="test")
    folder = plant / "artifacts" / "logs" / "debug_splits" / safe_name(GROUP)
    for name, label in (("ok", "normal"), ("ng", "anomaly")):
        rows = read_csv(folder / f"{name}.csv")
        assert [r["clip_id"] for r in rows] == [c.clip_id for c in tests if c.label == label]
        assert all(Path(r["path"]).is_file() and r["label"] == label for r in rows)

    unknown = earmark("debug", "splits", plant, "--group", "pump/section_07")
    assert unknown.returncode == 1 and f"groups that have some: {GROUP}" in unknown.stderr


def recon_figures(stdout: str) -> dict[str, tuple[float, float, int, int]]:
    """split -> (mean, std, frames, clips) from `debug recon`'s lines."""
    found = {}
    for name, mean, std, frames, clips in re.findall(
        r"^  (ok|ng): mean (\S+), std (\S+) over (\d+) frame\(s\) of (\d+) clip\(s\)$", stdout, re.MULTILINE
    ):
        found[name] = (float(mean), float(std), int(frames), int(clips))
    return found


@pytest.mark.parametrize("detector", DETECTORS)
def test_recon_prints_mean_and_spread_of_frame_error_on_each_split(plant, detector):
    earmark("debug", "splits", plant, "--group", GROUP)  # as written, whatever an earlier test did to them
    missing = earmark("debug", "recon", plant, "--detector", detector, "--group", GROUP)
    assert missing.returncode == 1 and f"no fitted {detector} model for fan/section_00" in missing.stderr
    fitted = earmark(
        "fit", plant, "--detector", detector, "--group", GROUP, "--set", DETECTORS[detector][1], "--device", "cpu"
    )
    assert fitted.returncode == 0, fitted.stderr

    done = earmark("debug", "recon", plant, "--detector", detector, "--group", GROUP, "--device", "cpu")

    assert done.returncode == 0, done.stderr
    figures = recon_figures(done.stdout)
    assert set(figures) == {"ok", "ng"}
    for mean, std, frames, clips in figures.values():
        assert clips == 10 and frames >= clips and mean > 0 and std > 0
    # On the synthetic set, anomalies reconstruct worse than normal clips.
    assert figures["ng"][0] > figures["ok"][0]

    # An edited split file is what recon reads: two ok clips kept.
    ok = plant / "artifacts" / "logs" / "debug_splits" / safe_name(GROUP) / "ok.csv"
    ok.write_text("\n".join(ok.read_text().splitlines()[:3]) + "\n")
    edited = earmark("debug", "recon", plant, "--detector", detector, "--group", GROUP, "--device", "cpu")
    assert edited.returncode == 0 and recon_figures(edited.stdout)["ok"][3] == 2
    assert f"{GROUP}: ok 2 clip(s) (normal), ng 10 clip(s) (anomalous); read" in edited.stdout


def test_recon_says_when_a_detector_has_no_reconstruction(plant):
    done = earmark("debug", "recon", plant, "--detector", "knn", "--group", GROUP)

    assert done.returncode == 1
    assert "knn does not reconstruct its input" in done.stderr
    assert all(detector in done.stderr for detector in DETECTORS)


def test_a_cancelled_freeze_run_leaves_no_scratch_folder_behind(plant):
    import torch

    from engine.debugging import freeze, freeze_folder
    from engine.detectors.runs import Session
    from engine.jobs import Cancelled, Progress

    def cancel_in_training(done: int, total: int, message: str) -> None:
        if "epoch" in message:  # the user cancels once training has begun (checkpoints are being written)
            progress.cancel()

    progress = Progress(cancel_in_training)
    with Project.open(plant) as project:
        with pytest.raises(Cancelled):
            freeze(Session(project, torch.device("cpu")), "dcase_ae", "encoder", 3, GROUP, None, progress)
        assert not freeze_folder(project, "dcase_ae", GROUP, "encoder").exists()
