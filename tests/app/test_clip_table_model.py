"""The clip table sorts and filters a large project with numpy; these check it against the plain Python a
reader can follow (every column's shown text, Python's stable sort) on a few hundred made-up clips with
missing scores, empty fields and dropped files scored by a guessed group: the order and the rows shown
must be exactly those. Also: `show_only` (the evaluation dock's "these clips"), the selection following
its clips through a sort and a filter, a dropped clip's row appearing in place, and the reads from a
project giving the same rows as the engine's own `Project.clips()` and `results.clip_scores()`."""

from __future__ import annotations

import json
import random

import pytest
from PySide6.QtCore import Qt

from app.views.clip_columns import ClipColumns, ClipRow
from app.views.clip_table import FIXED, ClipTable
from engine.audio.io import QA
from engine.data.clip import Clip
from engine.data.qa_flags import qa_text
from engine.detectors import drops
from engine.store import Project, results
from engine.store.clip_records import clip_from_record, clip_records
from engine.store.results import ClipScore

DETECTORS = ("knn", "patch_memory")


def made_up_rows(count: int = 300, seed: int = 3) -> list[ClipRow]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        dropped = i % 17 == 0
        machine = None if dropped else rng.choice(["fan", "pump", "valve", "Slider"])
        section = None if dropped else rng.choice(["00", "01", None])
        attributes = {}
        if dropped and i % 34 == 0:
            attributes = {drops.GUESSED_GROUP: "pump/section_01"}
            if i % 68 == 0:
                attributes[drops.UNLIKE] = "yes"
        qa = None if i % 11 == 0 else QA(rng.uniform(-80, -5), 0.5, rng.choice([0.0, 0.01]), rng.random())
        clip = Clip(
            f"clip_{i:04d}",
            f"/data/{machine}/{rng.choice(['a', 'b', 'B'])}_{rng.randrange(60):02d}.wav",  # names repeat
            16000,
            round(rng.choice([0.1, 2.0, 10.0, 10.5]), 1),
            machine,
            section,
            rng.choice(["source", "target", None]),
            rng.choice(["train", "test", None]),
            rng.choice(["normal", "anomaly", None]),
            attributes,
            qa=qa,
            checksum=f"{i:08x}",
        )
        scores = {}
        for m, detector in enumerate(DETECTORS):
            if rng.random() < 0.8:
                normalised = None if rng.random() < 0.1 else rng.gauss(0, 2)
                scores[detector] = ClipScore(
                    10 + m, round(rng.uniform(0, 3), 2), rng.random() < 0.4, None, normalised
                )  # rounded: equal scores, whose order must stay the import order
        rows.append(ClipRow(clip, "inbox" if dropped else "dcase", scores))
    return rows


def shown_text(row: ClipRow, column: int, decision_detector: str, normalised: bool) -> str:
    """A cell's text, worked out the long way."""
    clip = row.clip
    guessed = clip.attributes.get(drops.GUESSED_GROUP) if clip.machine_type is None or clip.section_id is None else None
    machine, section = clip.machine_type, clip.section_id
    if guessed:
        part_machine, part_section = drops.group_fields(guessed)
        machine = machine if machine is not None else f"{part_machine} (guessed)"
        section = section if section is not None else f"{part_section} (guessed)"
    if column < len(FIXED):
        values = [row.name, machine, section, clip.domain, clip.split, clip.label, qa_text(clip.duration_s, clip.qa)]
        if column == len(FIXED) - 1:
            return f"{clip.duration_s:.1f} s"
        return values[column] or ""
    if column < len(FIXED) + len(DETECTORS):
        found = row.scores.get(DETECTORS[column - len(FIXED)])
        value = None if found is None else found.normalised if normalised else found.score
        return "" if value is None else f"{value:.4g}"
    found = row.scores.get(decision_detector)
    if found is None:
        return ""
    if guessed and clip.attributes.get(drops.UNLIKE):
        return drops.UNLIKE_TEXT
    return "anomaly" if found.decision else "normal"


def sort_key(row: ClipRow, column: int, normalised: bool, decision_detector: str):
    if column == len(FIXED) - 1:
        return row.clip.duration_s
    if len(FIXED) <= column < len(FIXED) + len(DETECTORS):
        found = row.scores.get(DETECTORS[column - len(FIXED)])
        value = None if found is None else found.normalised if normalised else found.score
        return -float("inf") if value is None else value
    return shown_text(row, column, decision_detector, normalised)


@pytest.fixture
def table(qtbot):
    table = ClipTable()
    qtbot.addWidget(table)
    rows = made_up_rows()
    table.model.set_rows(rows, list(DETECTORS))
    table.rows_made = rows
    return table


