"""The producer's disk spool: events kept on local disk while Redis cannot take them.

Layout. A spool folder holds segment files ``<owner>-<seq>.seg`` and a lock file
``<owner>.lock`` per writer, ``owner`` being the writer's start time (ns), pid and a random
suffix, so that names sort oldest first. A writer holds an exclusive ``flock`` on its lock
file while it has segments; whoever can take that lock knows the writer is gone and may
adopt its segments. Two processes therefore never write, nor replay, the same file. The
size cap covers the whole folder, whoever wrote what is in it.

Framing. A record is ``MAGIC | length | crc32 | payload``, the payload being the event's
bytes exactly as they go on the wire. MAGIC starts with 0xFF, a byte that never occurs in
UTF-8 JSON, so after a damaged record the reader finds the next one by searching for MAGIC:
a torn last record (a crash mid-write) or a corrupted one costs that record, never the
segment. The first record of a segment is a header naming the stream it was written for.

Durability. Each batch goes to the OS in one ``write``, so a process that is SIGKILLed loses
nothing it had spooled. ``fsync`` runs at most once per ``fsync_interval`` while spooling, on
rotation and on close: a power cut may cost the last second of spooled events, but spooling
a batch never waits for the disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import stat
import struct
import tempfile
import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Protocol

import orjson

from producer.connection import connect
from producer.shards import ShardedStream
from producer.wire import xadd_events

log = logging.getLogger("ailedger.producer")

MAGIC = b"\xffAL\x01"
_HEAD = struct.Struct("<4sII")  # magic, payload length, crc32 of the payload seeded by length
_SEGMENT = re.compile(r"^(\d{20}-\d+-[0-9a-f]{6})-(\d{6})\.seg$")
_LOCK = re.compile(r"^(\d{20}-\d+-[0-9a-f]{6})\.lock$")
DEFAULT_MAX_BYTES = 1 << 30


def default_spool_dir() -> Path:
    """``AILEDGER_SPOOL_DIR``, else a folder of this user's under the system temp dir."""
    configured = os.environ.get("AILEDGER_SPOOL_DIR")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"ailedger-spool-{os.getuid()}"


def has_segments(folder: Path) -> bool:
    """True if ``folder`` holds any segment (cheap: one directory listing)."""
    try:
        with os.scandir(folder) as entries:
            return any(_SEGMENT.match(entry.name) for entry in entries)
    except OSError:
        return False


def frame(payload: bytes) -> bytes:
    """One record as it is written to a segment."""
    return _HEAD.pack(MAGIC, len(payload), zlib.crc32(payload, len(payload))) + payload


def parse_records(data: bytes) -> tuple[list[bytes], int]:
    """The intact records in ``data`` and how many damaged ones were skipped."""
    records: list[bytes] = []
    skipped = 0
    pos, end = 0, len(data)
    while pos < end:
        if data.startswith(MAGIC, pos) and end - pos >= _HEAD.size:
            _magic, length, crc = _HEAD.unpack_from(data, pos)
            stop = pos + _HEAD.size + length
            if stop <= end:
                payload = data[pos + _HEAD.size : stop]
                if zlib.crc32(payload, length) == crc:
                    records.append(payload)
                    pos = stop
                    continue
        # Torn or corrupted (the length too, perhaps): resume at the next record marker.
        skipped += 1
        found = data.find(MAGIC, pos + 1)
        pos = end if found < 0 else found
    return records, skipped


def _try_lock(path: Path) -> int | None:
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


