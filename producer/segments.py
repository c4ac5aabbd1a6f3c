"""Spool segment files: how records are framed, how a segment names its stream, locks.

A record is ``MAGIC | length | crc32 | payload``, the payload being the event's bytes
exactly as they go on the wire (or a burst's spilled batch). MAGIC starts with 0xFF, a
byte that never occurs in UTF-8 JSON, so after a damaged record the reader finds the
next one by searching for MAGIC: a torn last record (a crash mid-write) or a corrupted
one costs that record, never the segment. The first record of a segment is a header
naming the stream it was written for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import struct
import zlib
from pathlib import Path

import orjson

MAGIC = b"\xffAL\x01"
HEAD = struct.Struct("<4sII")  # magic, payload length, crc32 of the payload seeded by length
SEGMENT = re.compile(r"^(\d{20}-\d+-[0-9a-f]{6})-(\d{6})\.seg$")
LOCK = re.compile(r"^(\d{20}-\d+-[0-9a-f]{6})\.lock$")


#: zlib.crc32 gives up the GIL for more than 5 KiB at a time; in smaller pieces it keeps it.
_CRC_PIECE = 4096


def record_crc(payload: bytes, seed: int) -> int:
    """``zlib.crc32(payload, seed)``, computed without giving up the GIL.

    A sender that gives up the GIL once per spooled record, while callers log flat out
    from several threads, waits a switch interval (5 ms) or more to get it back each time:
    a burst's 1,600 records took it seconds, the buffer filled and callers dropped events.
    Writing and reading records both check with this.
    """
    if len(payload) <= _CRC_PIECE:
        return zlib.crc32(payload, seed)
    view = memoryview(payload)
    for start in range(0, len(view), _CRC_PIECE):
        seed = zlib.crc32(view[start : start + _CRC_PIECE], seed)
    return seed


def frame(payload: bytes) -> bytes:
    """One record as it is written to a segment."""
    return HEAD.pack(MAGIC, len(payload), record_crc(payload, len(payload))) + payload


def parse_records(data: bytes) -> tuple[list[bytes], int]:
    """The intact records in ``data`` and how many damaged ones were skipped."""
    records: list[bytes] = []
    skipped = 0
    pos, end = 0, len(data)
    while pos < end:
        if data.startswith(MAGIC, pos) and end - pos >= HEAD.size:
            _magic, length, crc = HEAD.unpack_from(data, pos)
            stop = pos + HEAD.size + length
            if stop <= end:
                payload = data[pos + HEAD.size : stop]
                if record_crc(payload, length) == crc:
                    records.append(payload)
                    pos = stop
                    continue
        # Torn or corrupted (the length too, perhaps): resume at the next record marker.
        skipped += 1
        found = data.find(MAGIC, pos + 1)
        pos = end if found < 0 else found
    return records, skipped


def try_lock(path: Path) -> int | None:
    """A descriptor holding an exclusive lock on ``path``, or None while another holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # The last holder may have unlinked the file between our open and our lock.
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        os.close(fd)


def read_header(path: Path) -> tuple[str | None, int, int]:
    """``(stream, header length, file size)`` of a segment; stream None if unreadable."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        head = file.read(HEAD.size)
        if len(head) == HEAD.size:
            magic, length, crc = HEAD.unpack(head)
            payload = file.read(min(length, 65_536))
            if magic == MAGIC and len(payload) == length and record_crc(payload, length) == crc:
                with contextlib.suppress(ValueError):
                    header = orjson.loads(payload)
                    if isinstance(header, dict) and "ailedger_spool" in header:
                        stream = header.get("stream")
                        return (
                            (stream if isinstance(stream, str) else None),
                            HEAD.size + length,
                            size,
                        )
    # A damaged header is skipped (and counted) by the reader like any damaged record.
    return None, 0, size


def folder_bytes(folder: Path) -> int:
    """Bytes in all the folder's segments, whoever writes them."""
    total = 0
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".seg"):
                with contextlib.suppress(FileNotFoundError):  # sent and deleted meanwhile
                    total += entry.stat().st_size
    return total


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
