"""Event ids: unique UUIDs for a fraction of a microsecond, without a system call.

An id is a prefix of 74 random bits, drawn from the OS once per process (and again in
a forked child, so that parent and child never share one), then a 48-bit counter that
starts at a random value: a version-8 UUID, RFC 9562's layout for a custom scheme. The
id is the idempotency key all the way to the table's primary key; it must be unique,
not unguessable.

- ``uuid.uuid4()`` reads ``os.urandom``, a system call that releases the GIL in the
  middle of ``log()``; a busy sender thread then takes the GIL and the caller can wait
  out a whole switch interval (5 ms).
- 128 random bits formatted per call, without the system call, cost ~0.7 µs hot and
  several times that in a service whose caches went cold between calls. A counter
  after a fixed prefix is one C call and one format: ~0.17 µs.
- Two processes repeat an id only if they draw the same 74-bit prefix and their
  counters overlap: among a million producer processes, a chance of about 3 in 10^11.
- One process's ids are consecutive, so the primary key's index receives them in
  order, not at random pages.
- The sender thread still makes ids ahead while it waits (:func:`make_ahead`), and
  ``log()`` pops one: a deque pop is cheaper again, above all with cold caches.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections import deque

_COUNTER_BITS = 48
_COUNTER_MASK = (1 << _COUNTER_BITS) - 1
_prefix = ""
_counter = itertools.count()


def new_event_id() -> str:
    """A UUID unique to this process, in canonical text form. Safe from any thread."""
    # next() on itertools.count is one C call: two threads never get the same value.
    return _prefix + "%012x" % (next(_counter) & _COUNTER_MASK)


#: Ids made ahead by senders, taken by callers; shared by every logger of the process.
_pool: deque[str] = deque()
#: How many ids are kept made ahead: a few batches' worth at the paced rates.
POOL_SIZE = 4096
#: Ids made between two releases of the GIL: ~25 µs, so no caller waits behind them.
_CHUNK = 128


def take_event_id() -> str:
    """An id made ahead, or a new one when none is left (the caller's side)."""
    if _pool:  # checked first: raising IndexError on an empty pool costs more than an id
        try:
            return _pool.popleft()
        except IndexError:  # another thread took the last one meanwhile
            pass
    return new_event_id()


def make_ahead(limit: int = 1024) -> None:
    """Top the pool up by at most ``limit`` ids (the sender's side, between batches).

    Made in chunks with the GIL released between them: a caller never waits behind
    more than one chunk.
    """
    pool = _pool
    todo = min(limit, POOL_SIZE - len(pool))
    while todo > 0:
        for _ in range(min(todo, _CHUNK)):
            pool.append(new_event_id())
        todo -= _CHUNK
        time.sleep(0)  # lets a caller waiting for the GIL in


def _reseed() -> None:
    global _prefix, _counter
    _pool.clear()  # a forked child never hands out ids its parent made
    rng = random.Random(os.urandom(32))
    # 8-4-4-4- hex digits: 32 + 16 random bits, version 8 and 12 random bits, the
    # RFC 4122 variant (0b10) and 14 random bits.
    a, b, c, d = (rng.getrandbits(n) for n in (32, 16, 12, 14))
    _prefix = f"{a:08x}-{b:04x}-8{c:03x}-{0x8000 | d:04x}-"
    # Started in the lower half: at least 2^47 ids before the counter wraps, 2^48 before
    # an id repeats.
    _counter = itertools.count(rng.getrandbits(_COUNTER_BITS - 1))


_reseed()
os.register_at_fork(after_in_child=_reseed)
