"""Writing files the user keeps (label files, settings, exported tables) so that a crash leaves the old file
or the new one, never half of one.

A path that is a symbolic link is written through: the file the link points at gets the new content (its
temporary file sits beside it, so the rename stays on one file system) and the link stays a link. Renaming
over the link itself would silently turn a user's link (a settings file kept in a dotfiles repository, an
export into a shared folder) into a plain copy.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
    over the target. Raises OSError (the temporary file is removed)."""
    with atomic_path(path) as temporary, open(temporary, "x", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


# -- names built from data ------------------------------------------------------------------------------------
#: Names Windows refuses for a file whatever its ending ("CON.txt" is the console there).
_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                       *(f"LPT{i}" for i in range(1, 10))})
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
    import hashlib
    import re

    name = re.sub(_UNSAFE, "_", text)
    name = re.sub(r"\.{2,}", ".", name).lstrip(".~-").rstrip(".")  # "-rf" would read as an option
    if name.split(".")[0].upper() in _RESERVED:
        name = f"_{name}"
    if name and name == text and len(name.encode()) <= max_bytes:
        return name
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    keep = name.encode()[:max(0, max_bytes - len(digest) - 1)].decode("utf-8", "ignore").rstrip(".")
    return f"{keep}-{digest}" if keep else digest
