"""The contract both producers keep: one table of cases in contract/, read by Python and TypeScript.

The expected values in those tables were worked out by hand from the scoring rule
(SPEC §5) and from what each provider's documentation says its usage fields mean.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from producer.scoring import confidence_score, decide_action
from producer.usage import usage_from_response

CONTRACT = Path(__file__).resolve().parent.parent / "contract"
SCORING = json.loads((CONTRACT / "scoring-cases.json").read_text())
USAGE = json.loads((CONTRACT / "usage-cases.json").read_text())


@pytest.mark.parametrize("case", SCORING["cases"], ids=lambda c: c["name"])
def test_scoring_matches_the_shared_table(case: dict[str, Any]) -> None:
    weights = {
        k: Decimal(v) for k, v in (case.get("weights") or SCORING["default_weights"]).items()
    }
    threshold = Decimal(case.get("threshold") or SCORING["default_threshold"])
    score = confidence_score(case["breakdown"], weights)
    assert (None if score is None else str(score)) == case["score"]
    action, reason = decide_action(score, error=case.get("error"), threshold=threshold)
    assert (action, reason) == (case["action"], case["fallback_reason"])


@pytest.mark.parametrize("case", USAGE["cases"], ids=lambda c: c["name"])
def test_usage_matches_the_shared_table(case: dict[str, Any]) -> None:
    assert usage_from_response(case["response"]) == case["expected"]
