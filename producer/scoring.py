"""Confidence scoring: one pure function shared by services (in the request path) and workers."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

USE_AI_RESULT = "use_ai_result"
FALLBACK_TO_RULES = "fallback_to_rules"
ACTIONS = (USE_AI_RESULT, FALLBACK_TO_RULES)

DEFAULT_WEIGHTS: Mapping[str, Decimal] = {
    "model_confidence": Decimal("0.4"),
    "completeness": Decimal("0.2"),
    "consistency": Decimal("0.2"),
    "validation": Decimal("0.2"),
}
DEFAULT_THRESHOLD = Decimal("0.70")
_CENT = Decimal("0.01")


@functools.lru_cache(maxsize=4096)
def _float_decimal(value: float) -> Decimal:
    # Scores repeat (0.85, 0.9, 1.0 …): converting each distinct float once is enough.
    return Decimal(repr(value))


def _as_decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        number = _float_decimal(value) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number < 0 or number > 1:
        return None
    return number


def confidence_score(
    breakdown: Mapping[str, object] | None,
    weights: Mapping[str, Decimal] | None = None,
) -> Decimal | None:
    """Weighted mean of the breakdown's known components, rounded half up to 2 decimals.

    Components without a weight, or whose value is not a number in [0, 1], are left
    out; the weights of the components present are renormalised. Returns None when
    no weighted component is present.
    """
    if not breakdown:
        return None
    weights = DEFAULT_WEIGHTS if weights is None else weights
    total = Decimal(0)
    weight_sum = Decimal(0)
    for name, weight in weights.items():
        raw = breakdown.get(name)
        if raw is None or weight <= 0:
            continue
        if type(raw) is float:  # the common case, checked inline: NaN fails both bounds
            if not 0.0 <= raw <= 1.0:
                continue
            value = _float_decimal(raw)
        else:
            number = _as_decimal(raw)
            if number is None:
                continue
            value = number
        total += value * weight
        weight_sum += weight
    if weight_sum == 0:
        return None
    return (total / weight_sum).quantize(_CENT, rounding=ROUND_HALF_UP)


def decide_action(
    score: Decimal | None,
    *,
    error: str | None = None,
    threshold: Decimal = DEFAULT_THRESHOLD,
) -> tuple[str, str | None]:
    """What a service should do with an AI result: ``(action, fallback_reason)``.

    An error, or a score below the threshold, means falling back to rules; no score
    at all (nothing to judge by) keeps the AI result.
    """
    if error:
        return FALLBACK_TO_RULES, f"error: {error[:200]}"
    if score is not None and score < threshold:
        return FALLBACK_TO_RULES, f"confidence {score} below threshold {threshold}"
    return USE_AI_RESULT, None
