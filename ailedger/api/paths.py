"""What a path or query parameter of the API may hold, defined once for every router.

Times (``from``/``to``) are a :data:`Moment`: an ISO 8601 date-time or date, or Unix time.

Job keys and image ids are the services' own text: slashes (S3 keys, file paths) and
newlines included. Routes that take one use the ``key`` converter
(``/api/admin/jobs/{job_id:key}/ai-costs``), registered when this module is imported,
so import it before declaring such a route.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema
from starlette.convertors import PathConvertor, register_url_convertor

from worker.event import storable_text

#: The furthest a job's calls can be paged (a Postgres integer).
MAX_OFFSET = 2**31 - 1
#: Text the way the worker stored it (no NUL, no lone surrogates), so that a job key, an
#: image id or a filter finds what the worker stored from the same text.
Stored = Annotated[str, AfterValidator(storable_text)]


#: A point in time as the API accepts it, and as its OpenAPI document says: an ISO 8601
#: date-time or date, or Unix time in seconds.
Moment = Annotated[
    datetime,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
                {"type": "number"},
            ]
        }
    ),
]


class KeyConvertor(PathConvertor):
    """A path segment holding any text: slashes (S3 keys, file paths) and newlines too."""

    regex = r"[\s\S]*"


register_url_convertor("key", KeyConvertor())
