"""The `jobs` table: what the application ran on a project, and how each run ended.

The GUI's engine thread records every job here, so a project says afterwards what was fitted, scored or
cancelled; a job still marked running when the project is next opened was cut short (the process died)
and is marked failed.
"""

from __future__ import annotations

import json

from engine.store.project import Project, now

ENDINGS = ("done", "failed", "cancelled")


def start(project: Project, kind: str, params: dict | None = None) -> int:
    with project.db.atomic():
        cursor = project.db.execute(
            "INSERT INTO jobs (kind, params, status, created_at) VALUES (?, ?, 'running', ?)",
            [kind, json.dumps(params or {}, sort_keys=True, default=str), now()],
        )
    return int(cursor.lastrowid)


def finish(project: Project, job_id: int, status: str, message: str = "") -> None:
    if status not in ENDINGS:
        raise ValueError(f"a job ends as one of {', '.join(ENDINGS)}, not {status!r}")
    with project.db.atomic():
        project.db.execute(
            "UPDATE jobs SET status = ?, message = ?, finished_at = ? WHERE job_id = ?",
            [status, message, now(), job_id],
        )


def recover(project: Project) -> int:
    """Mark jobs left running by a process that ended without finishing them; returns how many."""
    with project.db.atomic():
        cursor = project.db.execute(
            "UPDATE jobs SET status = 'failed', message = 'interrupted: the application ended during the job', "
            "finished_at = ? WHERE status IN ('queued', 'running')",
            [now()],
        )
    return cursor.rowcount


def jobs(project: Project) -> list[dict]:
    return project.db.execute_returning_dicts("SELECT * FROM jobs ORDER BY job_id")
