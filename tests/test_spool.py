"""Redis away, slow, or a producer killed: spooled events reach the table, none lost.

The faults are real: a redis-server of the test's own is stopped (SIGTERM, saving its
data as a clean shutdown does), paused (SIGSTOP: it accepts connections and never
answers) and started again; producer processes are SIGKILLed; spool files are cut and
corrupted on disk.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from producer import AICallLogger
from producer.backoff import Backoff
from producer.connection import connect
from producer.constants import EVENT_FIELD
from producer.replay import replay_spool
from producer.spool import DiskSpool, frame
from producer.wire import encode_event
from tests.faults import free_port, hung_redis, redis_server_binary

ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.01)


def fast_backoff() -> Backoff:
    return Backoff(base=0.02, cap=0.2)


def stream_ids(client: redis.Redis, stream: str) -> list[str]:
    return [orjson.loads(fields[EVENT_FIELD])["id"] for _id, fields in client.xrange(stream)]


def ailedger(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own, as a person would run it."""
    command = [sys.executable, "-m", "ailedger.cli", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


def segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.seg")) if folder.exists() else []


class RedisServer:
    """A redis-server of one test's own, on a free port, that the test stops and starts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> None:
        # A save point that never comes due during a test: SIGTERM then saves the data,
        # so a stop and start loses nothing that Redis had acknowledged.
        self.process = subprocess.Popen(
            [
                *(redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--dir", str(self.folder), "--save", "3600 1", "--appendonly", "no"),
                *("--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = self.client()

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(answers, 10, "redis-server to answer")
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot shut down
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    yield server
    server.stop()


def encoded(n: int) -> tuple[list[str], list[bytes]]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    events = [
        encode_event({"id": i, "task": "t", "model": "m"}, max_payload_bytes=1000) for i in ids
    ]
    return ids, [payload for _id, payload in events]


def write_segment(folder: Path, stream: str, payloads: list[bytes]) -> Path:
    """A segment as a producer that has since gone left it."""
    spool = DiskSpool(folder, stream=stream)
    assert spool.append(payloads) == len(payloads)
    spool.close()
    (segment,) = segments(folder)
    return segment


@pytest.fixture(autouse=True)
def _isolated(caplog, tmp_path, monkeypatch) -> None:
    caplog.set_level(logging.WARNING, logger="ailedger.producer")
    monkeypatch.setenv("AILEDGER_SPOOL_DIR", str(tmp_path / "default-spool"))


# -- framing: damaged records cost themselves, never the rest --------------------------


def test_a_torn_last_record_is_skipped_and_the_rest_replays(
    tmp_path, servers, stream, redis_client, caplog
) -> None:
    ids, payloads = encoded(100)
    segment = write_segment(tmp_path, stream, payloads)
    with segment.open("r+b") as file:  # a crash in the middle of writing the last record
        file.truncate(segment.stat().st_size - 7)
    assert replay_spool(tmp_path, servers.redis_url) == 99
    assert stream_ids(redis_client, stream) == ids[:99]
    assert "skipped 1 damaged record" in caplog.text
    assert segments(tmp_path) == []


@pytest.mark.parametrize("damage", ["payload", "length"])
def test_a_corrupted_record_in_the_middle_is_skipped_and_counted(tmp_path, stream, damage) -> None:
    ids, payloads = encoded(100)
    segment = write_segment(tmp_path, stream, payloads)
    data = bytearray(segment.read_bytes())
    record_50 = len(data) - sum(len(frame(p)) for p in payloads[50:])
    if damage == "payload":
        data[record_50 + 12 + 10] ^= 0x55
    else:  # the length field: the reader must find the next record by its marker
        data[record_50 + 4 : record_50 + 8] = (7).to_bytes(4, "little")
    segment.write_bytes(bytes(data))

    reader = DiskSpool(tmp_path, stream=stream)
    assert reader.adopt() == 1
    replayed: list[bytes] = []
    while batch := reader.peek(30):
        replayed.extend(batch)
        reader.consume(len(batch))
    reader.close()
    assert [orjson.loads(p)["id"] for p in replayed] == ids[:50] + ids[51:]
    assert reader.skipped == 1


def test_a_full_spool_drops_the_newest_counts_and_warns_once(
    tmp_path, servers, stream, redis_client, caplog
) -> None:
    spool_dir = tmp_path / "spool"
    logger = AICallLogger(
        f"redis://127.0.0.1:{free_port()}/0",
        stream=stream,
        spool_dir=spool_dir,
        max_spool_bytes=30_000,
        backoff=fast_backoff,
    )
    ids = [logger.log(task="t", model="m", input_tokens=1000 + i) for i in range(1_000)]
    wait_until(lambda: logger.stats.spooled + logger.stats.dropped == 1_000, what="the spill")
    assert logger.close(timeout=0.2) is False
    stats = logger.stats
    assert stats.spooled > 0 and stats.dropped > 0 and stats.spooled + stats.dropped == 1_000
    assert sum(p.stat().st_size for p in segments(spool_dir)) <= 30_000
    assert caplog.text.count("is full") == 1

    assert replay_spool(spool_dir, servers.redis_url) == stats.spooled
    assert stream_ids(redis_client, stream) == ids[: stats.spooled]


def test_the_spool_folder_is_configurable_and_has_a_default(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("AILEDGER_SPOOL_DIR", raising=False)
    default = Path(tempfile.gettempdir()) / f"ailedger-spool-{os.getuid()}"
    assert AICallLogger("redis://127.0.0.1:1/0").spool_dir == default
    monkeypatch.setenv("AILEDGER_SPOOL_DIR", str(tmp_path))
    assert AICallLogger("redis://127.0.0.1:1/0").spool_dir == tmp_path
    assert AICallLogger("redis://127.0.0.1:1/0", max_spool_bytes=0).spool_dir is None


# -- outages ------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_redis_stopped_mid_run_loses_none_of_50000_events(
    tmp_path, redis_server, stream, run_burst, db
) -> None:
    logger = AICallLogger(
        redis_server.url,
        stream=stream,
        spool_dir=tmp_path / "spool",
        max_buffer=10_000,
        backoff=fast_backoff,
    )
    ids: list[str] = []

    def log_thousand() -> None:
        for _ in range(1_000):
            ids.append(logger.log(task="t", model="m", input_tokens=len(ids)))
        # Memory stays bounded while Redis is away: the sender keeps draining the buffer.
        wait_until(lambda: logger.stats.buffered < 2_000, what="the sender to drain")

    for _ in range(15):
        log_thousand()
    redis_server.stop()
    for _ in range(20):
        log_thousand()
    wait_until(lambda: logger.stats.spooled_total >= 20_000, what="the outage's events on disk")
    redis_server.start()
    for _ in range(15):
        log_thousand()
    assert logger.flush(60)
    stats = logger.stats
    assert logger.close()

    client = redis_server.client()
    sent = stream_ids(client, stream)
    client.close()
    duplicates = len(sent) - len(set(sent))
    print(
        f"\n50,000 logged: {stats.spooled} spooled, {stats.replayed} replayed, "
        f"{duplicates} duplicates in the stream"
    )
    assert len(ids) == 50_000 and set(sent) == set(ids)
    assert list(dict.fromkeys(sent)) == ids  # first arrivals in the order logged
    assert stats.dropped == 0 and stats.replayed == stats.spooled_total >= 20_000

    run_burst(redis_url=redis_server.url)
    assert db.execute("SELECT count(*), count(DISTINCT id) FROM ai_call_logs").fetchone() == (
        50_000,
        50_000,
    )


def test_a_redis_that_stops_answering_is_spooled_around(tmp_path, redis_server, stream) -> None:
    client = connect(redis_server.url, socket_timeout=0.5, connect_timeout=0.5)
    logger = AICallLogger(
        client=client, stream=stream, spool_dir=tmp_path / "spool", backoff=fast_backoff
    )
    ids = [logger.log(task="t", model="m") for _ in range(1_000)]
    assert logger.flush(10)
    redis_server.pause()
    try:
        ids += [logger.log(task="t", model="m") for _ in range(2_000)]
        wait_until(lambda: logger.stats.spooled >= 2_000, what="the events to be spooled")
        assert logger.stats.sent == 1_000
    finally:
        redis_server.resume()
    ids += [logger.log(task="t", model="m") for _ in range(1_000)]
    assert logger.flush(20)
    assert logger.close()
    sent = stream_ids(redis_server.client(), stream)
    assert list(dict.fromkeys(sent)) == ids


def test_close_while_redis_hangs_spools_everything_in_order(tmp_path, servers, stream) -> None:
    listener = hung_redis()  # each call times out
    spool_dir = tmp_path / "spool"
    try:
        client = connect(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", socket_timeout=60)
        logger = AICallLogger(client=client, stream=stream, spool_dir=spool_dir)
        ids = [logger.log(task="t", model="m") for _ in range(20_000)]
        started = time.monotonic()
        assert logger.close(timeout=0.2) is False
        # A generous bound that only waiting out the 60 s socket timeout would break.
        assert time.monotonic() - started < 30
        assert logger.stats.spooled == 20_000 and logger.stats.dropped == 0
    finally:
        listener.close()
    assert replay_spool(spool_dir, servers.redis_url) == 20_000
    client = redis.Redis.from_url(servers.redis_url)
    assert stream_ids(client, stream) == ids
    client.close()


def test_a_sender_stalled_on_redis_loses_nothing_the_callers_spool_the_overflow(
    tmp_path, servers, stream, redis_client
) -> None:
    # The sender waits out a 60 s socket timeout for the whole test, holding its first
    # batch: only callers spooling for it (they wait at most a second) keep the buffer from
    # overflowing.
    listener = hung_redis()
    try:
        client = connect(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", socket_timeout=60)
        logger = AICallLogger(
            client=client, stream=stream, spool_dir=tmp_path, max_buffer=1_000, backoff=fast_backoff
        )
        ids = [logger.log(task="t", model="m") for _ in range(5_000)]
        stats = logger.stats
        assert stats.dropped == 0 and stats.waited > 0
        assert stats.spooled + stats.buffered + stats.in_flight == 5_000
        logger.close(timeout=0.2)  # takes over the batch the sender holds: spooled too
        assert logger.stats.spooled == 5_000 and logger.stats.dropped == 0
    finally:
        listener.close()
    assert replay_spool(tmp_path, servers.redis_url) == 5_000
    assert sorted(stream_ids(redis_client, stream)) == sorted(ids)


def test_without_waiting_a_stalled_sender_drops_what_overflows_and_warns_once(
    tmp_path, stream, caplog
) -> None:
    listener = hung_redis()
    try:
        client = connect(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", socket_timeout=1)
        logger = AICallLogger(
            client=client,
            stream=stream,
            spool_dir=tmp_path,
            max_buffer=1_000,
            backoff=fast_backoff,
            wait_when_full=0,
        )
        for _ in range(5_000):  # far faster than one socket timeout
            logger.log(task="t", model="m")
        wait_until(lambda: logger.stats.spooled + logger.stats.dropped == 5_000)
        wait_until(lambda: "buffer has room again" in caplog.text)
        assert logger.stats.dropped >= 3_500 and logger.stats.waited == 0
        assert caplog.text.count("buffer is full") == 1
        logger.close(timeout=0.2)
    finally:
        listener.close()


def test_a_live_writers_spool_is_left_to_it(tmp_path, servers, stream, redis_client) -> None:
    spool_dir = tmp_path / "spool"
    down = AICallLogger(
        f"redis://127.0.0.1:{free_port()}/0",
        stream=stream,
        spool_dir=spool_dir,
        backoff=fast_backoff,
    )
    spooled = [down.log(task="t", model="m") for _ in range(200)]
    wait_until(lambda: down.stats.spooled == 200)
    up = AICallLogger(servers.redis_url, stream=stream, spool_dir=spool_dir)
    sent = [up.log(task="t", model="m") for _ in range(10)]
    assert up.flush(10)
    assert replay_spool(spool_dir, servers.redis_url) == 0
    assert stream_ids(redis_client, stream) == sent and up.stats.replayed == 0

    down.close(timeout=0.2)  # its writer gone, the segments are anyone's to send
    later = AICallLogger(servers.redis_url, stream=stream, spool_dir=spool_dir)
    wait_until(lambda: later.stats.replayed == 200, what="the next start to replay")
    assert stream_ids(redis_client, stream) == sent + spooled
    assert up.close() and later.close()
    assert segments(spool_dir) == []


# -- processes: SIGKILL and fork ---------------------------------------------------------

KILLED_PRODUCER = r"""
import json, os, sys, time
from producer import AICallLogger
from producer.backoff import Backoff

url, stream, spool_dir, report = sys.argv[1:5]
logger = AICallLogger(
    url, stream=stream, spool_dir=spool_dir, backoff=lambda: Backoff(base=0.05, cap=0.2)
)
ids = [logger.log(task="t", model="m", input_tokens=i) for i in range(5_000)]
deadline = time.monotonic() + 20
while logger.stats.spooled < len(ids) and time.monotonic() < deadline:
    time.sleep(0.01)
# The sender keeps order, so the first `spooled` events are the ones on disk.
spooled = logger.stats.spooled
with open(report + ".tmp", "w") as file:
    json.dump(ids[:spooled], file)
os.rename(report + ".tmp", report)
while True:  # keep logging, and spooling, until killed
    logger.log(task="t", model="m")
    time.sleep(0.0002)
"""

RESTARTED_PRODUCER = r"""
import json, sys
from producer import AICallLogger

url, stream, spool_dir = sys.argv[1:4]
logger = AICallLogger(url, stream=stream, spool_dir=spool_dir)
ids = [logger.log(task="t", model="m") for _ in range(100)]
ok = logger.close(timeout=20)
print(json.dumps({"ok": ok, "ids": ids, "replayed": logger.stats.replayed}))
"""


def test_a_sigkilled_producers_spooled_events_arrive_after_restart(
    tmp_path, redis_server, stream, run_burst, db
) -> None:
    spool_dir, report = tmp_path / "spool", tmp_path / "spooled.json"
    redis_server.stop()
    argv = [redis_server.url, stream, str(spool_dir), str(report)]
    killed = subprocess.Popen([sys.executable, "-c", KILLED_PRODUCER, *argv], cwd=ROOT)
    try:
        wait_until(report.exists, 30, "the producer to report what it spooled")
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
    promised = json.loads(report.read_text())
    assert len(promised) == 5_000  # the buffer in memory at the kill was lost, by definition

    redis_server.start()
    restarted = subprocess.run(
        [sys.executable, "-c", RESTARTED_PRODUCER, redis_server.url, stream, str(spool_dir)],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    after = json.loads(restarted.stdout)
    assert after["ok"] and after["replayed"] >= len(promised)
    client = redis_server.client()
    sent = stream_ids(client, stream)
    client.close()
    assert set(promised) <= set(sent) and set(after["ids"]) <= set(sent)
    assert list(dict.fromkeys(sent))[: len(promised)] == promised
    assert segments(spool_dir) == []

    run_burst(redis_url=redis_server.url)
    rows = db.execute("SELECT count(*), count(DISTINCT id) FROM ai_call_logs").fetchone()
    assert rows == (len(set(sent)), len(set(sent)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_spools_to_its_own_segment(tmp_path, servers, stream, redis_client) -> None:
    spool_dir = tmp_path / "spool"
    logger = AICallLogger(
        f"redis://127.0.0.1:{free_port()}/0",
        stream=stream,
        spool_dir=spool_dir,
        backoff=fast_backoff,
    )
    parent_ids = [logger.log(task="parent", model="m") for _ in range(100)]
    wait_until(lambda: logger.stats.spooled == 100)
    pid = os.fork()
    if pid == 0:  # child: its own sender and segment; close() spools what it logged
        code = 1
        try:
            ids = [logger.log(task="child", model="m") for _ in range(50)]
            logger.close(timeout=0.5)
            report = {"ids": ids, "spooled": logger.stats.spooled}
            (tmp_path / "child.json").write_text(json.dumps(report))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = json.loads((tmp_path / "child.json").read_text())
    assert child["spooled"] == 50
    writers = {path.name.split("-")[1] for path in segments(spool_dir)}
    assert writers == {str(os.getpid()), str(pid)}
    assert logger.close(timeout=0.2) is False  # Redis is still away: the events stay spooled

    result = ailedger("spool", "replay", str(spool_dir), "--redis-url", servers.redis_url)
    assert result.returncode == 0, result.stderr
    assert "sent 150" in result.stdout
    assert sorted(stream_ids(redis_client, stream)) == sorted(parent_ids + child["ids"])
    assert segments(spool_dir) == []


def test_spool_replay_without_redis_says_so_and_keeps_the_spool(tmp_path, stream) -> None:
    _ids, payloads = encoded(10)
    write_segment(tmp_path, stream, payloads)
    down = f"redis://127.0.0.1:{free_port()}/0"
    result = ailedger("spool", "replay", str(tmp_path), "--redis-url", down)
    assert result.returncode == 1
    assert "replay stopped" in result.stdout
    assert len(segments(tmp_path)) == 1