def test_every_column_sorts_as_pythons_stable_sort_both_ways(table):
    rows = table.rows_made
    for normalised in (False, True):
        table.model.set_normalised(normalised)
        for column in range(table.model.columnCount()):
            for order in (Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder):
                table.view.sortByColumn(column, order)
                expected = sorted(
                    rows,
                    key=lambda r: sort_key(r, column, normalised, "knn"),  # noqa: B023 (used at once)
                    reverse=order == Qt.SortOrder.DescendingOrder,
                )
                assert table.visible_clip_ids() == [r.clip.clip_id for r in expected], (column, order, normalised)


def test_the_cells_show_what_the_rows_hold(table):
    rows, proxy = table.rows_made, table.proxy
    table.view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    table.model.set_decision_detector("patch_memory")
    by_id = {r.clip.clip_id: r for r in rows}
    for shown, clip_id in enumerate(table.visible_clip_ids()):
        for column in range(proxy.columnCount()):
            cell = proxy.data(proxy.index(shown, column))
            assert cell == shown_text(by_id[clip_id], column, "patch_memory", False), (clip_id, column)


@pytest.mark.parametrize("text", ["pump", "GUESSED", "anomaly", "1.5", "unlike", "b_0", "silent", " s", "zzz", "0"])
def test_the_text_filter_shows_the_rows_with_the_text_in_any_column(table, text):
    rows = table.rows_made
    table.view.sortByColumn(3, Qt.SortOrder.AscendingOrder)
    table.filter_box.setText(text)
    wanted = text.strip().lower()
    expected = sorted(
        (
            r
            for r in rows
            if any(wanted in shown_text(r, c, "knn", False).lower() for c in range(table.model.columnCount()))
        ),
        key=lambda r: sort_key(r, 3, False, "knn"),
    )
    assert table.visible_clip_ids() == [r.clip.clip_id for r in expected]


def test_the_tree_node_the_text_and_show_only_all_apply(table):
    rows = table.rows_made
    table.proxy.set_where({"machine_type": "pump", "section_id": None})
    assert set(table.visible_clip_ids()) == {
        r.clip.clip_id for r in rows if r.clip.machine_type == "pump" and r.clip.section_id is None
    }
    table.proxy.set_where({"inbox": True})
    inbox = {r.clip.clip_id for r in rows if r.source == "inbox"}
    assert set(table.visible_clip_ids()) == inbox
    chosen = [r.clip.clip_id for r in rows[:40]] + ["not_a_clip"]
    table.show_only(chosen, "histogram bar 0.31-0.35")
    both = inbox & set(chosen)
    assert set(table.visible_clip_ids()) == both
    assert table.only_line.isVisibleTo(table)
    assert f"showing {len(both)} of 40 clips" in table.only_line.text()
    assert "histogram bar 0.31-0.35" in table.only_line.text() and "clear" in table.only_line.text()
    table.proxy.set_where({})
    assert set(table.visible_clip_ids()) == set(chosen[:40])
    assert table.only_line.text().startswith("showing 40 clips of histogram bar")
    table.only_line.linkActivated.emit("clear")  # the link: every clip again
    assert len(table.visible_clip_ids()) == len(rows) and not table.only_line.isVisibleTo(table)
    table.show_only([])
    assert table.visible_clip_ids() == []


def test_the_selection_follows_its_clips_through_a_sort_and_a_filter(table, qtbot):
    rows = table.rows_made
    picked = [r.clip.clip_id for r in rows[10:60:7]]
    table.select(picked[0])
    table.select_clips(picked)
    assert sorted(table.selected_clip_ids()) == sorted(picked)
    changes = []
    table.clip_selected.connect(changes.append)
    table.view.sortByColumn(len(FIXED), Qt.SortOrder.DescendingOrder)
    assert sorted(table.selected_clip_ids()) == sorted(picked)
    current = table.proxy.source_row(table.view.currentIndex().row())
    assert table.model.clip_id(current) == picked[0] and changes == []  # still the same clip: nothing said
    by_id = {r.clip.clip_id: r.clip for r in rows}
    for fields in table.selected_clip_fields():  # what Clip properties shows, without a Clip per row
        clip = by_id[fields.clip_id]
        assert fields[1:] == (clip.machine_type, clip.section_id, clip.domain, clip.split, clip.label)
    assert [f.clip_id for f in table.selected_clip_fields()] == table.selected_clip_ids()
    machine = next(r.clip.machine_type for r in rows[10:60:7] if r.clip.machine_type)
    table.proxy.set_where({"machine_type": machine})
    kept = {r.clip.clip_id for r in rows[10:60:7] if r.clip.machine_type == machine}
    assert set(table.selected_clip_ids()) == kept
    # A clip the filters hide is shown again when selected with `reveal`.
    hidden = next(r.clip.clip_id for r in rows if r.clip.machine_type != machine)
    assert not table.select(hidden, reveal=False)
    assert table.select(hidden) and hidden in table.visible_clip_ids()


