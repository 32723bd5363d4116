"""How many members a zip holds, read from its end-of-central-directory record (and the zip64
one) and, where the directory is large enough to hide more, by walking the directory's fixed
headers -- a few dozen bytes at the end of the file, then 46 bytes per member, never a list.

``zipfile.ZipFile(path)`` builds a ``ZipInfo`` for every member before anything can be refused
(a 255 MB zip of 5.2 M empty members cost 2.2 GB and 26 s), so every zip from a user goes through
``check_members`` first.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

_EOCD = struct.Struct("<4s4H2LH")            # end of central directory, 22 bytes
_EOCD_SIG = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")           # zip64 end of central directory locator, 20 bytes
_LOCATOR_SIG = b"PK\x06\x07"
_EOCD64 = struct.Struct("<4sQ2H2L4Q")        # zip64 end of central directory record, 56 bytes
_EOCD64_SIG = b"PK\x06\x06"
_ENTRY = struct.Struct("<4s6H3L5H2L")        # a central directory file header, 46 bytes (+ variable parts)
_ENTRY_SIG = b"PK\x01\x02"
_MAX_COMMENT = 0xFFFF


class NotAZip(ValueError):
    pass


class TooManyMembers(ValueError):
    def __init__(self, count: int, limit: int):
        super().__init__(f"the zip holds {'at least ' if count == limit + 1 else ''}{count} members; "
                         f"at most {limit} are accepted")
        self.count, self.limit = count, limit


def directory(path: Path) -> tuple[int, int, int]:
    """``(members, start, size)`` of the central directory as the end records declare them."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        file_size = f.tell()
        tail_size = min(file_size, _EOCD.size + _MAX_COMMENT)
        f.seek(file_size - tail_size)
        tail = f.read(tail_size)
        at = tail.rfind(_EOCD_SIG)
        while at >= 0 and at + _EOCD.size > len(tail):
            at = tail.rfind(_EOCD_SIG, 0, at)
        if at < 0:
            raise NotAZip("no end-of-central-directory record")
        _, _, _, _, members, size, offset, _ = _EOCD.unpack_from(tail, at)
        location = file_size - tail_size + at
        if location >= _LOCATOR.size + _EOCD64.size:
            f.seek(location - _LOCATOR.size)
            locator = f.read(_LOCATOR.size)
            if locator[:4] == _LOCATOR_SIG:
                f.seek(location - _LOCATOR.size - _EOCD64.size)
                record = f.read(_EOCD64.size)
                if len(record) != _EOCD64.size or record[:4] != _EOCD64_SIG:
                    raise NotAZip("a zip64 locator without its end record")
                fields = _EOCD64.unpack(record)
                members, size = fields[7], fields[8]
                location -= _LOCATOR.size + _EOCD64.size
    # Where zipfile looks: just before the end record (data may be prepended to the archive).
    start = location - size
    if start < 0:
        raise NotAZip("the central directory is larger than the file")
    return members, start, size


def check_members(path: Path, limit: int) -> int:
    """The number of members, or ``TooManyMembers`` past ``limit`` (``NotAZip`` if there is no
    directory). The declared count is checked first; a directory with room for more than
    ``limit`` minimal headers is walked as well, since zipfile reads it to its declared size
    whatever count the record gives."""
    members, start, size = directory(path)
    if members > limit:
        raise TooManyMembers(members, limit)
    if size <= limit * _ENTRY.size:  # cannot hold more than ``limit`` headers
        return members
    count, end = 0, start + size
    with open(path, "rb", buffering=1 << 16) as f:
        f.seek(start)
        position = start
        while position + _ENTRY.size <= end:
            header = f.read(_ENTRY.size)
            if len(header) != _ENTRY.size or header[:4] != _ENTRY_SIG:
                break  # zipfile stops (and refuses) here too
            fields = _ENTRY.unpack(header)
            count += 1
            if count > limit:
                raise TooManyMembers(count, limit)
            skip = fields[10] + fields[11] + fields[12]  # name, extra field, comment lengths
            f.seek(skip, os.SEEK_CUR)
            position += _ENTRY.size + skip
    return count