def _read_header(path: Path) -> tuple[str | None, int, int]:
    """``(stream, header length, file size)`` of a segment; stream None if unreadable."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        head = file.read(_HEAD.size)
        if len(head) == _HEAD.size:
            magic, length, crc = _HEAD.unpack(head)
            payload = file.read(min(length, 65_536))
            if magic == MAGIC and len(payload) == length and zlib.crc32(payload, length) == crc:
                with contextlib.suppress(ValueError):
                    header = orjson.loads(payload)
                    if isinstance(header, dict) and "ailedger_spool" in header:
                        stream = header.get("stream")
                        return (
                            (stream if isinstance(stream, str) else None),
                            _HEAD.size + length,
                            size,
                        )
    # A damaged header is skipped (and counted) by the reader like any damaged record.
    return None, 0, size


def _folder_bytes(folder: Path) -> int:
    """Bytes in all the folder's segments, whoever writes them."""
    total = 0
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".seg"):
                with contextlib.suppress(FileNotFoundError):  # sent and deleted meanwhile
                    total += entry.stat().st_size
    return total


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Spool(Protocol):
    """Where the sender keeps events Redis could not take, oldest first.

    :class:`DiskSpool` keeps them in files that outlive the process;
    :class:`MemorySpool` is the bounded stand-in when the disk is turned off.
    """

    #: Records appended by this writer, and how many of those have been consumed.
    appended: int
    consumed_own: int
    #: Damaged records that could not be read back.
    skipped: int
    closed: bool

    @property
    def empty(self) -> bool: ...

    @property
    def size_bytes(self) -> int: ...

    @property
    def head_stream(self) -> str | None: ...

    def append(self, payloads: Sequence[bytes]) -> int:
        """Keep as many of ``payloads`` as fit, in order; returns how many."""
        ...

    def adopt(self) -> int:
        """Take over what writers that are gone left behind; returns how many segments."""
        ...

    def peek(self, limit: int) -> list[bytes]:
        """The oldest records, without removing them."""
        ...

    def consume(self, count: int) -> None:
        """Remove the ``count`` oldest records: Redis has them."""
        ...

    def close(self) -> None: ...

    def abandon(self) -> None:
        """Let go without closing files a forked parent still uses."""
        ...


@dataclass(eq=False)
class _Segment:
    path: Path
    owner: str
    stream: str | None
    size: int
    parsed: int  # bytes of the file already read into ``records``
    own: bool
    records: deque[bytes] = field(default_factory=deque)
    unreadable: bool = False  # left on disk for a person to look at, not deleted


