"""Capped exponential backoff with full jitter, small enough for tests to shrink."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delay before the next attempt: ``base * 2**attempts``, capped, with jitter.

    Full jitter (a uniform draw in [delay/2, delay]) keeps many workers that lost
    the same server from coming back in lockstep.
    """

    base: float = 0.1
    cap: float = 10.0
    attempts: int = 0
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return self._random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempts = 0
