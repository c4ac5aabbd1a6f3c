"""What a path or query parameter of the API may hold, defined once for every router.

Job keys and image ids are the services' own text: slashes (S3 keys, file paths) and
newlines included. Routes that take one use the ``key`` converter
(``/api/admin/jobs/{job_id:key}/ai-costs``), registered when this module is imported,
so import it before declaring such a route.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator
from starlette.convertors import PathConvertor, register_url_convertor

from worker.event import storable_text

#: Text the way the worker stored it (no NUL, no lone surrogates), so that a job key, an
#: image id or a filter finds what the worker stored from the same text.
Stored = Annotated[str, AfterValidator(storable_text)]


class KeyConvertor(PathConvertor):
    """A path segment holding any text: slashes (S3 keys, file paths) and newlines too."""

    regex = r"[\s\S]*"


register_url_convertor("key", KeyConvertor())