def test_names_sources_and_tooltips_come_from_the_rows(table):
    rows, model = table.rows_made, table.model
    assert model.clip_names() == {r.clip.clip_id: r.name for r in rows}
    assert [model.source_of(r.clip.clip_id) for r in rows] == [r.source for r in rows]
    assert model.source_of("not_a_clip") is None
    measured = next(i for i, r in enumerate(rows) if r.clip.qa is not None)
    tip = model.data(model.index(measured, FIXED.index("QA")), Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith(f"level {rows[measured].clip.qa.rms:.1f} dBFS")
    assert model.data(model.index(0, 0), Qt.ItemDataRole.ToolTipRole) == rows[0].clip.path


def test_a_dropped_clip_is_added_in_its_sorted_place_and_a_rescored_one_moves(table):
    rows = table.rows_made
    table.view.sortByColumn(len(FIXED), Qt.SortOrder.DescendingOrder)  # knn, highest first
    clip = Clip("dropped_new", "/drops/new.wav", 16000, 10.0)
    table.model.upsert(ClipRow(clip, "inbox", {"knn": ClipScore(10, 99.0, True, None, 5.0)}))
    assert table.visible_clip_ids()[0] == "dropped_new" and len(table.visible_clip_ids()) == len(rows) + 1
    row = table.model.rows[table.model.row_of("dropped_new")]
    assert row.source == "inbox" and row.scores["knn"].score == 99.0 and row.clip == clip
    table.model.upsert(ClipRow(clip, "inbox", {"knn": ClipScore(10, -1.0, False, None, None)}))
    scored = sum(1 for r in rows if "knn" in r.scores)  # the lowest score, above the clips without one
    assert table.visible_clip_ids().index("dropped_new") == scored and len(table.model.rows) == len(rows) + 1
    # A detector the table has no column for yet gets one.
    table.model.upsert(ClipRow(clip, "inbox", {"ensemble": ClipScore(12, 0.5, False, None, None)}))
    assert "ensemble" in table.model.detectors and table.model.columnCount() == len(FIXED) + len(DETECTORS) + 2


def test_rows_read_from_a_project_are_those_of_the_engines_own_reads(tmp_path):
    project = Project.create(tmp_path / "project")
    made = made_up_rows(40)
    project.add_clips([r.clip for r in made], "dcase")
    model_id, _ = results.add_model(project, "knn", "fan/section_00", {}, 1.0, {"warning": "fitted on 3 normals"})
    newer, _ = results.add_model(project, "knn", "fan/section_00", {}, 1.0)
    results.write_scores(project, model_id, [(r.clip.clip_id, 1.0, True, None, 0.5) for r in made[:20]])
    results.write_scores(project, newer, [(r.clip.clip_id, 2.0, False, None, None) for r in made[10:30]])
    columns = ClipColumns.read(project)
    clips, scores = project.clips(), results.clip_scores(project)
    assert [row.clip for row in columns] == clips
    for row in columns:
        expected = {
            d: s.__class__(s.model_id, s.score, s.decision, None, s.normalised)
            for d, s in scores.get(row.clip.clip_id, {}).items()
        }
        assert row.scores == expected and row.source == "dcase"
        assert row.warnings == (
            {"knn": "knn for fan/section_00 was fitted on 3 normals"}
            if row.scores.get("knn") and row.scores["knn"].model_id == model_id
            else {}
        )
    assert [{**r, "duration_s": pytest.approx(r["duration_s"])} for r in project.summary()] == columns.summary()
    assert columns.count_source("dcase") == len(made) and columns.count_source("inbox") == 0
    some = [made[25].clip.clip_id, made[3].clip.clip_id]
    assert [row.clip.clip_id for row in ClipColumns.read(project, some)] == sorted(some)
    assert clip_from_record(clip_records(project, some[:1])[0]) == project.clip(some[0])
    assert json.loads(clip_records(project)[0][9]) == dict(made[0].clip.attributes)
    project.close()


def test_clicking_a_column_header_sorts_by_it_and_again_the_other_way(table, qtbot):
    from PySide6.QtCore import QPoint

    table.resize(1200, 400)
    table.show()
    header = table.view.horizontalHeader()
    column = FIXED.index("duration")
    where = QPoint(header.sectionViewportPosition(column) + 5, header.height() // 2)
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=where)
    first = header.sortIndicatorOrder()
    durations = [table.model.rows[table.model.row_of(c)].clip.duration_s for c in table.visible_clip_ids()]
    assert header.sortIndicatorSection() == column
    assert durations == sorted(durations, reverse=first == Qt.SortOrder.DescendingOrder)
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=where)
    again = [table.model.rows[table.model.row_of(c)].clip.duration_s for c in table.visible_clip_ids()]
    assert header.sortIndicatorOrder() != first and again == sorted(
        durations, reverse=first != Qt.SortOrder.DescendingOrder
    )
