"""Job keys: any id a service gives its jobs (42, "upload-42", a UUID) as one UUID.

``ai_call_logs.job_id`` is a UUID. A key that is not one is stored as the UUID derived
from it (version 5, in :data:`JOB_KEY_NAMESPACE`, of the key's text as given), with the
key itself beside it in ``job_key``. Derivation is deterministic, so the worker, the API
and a service all find the same job from the same key, in any language:
``uuid5(ff158833-9b9d-52e9-8a88-7c3c6ea8dd63, "upload-42")``.
"""

from __future__ import annotations

import functools
import re
from uuid import UUID, uuid5

#: The namespace of derived job UUIDs: ``uuid5(NAMESPACE_URL, "ailedger:job")``. Fixed
#: forever: changing it would split every job logged before from the same job after.
JOB_KEY_NAMESPACE = UUID("ff158833-9b9d-52e9-8a88-7c3c6ea8dd63")


def job_key_text(key: object) -> str:
    """The text of a job key: a string as given, an integer in decimal."""
    if isinstance(key, bool) or not isinstance(key, int | str | UUID):
        raise TypeError(f"a job key is a UUID, an integer or a string, not {type(key).__name__}")
    return str(key)


def job_uuid(key: object) -> tuple[UUID, str | None]:
    """``(job UUID, key)`` for a job key: the key is None when it already was a UUID."""
    if isinstance(key, UUID):
        return key, None
    text = job_key_text(key)
    if isinstance(key, str):
        try:
            return UUID(text), None
        except ValueError:
            pass
    return uuid5(JOB_KEY_NAMESPACE, text), text


#: A UUID as ``str(UUID(...))`` writes it.
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@functools.lru_cache(maxsize=4096, typed=True)
def job_id_text(key: object) -> tuple[str, str | None]:
    """``job_uuid`` as text: ``(the job UUID's canonical text, key)``.

    A key that is a UUID in canonical text already (what producers send) is its own
    text: nothing is parsed or formatted. Remembered for the last few thousand keys
    (typed: 1 and True are one key to a plain cache): a job's calls repeat its id.
    """
    if isinstance(key, str) and CANONICAL_UUID.fullmatch(key):
        return key, None
    job, text = job_uuid(key)
    return str(job), text
