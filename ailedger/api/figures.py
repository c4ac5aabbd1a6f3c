"""What the API's token and cost figures mean: one definition each, for Python and SQL.

Tokens: a call's total is ``input_tokens + output_tokens``, the figure the provider bills and
reports (OpenAI's ``total_tokens``; Anthropic's input, cache reads, cache writes and
output together). ``input_tokens`` already includes cache reads and writes, so the cache
counts are never added again (SPEC §2).

Cost: the exact sum over the priced calls of a group, and ``None`` (JSON null, "unknown")
when the group has calls and none of them is priced, never $0. Failed calls that reported
no usage (``cost_source = 'no_usage'``) are priced at $0: nothing was billed.
"""

from __future__ import annotations

from decimal import Decimal


def total_tokens(input_tokens: int | None, output_tokens: int | None) -> int:
    """A call's (or a sum of calls') total tokens; a missing count counts as 0."""
    return (input_tokens or 0) + (output_tokens or 0)


def total_tokens_sql(alias: str = "") -> str:
    """The SQL expression of :func:`total_tokens` over a row of ``ai_call_logs`` or rollups.

    ``alias``: the table alias the columns are qualified with, e.g. ``"r"``.
    """
    prefix = f"{alias}." if alias else ""
    # bigint: two counts near the integer limit must not overflow the sum.
    return f"(coalesce({prefix}input_tokens, 0)::bigint + coalesce({prefix}output_tokens, 0))"


def group_cost(cost: Decimal | None, calls: int, unpriced: int) -> Decimal | None:
    """A group's cost figure: None when it has calls and every one of them is unpriced."""
    if calls > 0 and unpriced >= calls:
        return None
    return cost if cost is not None else Decimal(0)
