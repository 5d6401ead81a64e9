"""Where `earmark` writes: label export to standard output with `-`, and files written through a symbolic
link (the link stays, the file it points at gets the new content)."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest

from engine.cli import main as earmark
from engine.files import write_text_atomic
from engine.labels.exchange import export_labels
from engine.store import Project, labels
from engine.store.labels import Region


@pytest.fixture
def labelled(tmp_path, toy_dataset):
    """A project of the small synthetic set with manual regions on two clips."""
    folder = tmp_path / "plant"
    assert earmark(["new", str(folder)]) == 0
    assert earmark(["import", str(folder), str(toy_dataset)]) == 0
    with Project.open(folder) as project:
        first, second = (c.clip_id for c in project.clips(machine_type="fan", section_id="00")[:2])
        labels.add_regions(
            project,
            [Region(first, 0.1, 0.4, "rattle"), Region(first, 0.5, 0.9, "hiss"), Region(second, 0.2, 0.3, "rattle")],
        )
    return folder, first, second


def test_labels_export_to_standard_output_is_the_csv_file_it_would_write(labelled, tmp_path, capsys):
    folder, first, second = labelled
    capsys.readouterr()
    assert earmark(["labels", "export", str(folder), "-"]) == 0
    out = capsys.readouterr().out
    with Project.open(folder) as project:
        export_labels(project, tmp_path / "labels.csv")
    assert out == (tmp_path / "labels.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["clip_id"], r["label"]) for r in rows] == [(first, "rattle"), (first, "hiss"), (second, "rattle")]
    assert not (folder.parent / "-").exists()


def test_labels_export_to_standard_output_as_json_of_chosen_labels(labelled, capsys):
    folder, first, second = labelled
    capsys.readouterr()
    assert earmark(["labels", "export", str(folder), "-", "--format", "json", "--label", "rattle"]) == 0
    text = capsys.readouterr().out
    assert "rattle" in text and "hiss" not in text
    assert json.loads(text)  # the whole of standard output is one JSON document


def test_a_one_clip_format_goes_to_standard_output_for_one_clip_only(labelled, capsys):
    folder, first, _ = labelled
    capsys.readouterr()
    assert earmark(["labels", "export", str(folder), "-", "--format", "audacity"]) == 1
    err = capsys.readouterr().err
    assert "2 clips have regions" in err and "--clip" in err and "csv" in err
    assert earmark(["labels", "export", str(folder), "-", "--format", "audacity", "--clip", first]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[2] for line in lines] == ["rattle", "hiss"]
    assert [float(line.split("\t")[0]) for line in lines] == [0.1, 0.5]


def test_labels_export_through_a_symbolic_link_keeps_the_link(labelled, tmp_path, capsys):
    folder, _, _ = labelled
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "labels.csv").write_text("old\n")
    link = tmp_path / "labels.csv"
    link.symlink_to(shared / "labels.csv")

    assert earmark(["labels", "export", str(folder), str(link)]) == 0

    assert link.is_symlink() and os.readlink(link) == str(shared / "labels.csv")
    assert (shared / "labels.csv").read_text().startswith("clip_id,")
    assert link.read_text() == (shared / "labels.csv").read_text()
    assert sorted(p.name for p in shared.iterdir()) == ["labels.csv"]  # no temporary file left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv", "plant", "shared"]


def test_writing_through_a_chain_of_links_and_a_relative_link(tmp_path):
    real = tmp_path / "real" / "settings.json"
    real.parent.mkdir()
    real.write_text("{}")
    (tmp_path / "middle.json").symlink_to(os.path.relpath(real, tmp_path))
    first = tmp_path / "first.json"
    first.symlink_to("middle.json")

    write_text_atomic(first, '{"a": 1}')

    assert first.is_symlink() and (tmp_path / "middle.json").is_symlink()
    assert real.read_text() == '{"a": 1}' and first.read_text() == '{"a": 1}'


def test_a_link_to_a_file_not_there_yet_creates_the_file(tmp_path):
    target = tmp_path / "elsewhere" / "labels.csv"
    target.parent.mkdir()
    link = tmp_path / "labels.csv"
    link.symlink_to(target)

    write_text_atomic(link, "clip_id\n")

    assert link.is_symlink() and target.read_text() == "clip_id\n"


def test_the_weights_settings_file_kept_behind_a_link_stays_linked(tmp_path, capsys, monkeypatch):
    from engine import weights

    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / weights.CONFIG_FILE).write_text("{}")
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    monkeypatch.setenv("EARMARK_CONFIG_DIR", str(config))
    (config / weights.CONFIG_FILE).symlink_to(dotfiles / weights.CONFIG_FILE)

    weights.set_allow_download(True)

    assert (config / weights.CONFIG_FILE).is_symlink()
    assert json.loads((dotfiles / weights.CONFIG_FILE).read_text())
