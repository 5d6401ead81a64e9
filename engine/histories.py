"""Every training's per-epoch curves in a project, for the window's Train > Training curves...

Each trained model leaves a `history.json` (a list of epoch rows: `epoch`, `train_loss`, `loss_<part>`,
`grad_norm_<branch>`, `seconds` and the validation figures where there are any): in a saved model's folder
(`artifacts/models/<detector>/<group>/<id>/`), in a detector's training folder (`artifacts/training/`), in a
classifier's (`artifacts/classifiers/`) and in a `earmark debug freeze` run's (`artifacts/logs/debug_freeze/`).
Each found is one `TrainingHistory`, named so that a person can tell them apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.files import read_rows, safe_name
from engine.store import results
from engine.store.project import Project
from engine.training import HISTORY

#: What `earmark debug freeze` leaves beside the history of its scratch run: which run it was.
RUN_FILE = "run.json"
#: Where each kind of run lies under `artifacts/`, in the order the list shows them.
KINDS = ("models", "training", "classifiers", "logs")


@dataclass
class TrainingHistory:
    name: str
    path: Path
    rows: list[dict]
    detector: str = ""
    group: str = ""

    @property
    def epochs(self) -> list[float]:
        return [float(row.get("epoch", index + 1)) for index, row in enumerate(self.rows)]

    def figures(self) -> list[str]:
        """Every figure the rows hold, in the order they first appear."""
        return list(dict.fromkeys(key for row in self.rows for key in row))

    def values(self, key: str) -> list[float]:
        """`key`'s value in each row (NaN where a row lacks it or it is not a number)."""
        found = []
        for row in self.rows:
            value = row.get(key)
            found.append(
                float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")
            )
        return found


@dataclass
class Histories:
    found: list[TrainingHistory]
    #: history.json files that could not be read (damaged, or not a list of epoch rows).
    unreadable: list[Path] = field(default_factory=list)


def training_histories(project: Project) -> Histories:
    """Every readable history under the project's artifacts, models first (by detector, group, model id)."""
    artifacts = project.artifacts
    records = {Path(r.artifact).as_posix(): r for r in results.models(project)}
    groups = {safe_name(g): g for g in {c.group for c in project.clips()} | {r.group_key for r in records.values()}}
    found: list[tuple[tuple, TrainingHistory]] = []
    unreadable: list[Path] = []
    for path in sorted(artifacts.rglob(HISTORY)) if artifacts.is_dir() else []:
        rows = read_rows(path)
        if rows is None:
            unreadable.append(path)
            continue
        if not rows:
            continue
        parts = path.relative_to(artifacts).parts[:-1]
        history = TrainingHistory(str(Path(*parts)) if parts else HISTORY, path, rows)
        kind = parts[0] if parts else ""
        order = KINDS.index(kind) if kind in KINDS else len(KINDS)
        record = records.get(path.parent.relative_to(project.folder).as_posix())
        if record is not None:
            history.detector, history.group = record.detector, record.group_key
            history.name = f"{record.detector} · {record.group_key} · model {record.model_id}"
            sort = (order, record.detector, record.group_key, record.model_id)
        elif kind == "training" and len(parts) >= 3:  # a detector's; one that trains several networks has a
            # folder for each (dcase_ae: the network it keeps, and one per threshold fold)
            history.detector, history.group = parts[1], groups.get(parts[2], parts[2])
            which = ", ".join(part.replace("_", " ") for part in parts[3:])
            history.name = f"{history.detector} · {history.group} · training folder" + (f", {which}" if which else "")
            sort = (order, history.detector, history.group, 0)
        elif kind == "classifiers":
            history.detector = parts[1] if len(parts) > 1 else ""
            seed = f", {parts[2].replace('_', ' ')}" if len(parts) > 2 else ""
            history.name = (
                f"sound classifier{seed}" if history.detector == "sound" else history.detector
            ) + " · training folder"
            sort = (order, history.detector, "", 0)
        elif kind == "logs" and (path.parent / RUN_FILE).is_file():
            history.name, history.detector, history.group = _debug_name(path.parent, history.name)
            sort = (order, history.detector, history.group, 0)
        else:
            sort = (order, history.name, "", 0)
        found.append((sort + (history.name,), history))
    return Histories([h for _, h in sorted(found, key=lambda item: item[0])], unreadable)


def _debug_name(folder: Path, fallback: str) -> tuple[str, str, str]:
    try:
        run = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
        detector, group, frozen = str(run["detector"]), str(run["group"]), str(run["frozen"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return fallback, "", ""
    return f"{detector} · {group} · debug run, {frozen} frozen", detector, group
