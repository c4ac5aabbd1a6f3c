from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable

from producer.ids import POOL_SIZE, make_ahead, new_event_id, take_event_id


def _id_from_a_forked_child(make: Callable[[], str]) -> str:
    """The id ``make()`` gives in a child forked from this process."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, make().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    return child


def test_ids_are_canonical_version_8_uuids_and_unique_across_threads() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def work(mine: list[str]) -> None:
        mine.extend(new_event_id() for _ in range(50_000))

    threads = [threading.Thread(target=work, args=(m,)) for m in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for mine in made for i in mine]
    assert len(set(ids)) == 200_000
    for text in ids[:1000] + ids[-1000:]:
        parsed = uuid.UUID(text)
        assert parsed.version == 8 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # what Postgres's uuid type gives back


def test_a_forked_child_shares_no_id_with_its_parent() -> None:
    child = _id_from_a_forked_child(new_event_id)
    parents = [new_event_id() for _ in range(10)]
    assert child not in parents
    # Not the parent's sequence continued: the child drew its own prefix.
    assert child[:24] != parents[0][:24]


def test_another_process_draws_its_own_prefix() -> None:
    code = "from producer.ids import new_event_id; print(new_event_id())"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert uuid.UUID(other).version == 8
    assert other[:24] != new_event_id()[:24]


def test_ids_made_ahead_are_unique_and_a_forked_child_does_not_take_its_parents() -> None:
    make_ahead(limit=POOL_SIZE)
    ahead = [take_event_id() for _ in range(POOL_SIZE)]
    made = [take_event_id() for _ in range(100)]  # the pool is empty: made on the spot
    assert len(set(ahead + made)) == POOL_SIZE + 100
    assert all(uuid.UUID(text).version == 8 for text in ahead[:100] + made)

    make_ahead(limit=10)
    child = _id_from_a_forked_child(take_event_id)
    parents = {take_event_id() for _ in range(10)}
    assert child not in parents
