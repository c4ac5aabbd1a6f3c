"""``track()``: measure an AI call's latency and record its outcome, as a block or a decorator."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

from producer.scoring import FALLBACK_TO_RULES

F = TypeVar("F", bound=Callable[..., Any])


class TrackedCall:
    """One AI call being measured. ``record(...)`` adds fields (tokens, response, scores)."""

    __slots__ = ("_log", "_started", "event_id", "fields")

    def __init__(self, log: Callable[..., str], fields: dict[str, Any]) -> None:
        self._log = log
        self.fields = fields
        self._started = 0.0
        self.event_id = ""

    def record(self, **fields: Any) -> None:
        """Add or replace fields of the event, e.g. ``response=...`` or ``confidence_breakdown``."""
        self.fields.update(fields)

    def __enter__(self) -> TrackedCall:
        self.fields.setdefault("_started_wall", time.time())
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fields = self.fields
        fields["latency_ms"] = round((time.perf_counter() - self._started) * 1000)
        started_wall = fields.pop("_started_wall")
        fields.setdefault("timestamp", started_wall)
        if exc is not None and not isinstance(exc, GeneratorExit):
            fields.setdefault("error_message", f"{type(exc).__name__}: {exc}"[:2000])
            fields.setdefault("action", FALLBACK_TO_RULES)
            fields.setdefault("fallback_reason", f"error: {type(exc).__name__}")
        self.event_id = self._log(**fields)
        # Returning None re-raises the caller's exception: tracking never swallows it.


class track:
    """Measure an AI call; an exception is recorded as an error and re-raised.

    ``with track("material_classification", "claude-3-5-haiku-20241022") as call:``
    then ``call.record(response=resp)``; or decorate a function with the same
    arguments — each call of it is then one tracked AI call.
    """

    def __init__(
        self,
        task: str,
        model: str,
        *,
        logger: Any = None,
        **fields: Any,
    ) -> None:
        self._logger = logger
        self._fields = {"task": task, "model": model, **fields}
        self._call: TrackedCall | None = None

    def _new_call(self) -> TrackedCall:
        if self._logger is not None:
            log = self._logger.log
        else:
            from producer import log_call as log
        return TrackedCall(log, dict(self._fields))

    def __enter__(self) -> TrackedCall:
        self._call = self._new_call()
        return self._call.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._call is not None
        self._call.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._new_call() as call:
                    result = await func(*args, **kwargs)
                    if _looks_like_response(result):
                        call.record(response=result)
                    return result

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._new_call() as call:
                result = func(*args, **kwargs)
                if _looks_like_response(result):
                    call.record(response=result)
                return result

        return cast(F, wrapper)


def _looks_like_response(value: object) -> bool:
    return hasattr(value, "usage") or (isinstance(value, dict) and "usage" in value)
