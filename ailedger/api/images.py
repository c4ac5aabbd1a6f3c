"""Per-image costs for ids that hold a ``/`` (``catalog/2025/chair.png``).

A path segment cannot carry a ``/``, so the dashboard asks with the id as a query
parameter; the answer is the same as ``/api/admin/images/{image_id}/ai-costs``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ailedger.api import costs
from ailedger.api import models as m

router = APIRouter(tags=["dashboard"])


@router.get("/api/admin/image-costs", response_model=m.ImageCosts)
def image_costs(
    request: Request,
    image_id: Annotated[str, Query(alias="id", min_length=1, max_length=500)],
) -> m.ImageCosts:
    """Cost per step (embedding, vision analysis, validation, …) of one image, and the total."""
    backends: Any = request.app.state.backends
    with backends.pool().connection() as conn:
        return costs.image_costs(conn, image_id)
