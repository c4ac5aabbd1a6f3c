"""A real local Redis Cluster for tests: 3 masters, 3 replicas, on free ports, started here.

Started by the tests themselves from ``redis-server --cluster-enabled yes`` and joined with
``redis-cli --cluster create``; stopped at the end. Nothing touches the machine's Redis.
A node timeout of 1 s makes a replica take over within seconds of its master's death.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from tests.faults import wait_for

NODE_TIMEOUT_MS = 1000


def _free_cluster_port() -> int:
    """A port free for the node and for its cluster bus (port + 10000)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port + 10_000 > 65_535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def binaries() -> tuple[str, str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("redis-server and redis-cli are needed to start a local Redis Cluster")
    return server, cli


class LocalCluster:
    """Six ``redis-server`` processes in cluster mode; kill one, ask who owns a key."""

    def __init__(self, directory: Path, *, nodes: int = 6) -> None:
        self.directory = directory
        self.server, self.cli = binaries()
        self.ports = [_free_cluster_port() for _ in range(nodes)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> LocalCluster:
        for port in self.ports:
            self._launch(port)
        for port in self.ports:
            wait_for(lambda p=port: self._answers(p), timeout=15, what=f"node {port} to start")
        subprocess.run(
            [
                *(self.cli, "--cluster", "create"),
                *(f"127.0.0.1:{p}" for p in self.ports),
                *("--cluster-replicas", "1", "--cluster-yes"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()
        wait_for(self._replicas_in_sync, timeout=30, what="every replica to sync")
        return self

    def restart(self, port: int) -> None:
        """Start a killed node again: it rejoins, as a replica of the node that took over."""
        self._launch(port)
        wait_for(lambda: self._answers(port), timeout=15, what=f"node {port} to restart")
        self.wait_ok()
        wait_for(self._replicas_in_sync, timeout=30, what="the restarted node to sync")

    def _launch(self, port: int) -> None:
        folder = self.directory / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [
                self.server,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(folder / "nodes.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-replica-validity-factor", "0",
                "--dir", str(folder),
                "--save", "",
                "--appendonly", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def _answers(self, port: int) -> bool:
        with contextlib.suppress(redis.RedisError):
            return bool(self.node(port).ping())
        return False

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=1)

    def alive(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def _state_ok(self, port: int) -> bool:
        with contextlib.suppress(redis.RedisError):
            info: dict[str, Any] = self.node(port).cluster("info")
            return info.get("cluster_state") == "ok"
        return False

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node says ``cluster_state:ok`` and every slot has a live master."""
        wait_for(
            lambda: all(self._state_ok(p) for p in self.alive()) and self._masters_alive(),
            timeout=timeout,
            what="cluster_state:ok on every node",
        )

    def _masters_alive(self) -> bool:
        return set(self.masters()) <= set(self.alive())

    def masters(self) -> list[int]:
        """Ports of the masters, as a live node sees them."""
        port = self.alive()[0]
        slots = self.node(port).execute_command("CLUSTER SLOTS")
        return sorted({int(entry[2][1]) for entry in slots})

    def _replicas_in_sync(self) -> bool:
        for port in self.alive():
            info = self.node(port).info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    def client(self) -> RedisCluster:
        port = self.alive()[0]
        return RedisCluster(host="127.0.0.1", port=port, socket_timeout=5)

    def master_of(self, key: str) -> int:
        with contextlib.closing(self.client()) as client:
            return int(client.get_node_from_key(key).port)

    def kill(self, port: int) -> None:
        """SIGKILL one node: no chance to replicate what it holds, as in a crash."""
        proc = self.procs[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def local_cluster(directory: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(directory)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def wait_until_failover(cluster: LocalCluster, killed: int, timeout: float = 30) -> float:
    """Seconds until a replica has taken the killed master's slots and the cluster is ok."""
    started = time.monotonic()
    wait_for(lambda: killed not in cluster.masters(), timeout=timeout, what="a replica promoted")
    cluster.wait_ok(timeout)
    return time.monotonic() - started
