from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from producer.scoring import (
    DEFAULT_WEIGHTS,
    FALLBACK_TO_RULES,
    USE_AI_RESULT,
    confidence_score,
    decide_action,
)

scores = st.decimals(min_value=0, max_value=1, places=3)
breakdowns = st.dictionaries(st.sampled_from(sorted(DEFAULT_WEIGHTS)), scores, min_size=1)


def test_weighted_mean_with_default_weights() -> None:
    breakdown = {
        "model_confidence": 0.9,
        "completeness": 0.8,
        "consistency": 0.7,
        "validation": 1.0,
    }
    # 0.4*0.9 + 0.2*(0.8 + 0.7 + 1.0) = 0.86
    assert confidence_score(breakdown) == Decimal("0.86")


def test_missing_components_renormalise_weights() -> None:
    assert confidence_score({"model_confidence": 0.9, "validation": 0.6}) == Decimal("0.80")


def test_rounds_half_up_not_to_even() -> None:
    # 0.4*0.5 + 0.2*0.625 ... chosen so the exact mean is 0.125 -> 0.13 (banker's would give 0.12)
    assert confidence_score({"completeness": 0.125}) == Decimal("0.13")
    assert confidence_score({"completeness": 0.135}) == Decimal("0.14")


def test_nothing_to_score_is_none_not_zero() -> None:
    assert confidence_score(None) is None
    assert confidence_score({}) is None
    assert confidence_score({"unknown_component": 0.5}) is None
    assert confidence_score({"model_confidence": "n/a"}) is None


def test_out_of_range_and_non_finite_components_are_ignored() -> None:
    breakdown = {"model_confidence": float("nan"), "completeness": 1.5, "validation": 0.5}
    assert confidence_score(breakdown) == Decimal("0.50")


def test_custom_weights() -> None:
    weights = {"model_confidence": Decimal(1), "validation": Decimal(3)}
    assert confidence_score({"model_confidence": 1, "validation": 0}, weights) == Decimal("0.25")


@given(breakdowns)
def test_score_is_the_rounded_weighted_mean(breakdown: dict[str, Decimal]) -> None:
    total = sum(DEFAULT_WEIGHTS[k] * v for k, v in breakdown.items())
    weight = sum(DEFAULT_WEIGHTS[k] for k in breakdown)
    expected = (total / weight).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    score = confidence_score(breakdown)
    assert score == expected
    assert score is not None and Decimal(0) <= score <= Decimal(1)


def test_action_follows_error_then_threshold() -> None:
    assert decide_action(Decimal("0.95")) == (USE_AI_RESULT, None)
    action, reason = decide_action(Decimal("0.69"))
    assert action == FALLBACK_TO_RULES and reason is not None and "0.69" in reason
    assert decide_action(Decimal("0.70"))[0] == USE_AI_RESULT
    action, reason = decide_action(Decimal("0.99"), error="TimeoutError: 30s")
    assert action == FALLBACK_TO_RULES and reason is not None and "TimeoutError" in reason
    assert decide_action(Decimal("0.75"), threshold=Decimal("0.80"))[0] == FALLBACK_TO_RULES
    assert decide_action(None) == (USE_AI_RESULT, None)
