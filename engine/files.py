"""Writing files the user keeps (label files, settings, exported tables) so that a crash leaves the old file
or the new one, never half of one.

A path that is a symbolic link is written through: the file the link points at gets the new content (its
temporary file sits beside it, so the rename stays on one file system) and the link stays a link. Renaming
over the link itself would silently turn a user's link (a settings file kept in a dotfiles repository, an
export into a shared folder) into a plain copy.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from engine.errors import DiskFullError


def write_target(path: str | Path) -> Path:
    """The file a write to `path` should change: where a symbolic link (or a chain of them) finally points,
    else `path` itself. A link pointing at nothing gives the missing file it names, which the write then
    creates. (A link among the folders needs nothing: the rename happens inside the folder it leads to.)"""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write the new file to; when the block ends without an error it is renamed over the
    real target of `path` (links followed, see `write_target`), else removed. The folder is made first."""
    target = write_target(path)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write the whole text under a temporary name beside `path`'s target, flush it to disk, then rename it
    over the target. Raises OSError, or `DiskFullError` when the disk is full (the temporary file is removed)."""
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


# -- every artifact goes through one writer: temporary file beside it, fsync, rename --------------------------
#: The name a temporary file gets while it is written (see `atomic_path`); what `remove_leftovers` looks for.
PARTIAL = re.compile(r"^\..+\.[0-9a-f]{8}\.part$|\.part\.np[yz]$|\.partial$")
#: A temporary file untouched for this long was left by a killed process, not being written by a live one.
#: A live writer may leave its finished temporary model folder untouched while it waits for another process's
#: write lock, up to `engine.store.project.WRITE_WAIT_S` (10 minutes): this age must stay well beyond that
#: wait, or one process opening the project would remove a folder another is about to rename into place.
LEFTOVER_AGE_S = 3600.0


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object], durable: bool = True) -> None:
    """Call `write` with a binary file under a temporary name beside `path`'s target, flush it to disk and
    rename it over the target: a reader (or a kill -9) sees the old file or the new one, never half of one.
    A full disk raises `DiskFullError` (the temporary file is removed); other failures raise as they are.
    `durable=False` skips the fsync: for a cache whose reader recomputes a damaged file (the rename alone
    is what protects against a kill; the fsync guards against a power cut, at about a millisecond a file)."""
    try:
        with atomic_path(path) as temporary, open(temporary, "xb") as handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
    except OSError as exc:
        full = disk_full(exc, Path(path))
        if full is None:
            raise
        raise full from None


def copy_atomic(source: str | Path, target: str | Path, durable: bool = True) -> None:
    """`source` copied to `target` through `write_atomic`, streamed (never whole in memory): a failure, a kill
    or a full disk leaves no half copy."""
    with open(source, "rb") as reading:
        write_atomic(target, lambda handle: shutil.copyfileobj(reading, handle, 1 << 20), durable)


def save_npz_atomic(path: str | Path, arrays: Mapping[str, np.ndarray], durable: bool = True) -> None:
    """`np.savez` through `write_atomic`."""
    write_atomic(path, lambda handle: np.savez(handle, **arrays), durable)


def save_npy_atomic(path: str | Path, array: np.ndarray, durable: bool = True) -> None:
    """`np.save` through `write_atomic`."""
    write_atomic(path, lambda handle: np.save(handle, array), durable)


def save_safetensors_atomic(path: str | Path, tensors: Mapping[str, object]) -> None:
    """Torch tensors as a safetensors file, through `write_atomic`."""
    from safetensors.torch import save

    write_atomic(path, lambda handle: handle.write(save(dict(tensors))))


def disk_full(error: BaseException, path: Path) -> DiskFullError | None:
    """The one message for a write that failed because the disk is full (an OSError with ENOSPC or EDQUOT,
    numpy's "N requested and M written", SQLite's "database or disk is full"), naming the project that
    holds `path`; None for any other error."""
    text = str(error)
    full = (
        (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT))
        or ("requested and" in text and "written" in text)
        or "database or disk is full" in text
    )
    if not full:
        return None
    holder = next(
        (folder for folder in (path, *path.parents) if (folder / "project.sqlite").is_file()),
        path if path.is_dir() else path.parent,
    )
    try:
        free = shutil.disk_usage(holder).free / 1e6
    except OSError:
        free = 0.0
    return DiskFullError(
        f"the disk holding {holder} is full: {free:.0f} MB free; nothing half-written was kept: "
        "free some space and run the command again"
    )


def remove_leftovers(folder: Path, older_than_s: float = LEFTOVER_AGE_S) -> list[Path]:
    """Remove the temporary files (and temporary model folders) a killed process left under `folder`; ones
    touched in the last `older_than_s` seconds may be another process's writes in progress and are kept.
    Returns what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    cutoff = time.time() - older_than_s
    for root, dirs, names in os.walk(folder):
        for name in [n for n in (*names, *dirs) if PARTIAL.search(n)]:
            path = Path(root) / name
            try:
                if path.lstat().st_mtime > cutoff:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                    dirs.remove(name)
                else:
                    path.unlink()
            except OSError:  # gone meanwhile, or not ours to remove: the next open tries again
                continue
            removed.append(path)
    return removed


# -- names built from data ------------------------------------------------------------------------------------
#: Names Windows refuses for a file whatever its ending ("CON.txt" is the console there).
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
)
#: The longest name `safe_name` gives, in UTF-8 bytes: two of them and a fixed text still fit in the
#: 255 bytes file systems allow (a DCASE result file names a machine type and a section).
MAX_NAME_BYTES = 100
_UNSAFE = r"[^\w.~-]+"


def safe_name(text: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """`text` (a machine type, a section, a clip id, an audio file's stem) made fit to be one file or folder
    name on any system: letters, digits, `-`, `_`, `.` and `~` (inside); no path separator, no leading dot,
    `~` or `-`, no `..`, no trailing dot, no name Windows reserves, at most `max_bytes` bytes of UTF-8. A name
    that needed no change is kept as it is; one that did gets a short hash of `text` (8 hex digits of
    SHA-256), so two texts that differ do not share a name (`a/b` and `a_b` both stay readable, and stay two
    files)."""
    name = re.sub(_UNSAFE, "_", text)
    name = re.sub(r"\.{2,}", ".", name).lstrip(".~-").rstrip(".")  # "-rf" would read as an option
    if name.split(".")[0].upper() in _RESERVED:
        name = f"_{name}"
    if name and name == text and len(name.encode()) <= max_bytes:
        return name
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    keep = name.encode()[: max(0, max_bytes - len(digest) - 1)].decode("utf-8", "ignore").rstrip(".")
    return f"{keep}-{digest}" if keep else digest


def read_rows(path: Path) -> list[dict] | None:
    """The rows of a JSON file holding a list of objects (a training's `history.json`); None when it is
    missing, unreadable or not such a list."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        return None
    return rows
