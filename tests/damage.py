"""Damaged and read-only projects for tests: a page of garbage written over one page of a table, found the
way SQLite itself lays the file out (`PRAGMA page_size` and the `dbstat` table), and a read-only bind mount."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def settle(database: Path) -> None:
    """Fold the write-ahead log into the file, as the last Earmark process to close it does."""
    with contextlib.closing(sqlite3.connect(str(database))) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def table_pages(database: Path, table: str) -> list[tuple[int, int]]:
    """(page number, rows on it) of each leaf page of `table`, in file order."""
    with contextlib.closing(sqlite3.connect(str(database))) as conn:
        return [
            (int(p), int(n))
            for p, n in conn.execute(
                "SELECT pageno, ncell FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno", [table]
            )
        ]


def damage_page(database: Path, table: str, root: bool = False, index: int | None = None) -> int:
    """Write garbage over the middle leaf page of `table` (a power cut mid-write, a bad sector), or its leaf
    page `index` (-1: the last), or its root page; returns how many rows were on the leaf (0 for the root)."""
    settle(database)
    pages = table_pages(database, table)
    page, rows = pages[len(pages) // 2 if index is None else index]
    with contextlib.closing(sqlite3.connect(str(database))) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        if root:
            page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", [table]).fetchone()[0]
            rows = 0
    with open(database, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(bytes((i * 37 + 11) % 256 for i in range(size)))
    return rows


def count_rows(database: Path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(str(database))) as conn:
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


@contextlib.contextmanager
def read_only_mount(folder: Path, where: Path) -> Iterator[Path]:
    """`folder` seen through a read-only bind mount at `where`: not even root can write there. Skips the
    test, with the reason, where mounting is not allowed (not root, no CAP_SYS_ADMIN in a container)."""
    where.mkdir(parents=True, exist_ok=True)
    bind = subprocess.run(["mount", "--bind", str(folder), str(where)], capture_output=True, text=True)
    if bind.returncode != 0:
        pytest.skip(
            f"a read-only project needs a read-only bind mount, and mount --bind failed here "
            f"({bind.stderr.strip() or bind.returncode}); running as root bypasses file permissions"
        )
    try:
        ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(where)], capture_output=True, text=True)
        if ro.returncode != 0 or os.access(where, os.W_OK):
            pytest.skip(f"cannot remount {where} read-only ({ro.stderr.strip()})")
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(where)], capture_output=True)  # still in use: detach it
