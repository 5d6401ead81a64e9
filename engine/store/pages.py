"""Rows read straight from the table-leaf pages of an SQLite file, for `earmark repair`.

When a table's root or interior page is damaged, SQLite cannot reach the leaf pages below it although they
are intact. This reads every table-leaf page of the file by SQLite's documented file format (the b-tree
page header, cell pointers, varints, records, overflow chains), leaving out the pages on the free list
(deleted data must not come back) and the pages the caller already read through SQLite.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

TABLE_LEAF = 0x0D


class _File:
    def __init__(self, data: bytes) -> None:
        self.data = data
        size = int.from_bytes(data[16:18], "big")
        self.page_size = 65536 if size == 1 else size
        if self.page_size < 512 or self.page_size & (self.page_size - 1):
            raise ValueError("the file's header does not give a page size")
        self.usable = self.page_size - data[20]
        self.pages = len(data) // self.page_size

    def page(self, number: int) -> bytes:
        start = (number - 1) * self.page_size
        return self.data[start : start + self.page_size]

    def free_pages(self) -> set[int]:
        """The free list's trunk and leaf pages (as far as it can be followed)."""
        free: set[int] = set()
        trunk = int.from_bytes(self.data[32:36], "big")
        while 1 < trunk <= self.pages and trunk not in free:
            free.add(trunk)
            page = self.page(trunk)
            count = min(int.from_bytes(page[4:8], "big"), (self.usable - 8) // 4)
            free.update(int.from_bytes(page[8 + 4 * i : 12 + 4 * i], "big") for i in range(count))
            trunk = int.from_bytes(page[0:4], "big")
        return free

    def payload(self, page: bytes, offset: int, size: int) -> bytes:
        """A cell's payload, following its overflow chain when it does not fit on the page."""
        limit = self.usable - 35
        if size <= limit:
            return page[offset : offset + size]
        least = (self.usable - 12) * 32 // 255 - 23
        local = least + (size - least) % (self.usable - 4)
        if local > limit:
            local = least
        parts = [page[offset : offset + local]]
        following = int.from_bytes(page[offset + local : offset + local + 4], "big")
        remaining, seen = size - local, set()
        while remaining > 0:
            if not 1 < following <= self.pages or following in seen:
                raise ValueError("a broken overflow chain")
            seen.add(following)
            overflow = self.page(following)
            parts.append(overflow[4 : 4 + min(remaining, self.usable - 4)])
            remaining -= self.usable - 4
            following = int.from_bytes(overflow[0:4], "big")
        return b"".join(parts)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        byte = data[at + i]
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    raise ValueError("a bad varint")


def _record(payload: bytes) -> list:
    header_size, at = _varint(payload, 0)
    types = []
    while at < header_size:
        serial, at = _varint(payload, at)
        types.append(serial)
    body, values = header_size, []
    for serial in types:
        if serial == 0:
            values.append(None)
        elif serial <= 6:
            width = (0, 1, 2, 3, 4, 6, 8)[serial]
            values.append(int.from_bytes(payload[body : body + width], "big", signed=True))
            body += width
        elif serial == 7:
            values.append(struct.unpack(">d", payload[body : body + 8])[0])
            body += 8
        elif serial in (8, 9):
            values.append(serial - 8)
        elif serial >= 12:
            width = (serial - 12) // 2
            chunk = payload[body : body + width]
            values.append(chunk.decode("utf-8") if serial % 2 else bytes(chunk))
            body += width
        else:
            raise ValueError("a reserved serial type")
        if body > len(payload):
            raise ValueError("a record longer than its payload")
    return values


def leaf_rows(database: Path, skip: set[int]) -> Iterator[tuple[int, list]]:
    """(rowid, values) of every cell on the table-leaf pages not in `skip` nor on the free list; cells
    that do not decode are left out."""
    file = _File(database.read_bytes())
    skip = skip | file.free_pages()
    for number in range(1, file.pages + 1):
        if number in skip:
            continue
        page = file.page(number)
        header = 100 if number == 1 else 0
        if page[header] != TABLE_LEAF:
            continue
        cells = int.from_bytes(page[header + 3 : header + 5], "big")
        for i in range(cells):
            try:
                offset = int.from_bytes(page[header + 8 + 2 * i : header + 10 + 2 * i], "big")
                size, at = _varint(page, offset)
                rowid, at = _varint(page, at)
                values = _record(file.payload(page, at, size))
            except (IndexError, ValueError, UnicodeDecodeError, struct.error):
                continue
            yield rowid - (1 << 64) if rowid >= 1 << 63 else rowid, values
