from __future__ import annotations

import os
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


def test_ids_are_valid_version_4_uuids_and_unique() -> None:
    ids = [new_event_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:1000]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    child = _id_from_a_forked_child(new_event_id)
    assert child != new_event_id()


def test_ids_made_ahead_are_unique_and_a_forked_child_does_not_take_its_parents() -> None:
    make_ahead(limit=POOL_SIZE)
    ahead = [take_event_id() for _ in range(POOL_SIZE)]
    made = [take_event_id() for _ in range(100)]  # the pool is empty: made on the spot
    assert len(set(ahead + made)) == POOL_SIZE + 100
    assert all(uuid.UUID(text).version == 4 for text in ahead[:100] + made)

    make_ahead(limit=10)
    child = _id_from_a_forked_child(take_event_id)
    parents = {take_event_id() for _ in range(10)}
    assert child not in parents
