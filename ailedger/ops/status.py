"""Is logging keeping up? Queue depth, consumers and a verdict, for `ailedger status`.

Everything comes from Redis: the stream (length), the consumer group (lag: never
delivered; pending: delivered, not acknowledged), the dead-letter stream, and the
heartbeat key each live worker refreshes with its counters. Thresholds turn the
answer into an exit code, so the same check serves a terminal, cron and a probe.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson
import redis
from rich.console import Group
from rich.table import Table

from producer.constants import dead_letter_stream, heartbeat_key
from worker.heartbeat import Heartbeat
from worker.settings import WorkerSettings
from worker.shards import shard_keys


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits that make a status failing (None: not checked)."""

    max_lag: int | None = None
    max_pending_age_s: float | None = None


@dataclass(frozen=True, slots=True)
class ConsumerStatus:
    """One consumer of the group, as Redis and its heartbeat describe it."""

    name: str
    pending: int
    idle_s: float
    #: A live worker refreshes its heartbeat every second; without one it has gone.
    alive: bool
    last_heartbeat_s: float | None = None
    events: int | None = None
    inserted: int | None = None
    rejected: int | None = None
    host: str | None = None
    pid: int | None = None
    #: "redis" or "postgres" while the worker cannot reach it.
    down: str | None = None
    #: What a person must fix before this worker can store anything.
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """The stream, its consumer group and a verdict; ``to_dict()`` is the JSON form."""

    stream: str
    group: str
    length: int
    lag: int
    pending: int
    oldest_pending_age_s: float | None
    dead_letter: int
    consumers: tuple[ConsumerStatus, ...]
    #: Consumers that left nothing pending and no heartbeat behind (not listed).
    departed_consumers: int = 0
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    checked_at: float = field(default_factory=time.time)
    #: Each shard's own status when the stream is sharded (the figures above are their sums).
    shards: tuple[QueueStatus, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def waiting(self) -> int:
        return self.lag + self.pending

    @property
    def verdict(self) -> str:
        if self.problems:
            return "failing: " + "; ".join(self.problems)
        if self.warnings:
            return "warning: " + "; ".join(self.warnings)
        if self.waiting:
            return f"ok: {self.waiting} entries in flight"
        return "ok: nothing waiting"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["consumers"] = [asdict(c) for c in self.consumers]
        data["problems"] = list(self.problems)
        data["warnings"] = list(self.warnings)
        data["ok"] = self.ok
        data["verdict"] = self.verdict
        if self.shards:
            data["shards"] = [shard.to_dict() for shard in self.shards]
        else:
            del data["shards"]  # unsharded: the same object as ever
        return data


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_ms(stream_id: Any) -> int:
    return int(_text(stream_id).split("-", 1)[0])


def _group_info(client: redis.Redis, stream: str, group: str) -> dict[str, Any] | None:
    for info in client.xinfo_groups(stream):
        if _text(info["name"]) == group:
            return dict(info)
    return None


def _lag(client: redis.Redis, stream: str, info: dict[str, Any], length: int) -> int:
    lag = info.get("lag")
    if lag is not None:
        return int(lag)
    # Redis cannot tell after entries were deleted from the undelivered range; what it
    # counts itself (entries added minus read) is then an upper bound, the length a cruder one.
    read = info.get("entries-read")
    if read is None:
        return length
    added = int(client.xinfo_stream(stream)["entries-added"])
    return max(0, min(length, added - int(read)))


def _consumers(
    client: redis.Redis, stream: str, group: str, now: float
) -> tuple[list[ConsumerStatus], int]:
    raw = client.xinfo_consumers(stream, group)
    if not raw:
        return [], 0
    names = [_text(c["name"]) for c in raw]
    beats = client.mget([heartbeat_key(stream, name) for name in names])
    listed: list[ConsumerStatus] = []
    departed = 0
    for info, name, beat in zip(raw, names, beats, strict=True):
        pending = int(info["pending"])
        if beat is None:
            if pending == 0:
                departed += 1
                continue
            listed.append(
                ConsumerStatus(name=name, pending=pending, idle_s=info["idle"] / 1000, alive=False)
            )
            continue
        heartbeat = Heartbeat.decode(beat)
        listed.append(
            ConsumerStatus(
                name=name,
                pending=pending,
                idle_s=info["idle"] / 1000,
                alive=True,
                last_heartbeat_s=max(0.0, now - heartbeat.beat_at),
                events=heartbeat.entries,
                inserted=heartbeat.inserted,
                rejected=heartbeat.rejected,
                host=heartbeat.host,
                pid=heartbeat.pid,
                down=_down_text(heartbeat.down),
                problem=heartbeat.problem,
            )
        )
    listed.sort(key=lambda c: (not c.alive, c.name))
    return listed, departed


def queue_status(
    client: redis.Redis, settings: WorkerSettings, *, thresholds: Thresholds | None = None
) -> QueueStatus:
    """Read the stream's depth, its consumers and their heartbeats; judge by ``thresholds``.

    A sharded stream is read shard by shard: the answer sums them (the oldest pending
    entry is the oldest of any shard) and lists each in ``shards``. Raises
    ``redis.RedisError`` when Redis cannot be asked.
    """
    keys = shard_keys(client, settings)
    if len(keys) == 1:
        return _shard_status(client, settings, keys[0], thresholds or Thresholds())
    shards = tuple(_shard_status(client, settings, key, Thresholds()) for key in keys)
    ages = [s.oldest_pending_age_s for s in shards if s.oldest_pending_age_s is not None]
    lag, oldest = sum(s.lag for s in shards), max(ages) if ages else None
    problems = _over_limits(lag, oldest, thresholds or Thresholds())
    warnings: list[str] = []
    for shard in shards:
        problems += [f"{shard.stream}: {p}" for p in shard.problems]
        warnings += [f"{shard.stream}: {w}" for w in shard.warnings]
    return QueueStatus(
        stream=settings.stream,
        group=settings.group,
        length=sum(s.length for s in shards),
        lag=lag,
        pending=sum(s.pending for s in shards),
        oldest_pending_age_s=oldest,
        dead_letter=sum(s.dead_letter for s in shards),
        consumers=_merged_consumers(shards),
        departed_consumers=sum(s.departed_consumers for s in shards),
        problems=tuple(problems),
        warnings=tuple(warnings),
        checked_at=shards[0].checked_at,
        shards=shards,
    )


def _merged_consumers(shards: tuple[QueueStatus, ...]) -> tuple[ConsumerStatus, ...]:
    """One row per consumer name: a worker reads every shard under one name."""
    merged: dict[str, ConsumerStatus] = {}
    for shard in shards:
        for c in shard.consumers:
            seen = merged.get(c.name)
            if seen is None:
                merged[c.name] = c
                continue
            merged[c.name] = replace(
                seen if seen.alive or not c.alive else c,
                pending=seen.pending + c.pending,
                idle_s=min(seen.idle_s, c.idle_s),
                alive=seen.alive or c.alive,
            )
    return tuple(sorted(merged.values(), key=lambda c: (not c.alive, c.name)))


def _over_limits(lag: int, oldest: float | None, limits: Thresholds) -> list[str]:
    problems: list[str] = []
    if limits.max_lag is not None and lag > limits.max_lag:
        problems.append(f"lag {lag} exceeds --max-lag {limits.max_lag}")
    if (
        limits.max_pending_age_s is not None
        and oldest is not None
        and oldest > limits.max_pending_age_s
    ):
        problems.append(
            f"oldest pending entry is {oldest:.0f}s old, over --max-pending-age "
            f"{limits.max_pending_age_s:g}s"
        )
    return problems


def _shard_status(
    client: redis.Redis, settings: WorkerSettings, stream: str, limits: Thresholds
) -> QueueStatus:
    """The status of one stream (the whole stream, or one shard of it)."""
    group = settings.group
    now = time.time()
    seconds, micros = client.time()
    redis_now_ms = seconds * 1000 + micros // 1000
    length = int(client.xlen(stream))
    dead = int(client.xlen(dead_letter_stream(stream)))
    info = _group_info(client, stream, group) if length or client.exists(stream) else None
    consumers: list[ConsumerStatus] = []
    departed = 0
    oldest: float | None = None
    if info is None:
        # No worker has ever read this stream: everything in it waits.
        lag, pending = length, 0
    else:
        lag = _lag(client, stream, info, length)
        pending = int(info["pending"])
        if pending:
            summary = client.xpending(stream, group)
            if summary.get("min") is not None:
                # Entry ids carry the Redis clock of the XADD: the event's age in the queue.
                oldest = max(0.0, (redis_now_ms - _id_ms(summary["min"])) / 1000)
        consumers, departed = _consumers(client, stream, group, now)

    problems = _over_limits(lag, oldest, limits)
    warnings: list[str] = []
    live = [c for c in consumers if c.alive]
    if lag + pending and not live:
        problems.append(f"no live worker while {lag + pending} entries wait")
    if live and all(c.down for c in live):
        problems.append("no live worker can store events (each is waiting for a server)")
    for consumer in consumers:
        if consumer.problem:
            problems.append(f"{consumer.name} cannot store: {consumer.problem}")
        elif consumer.down:
            warnings.append(f"{consumer.name} cannot reach {consumer.down}")
        elif not consumer.alive:
            warnings.append(
                f"{consumer.pending} entries pending at departed {consumer.name}; "
                "a live worker claims them once they are idle long enough"
            )
    return QueueStatus(
        stream=stream,
        group=group,
        length=length,
        lag=lag,
        pending=pending,
        oldest_pending_age_s=None if oldest is None else round(oldest, 3),
        dead_letter=dead,
        consumers=tuple(consumers),
        departed_consumers=departed,
        problems=tuple(problems),
        warnings=tuple(warnings),
        checked_at=now,
    )


def status_json(status: QueueStatus) -> str:
    return orjson.dumps(status.to_dict()).decode()


def status_error_json(settings: WorkerSettings, error: str) -> str:
    """The JSON form when the queue cannot be read: same keys where known, and the error."""
    return orjson.dumps(
        {
            "stream": settings.stream,
            "group": settings.group,
            "ok": False,
            "error": error,
            "verdict": f"unknown: {error}",
        }
    ).decode()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def render_status(status: QueueStatus) -> Group:
    """Two rich tables: the queue with its verdict, and the consumers."""
    style = "red" if status.problems else "yellow" if status.warnings else "green"
    queue = Table(title=f"ailedger queue  {status.stream} / {status.group}", show_header=False)
    queue.add_column(style="bold")
    queue.add_column(justify="right")
    queue.add_row("stream length", _count(status.length))
    queue.add_row("lag (never delivered)", _count(status.lag))
    queue.add_row("pending (not acknowledged)", _count(status.pending))
    queue.add_row("oldest pending", _age(status.oldest_pending_age_s))
    queue.add_row("dead letters", _count(status.dead_letter))
    queue.add_row("verdict", f"[{style}]{status.verdict}[/{style}]")

    consumers = Table(title="consumers")
    for column in ("name", "state", "idle", "pending", "last heartbeat", "events", "stored"):
        consumers.add_column(column, justify="left" if column in ("name", "state") else "right")
    for c in status.consumers:
        state = f"down: {c.down}" if c.down else "alive" if c.alive else "gone"
        consumers.add_row(
            c.name,
            state,
            _age(c.idle_s),
            _count(c.pending),
            _age(c.last_heartbeat_s),
            _count(c.events),
            _count(c.inserted),
        )
    if status.departed_consumers:
        consumers.caption = f"{status.departed_consumers} departed consumer(s) with nothing pending"
    if not status.shards:
        return Group(queue, consumers)
    shards = Table(title="shards")
    for column in ("shard", "length", "lag", "pending", "oldest pending", "dead", "live workers"):
        shards.add_column(column, justify="left" if column == "shard" else "right")
    for shard in status.shards:
        shards.add_row(
            shard.stream,
            _count(shard.length),
            _count(shard.lag),
            _count(shard.pending),
            _age(shard.oldest_pending_age_s),
            _count(shard.dead_letter),
            _count(sum(1 for c in shard.consumers if c.alive)),
        )
    return Group(queue, shards, consumers)


def _down_text(value: object) -> str | None:
    """The heartbeat's servers a consumer cannot reach, as "postgres" or "postgres, redis"."""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or None
    return str(value) if value else None
