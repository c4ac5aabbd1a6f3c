"""Event ids: random (version 4) UUIDs made without a system call.

``uuid.uuid4()`` reads ``os.urandom``, a system call that releases the GIL in the
middle of ``log()``; a busy sender thread then takes the GIL and the caller can
wait out a whole switch interval (5 ms). A Mersenne Twister seeded from the OS
once per process (and again in a forked child, so parent and child never share a
sequence) gives the same 122 random bits without leaving the interpreter. The
ids need to be unique, not unguessable.
"""

from __future__ import annotations

import os
import random
import time
from collections import deque

_rng = random.Random()
_VERSION_MASK = ~(0xF000 << 64) & ~(0xC000 << 48)
_VERSION_BITS = (4 << 76) | (0x8000 << 48)


def new_event_id() -> str:
    """A random UUID in its canonical text form, like ``str(uuid.uuid4())``."""
    h = "%032x" % ((_rng.getrandbits(128) & _VERSION_MASK) | _VERSION_BITS)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: Ids made ahead by senders, taken by callers; shared by every logger of the process.
_pool: deque[str] = deque()
#: How many ids are kept made ahead: a few batches' worth at the paced rates.
POOL_SIZE = 4096
#: Ids made between two releases of the GIL: ~0.1 ms, so no caller waits behind them.
_CHUNK = 64


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

    Made in small chunks with the GIL released between them: a caller never waits
    behind more than one chunk.
    """
    pool = _pool
    todo = min(limit, POOL_SIZE - len(pool))
    while todo > 0:
        for _ in range(min(todo, _CHUNK)):
            pool.append(new_event_id())
        todo -= _CHUNK
        time.sleep(0)  # lets a caller waiting for the GIL in


def _reseed() -> None:
    _rng.seed(os.urandom(32))
    _pool.clear()


_reseed()
os.register_at_fork(after_in_child=_reseed)