class DiskSpool:
    """A first-in first-out queue of encoded events on disk, for one writer.

    ``append`` writes to this writer's live segment; ``peek``/``consume`` read from the
    oldest segment and delete each one once fully consumed; ``adopt`` queues the
    segments of writers that are gone. Not thread-safe: one thread, or one lock, uses it.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        stream: str | None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int | None = None,
        fsync_interval: float = 1.0,
    ) -> None:
        self.folder = Path(folder)
        self.stream = stream
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or min(16 << 20, max(4096, max_bytes // 8))
        self.fsync_interval = fsync_interval
        self.owner = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}"
        self.appended = 0  # records this writer spooled
        self.consumed_own = 0  # of those, records consumed (sent)
        self.skipped = 0  # damaged records skipped while reading
        self.closed = False
        self._queue: deque[_Segment] = deque()
        self._live: _Segment | None = None
        self._live_fd = -1
        self._read_fds: dict[Path, int] = {}
        self._locks: dict[str, int] = {}  # owner -> descriptor holding its lock file
        self._seq = 0
        self._bytes = 0  # on disk, in the queue's segments
        self._others = 0  # on disk, other writers' segments, as of the last new segment
        self._last_sync = 0.0
        self._failing = False

    @property
    def empty(self) -> bool:
        return not self._queue

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def head_stream(self) -> str | None:
        """The stream the records ``peek`` returns were written for."""
        return self._queue[0].stream if self._queue else self.stream

    # -- writing ---------------------------------------------------------------

    def append(self, payloads: Sequence[bytes]) -> int:
        """Write records in order; returns how many fit under ``max_bytes``."""
        done = 0
        while done < len(payloads) and not self.closed:
            if self._live is None and not self._open_live():
                break
            live = self._live
            assert live is not None
            room = self.max_bytes - self._bytes - self._others
            room_in_segment = self.segment_bytes - live.size
            frames: list[bytes] = []
            size = 0
            for payload in islice(payloads, done, None):
                record = frame(payload)
                if size + len(record) > room or (frames and size + len(record) > room_in_segment):
                    break
                frames.append(record)
                size += len(record)
            if not frames or not self._write(b"".join(frames)):
                break
            done += len(frames)
            self.appended += len(frames)
            if live.size >= self.segment_bytes:
                self._finish_live()
        if done and self._live is not None:
            now = time.monotonic()
            if now - self._last_sync >= self.fsync_interval:
                self._last_sync = now
                self._sync(self._live_fd)
        return done

    def _open_live(self) -> bool:
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.stat(self.folder)
            if info.st_uid != os.getuid() and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise PermissionError(f"{self.folder} is writable by other users")
            if self.owner not in self._locks:
                fd = _try_lock(self.folder / f"{self.owner}.lock")
                if fd is None:  # cannot happen: the name is this writer's own
                    raise BlockingIOError(f"{self.owner}.lock is held by another process")
                self._locks[self.owner] = fd
            self._seq += 1
            path = self.folder / f"{self.owner}-{self._seq:06d}.seg"
            header = frame(orjson.dumps({"ailedger_spool": 1, "stream": self.stream}))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            try:
                _write_all(fd, header)
                dir_fd = os.open(self.folder, os.O_RDONLY)
                try:  # the new file's name must survive a power cut along with its contents
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            except OSError:
                os.close(fd)
                path.unlink()
                raise
        except OSError as exc:
            self._report(exc)
            return False
        self._live_fd = fd
        total = _folder_bytes(self.folder)
        self._live = _Segment(path, self.owner, self.stream, len(header), len(header), own=True)
        self._queue.append(self._live)
        self._bytes += len(header)
        self._others = max(0, total - self._bytes)
        return True

    def _write(self, data: bytes) -> bool:
        live = self._live
        assert live is not None
        try:
            _write_all(self._live_fd, data)
        except OSError as exc:
            # Half a record would make our own reader skip it: cut back to the last whole one.
            with contextlib.suppress(OSError):
                os.ftruncate(self._live_fd, live.size)
            self._report(exc)
            return False
        live.size += len(data)
        self._bytes += len(data)
        self._failing = False
        return True

    def _report(self, exc: OSError) -> None:
        if not self._failing:
            self._failing = True
            log.warning("ailedger cannot write its spool in %s: %s", self.folder, exc)

    def _sync(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            self._report(exc)

    def _finish_live(self) -> None:
        """Stop writing the live segment; it stays queued until read."""
        if self._live is not None:
            self._sync(self._live_fd)
            os.close(self._live_fd)
            self._live, self._live_fd = None, -1

    # -- reading ---------------------------------------------------------------

    def adopt(self) -> int:
        """Queue the segments of writers that are gone, oldest writer first; returns how many."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return 0
        writing = {m.group(1) for m in map(_SEGMENT.match, names) if m}
        locked = {m.group(1) for m in map(_LOCK.match, names) if m}
        for owner in locked - writing - set(self._locks) - {self.owner}:
            # A writer that ended with nothing spooled (or was killed so) left its lock file.
            fd = _try_lock(self.folder / f"{owner}.lock")
            if fd is not None:
                self._locks[owner] = fd
                self._release(owner, unlink=True)
        owners = sorted(writing - set(self._locks) - {self.owner})
        adopted: list[_Segment] = []
        for owner in owners:
            fd = _try_lock(self.folder / f"{owner}.lock")
            if fd is None:
                continue  # its writer lives, or another process is replaying it
            taken = self._adopt_owner(owner)
            if taken:
                self._locks[owner] = fd
                adopted.extend(taken)
            else:
                os.close(fd)
        if adopted:
            # Our live segment is finished first so that it stays last behind the adopted.
            self._finish_live()
            self._queue.extend(adopted)
            self._bytes += sum(seg.size for seg in adopted)
        return len(adopted)

    def _adopt_owner(self, owner: str) -> list[_Segment]:
        taken: list[_Segment] = []
        for path in sorted(self.folder.glob(f"{owner}-*.seg")):  # listed again, under its lock
            stream, header_end, size = _read_header(path)
            if stream is None and self.stream is None:
                log.warning("ailedger spool segment %s names no stream; left in place", path)
                continue
            if self.stream is not None and stream not in (None, self.stream):
                continue  # a logger of another stream shares the folder: it is theirs
            taken.append(_Segment(path, owner, stream or self.stream, size, header_end, own=False))
        return taken

    def peek(self, limit: int) -> list[bytes]:
        """Up to ``limit`` of the oldest unsent records, all of one segment (``head_stream``)."""
        while self._queue:
            seg = self._queue[0]
            if not seg.records and seg.parsed < seg.size:
                self._parse(seg)
            if seg.records:
                return list(islice(seg.records, limit))
            self._drop(seg)
        return []

    def consume(self, count: int) -> None:
        """Mark the first ``count`` records of the last ``peek`` as sent."""
        seg = self._queue[0]
        for _ in range(count):
            seg.records.popleft()
        if seg.own:
            self.consumed_own += count

    def _parse(self, seg: _Segment) -> None:
        try:
            fd = self._read_fds.get(seg.path)
            if fd is None:
                fd = self._read_fds[seg.path] = os.open(seg.path, os.O_RDONLY)
            data = os.pread(fd, seg.size - seg.parsed, seg.parsed)
        except OSError as exc:
            log.warning("ailedger cannot read spool segment %s (%s); skipping it", seg.path, exc)
            seg.parsed, seg.unreadable = seg.size, True
            return
        records, skipped = parse_records(data)
        seg.parsed += len(data)
        seg.records.extend(records)
        if skipped:
            self.skipped += skipped
            log.warning("ailedger skipped %d damaged record(s) in spool %s", skipped, seg.path)

    def _drop(self, seg: _Segment) -> None:
        """A fully sent segment: its file goes, and its writer's lock with the last one."""
        if seg is self._live:
            os.close(self._live_fd)
            self._live, self._live_fd = None, -1
        fd = self._read_fds.pop(seg.path, None)
        if fd is not None:
            os.close(fd)
        if not seg.unreadable:
            with contextlib.suppress(OSError):
                seg.path.unlink()
        self._bytes -= seg.size
        self._queue.popleft()
        if all(other.owner != seg.owner for other in self._queue):
            self._release(seg.owner, unlink=True)

    def _release(self, owner: str, *, unlink: bool) -> None:
        fd = self._locks.pop(owner, None)
        if fd is not None:
            if unlink:  # unlinked while still held, so nobody locks a file about to vanish
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / f"{owner}.lock").unlink()
            os.close(fd)

    # -- ending ----------------------------------------------------------------

    def close(self) -> None:
        """Sync and close; what is unsent stays on disk for the next start to adopt."""
        if self.closed:
            return
        self.closed = True
        self._finish_live()
        for fd in self._read_fds.values():
            os.close(fd)
        self._read_fds.clear()
        for owner in list(self._locks):
            self._release(owner, unlink=all(seg.owner != owner for seg in self._queue))

    def abandon(self) -> None:
        """In a forked child: let go of the parent's descriptors without touching its files."""
        self.closed = True
        fds = [self._live_fd, *self._read_fds.values(), *self._locks.values()]
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read_fds.clear()
        self._locks.clear()
        self._live_fd = -1


class MemorySpool:
    """The spool's stand-in when the disk spool is turned off: bounded, lost at exit."""

    skipped = 0

    def __init__(self, max_records: int) -> None:
        self.max_records = max_records
        self.stream: str | None = None
        self.appended = 0
        self.consumed_own = 0
        self.closed = False
        self._records: deque[bytes] = deque()

    @property
    def empty(self) -> bool:
        return not self._records

    @property
    def size_bytes(self) -> int:
        return 0

    @property
    def head_stream(self) -> str | None:
        return self.stream

    def append(self, payloads: Sequence[bytes]) -> int:
        room = 0 if self.closed else max(0, self.max_records - len(self._records))
        taken = payloads[:room]
        self._records.extend(taken)
        self.appended += len(taken)
        return len(taken)

    def adopt(self) -> int:
        return 0

    def peek(self, limit: int) -> list[bytes]:
        return list(islice(self._records, limit))

    def consume(self, count: int) -> None:
        for _ in range(count):
            self._records.popleft()
        self.consumed_own += count

    def close(self) -> None:
        self.closed = True

    def abandon(self) -> None:
        self.closed = True


def replay_spool(
    folder: str | os.PathLike[str],
    redis_url: str,
    stream: str | None = None,
    *,
    batch_size: int = 500,
) -> int:
    """Send what writers that are gone left in ``folder``, oldest first; returns how many.

    Each segment goes to the stream it was written for; with ``stream``, only that
    stream's segments are sent. Segments of live writers are left to them. Raises
    ``redis.RedisError`` if Redis fails midway: what was not sent stays on disk.
    """
    spool = DiskSpool(folder, stream=stream)
    client = connect(redis_url, strict=True)
    shards: dict[str, ShardedStream] = {}
    sent = 0
    try:
        spool.adopt()
        while batch := spool.peek(batch_size):
            head = spool.head_stream or ""
            if head not in shards:
                shards[head] = ShardedStream.for_client(client, head)
            xadd_events(client, shards[head].next_key(), batch)
            spool.consume(len(batch))
            sent += len(batch)
    finally:
        spool.close()
        client.close()
    return sent
