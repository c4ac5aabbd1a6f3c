"""The alert rules: what each kind looks at, over the rollups or the queue, and finds.

Each kind (``RULES``) is a function of the evaluation's :class:`Context` and the
rule's parameters (``alert_rules.params``) that returns a :class:`Finding` per scope
for which the condition holds now, or None when it cannot tell (Redis away for the
queue rules). Deciding what to notify is ``ailedger/ops/alerts.py``'s part.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from ailedger.api import rollups
from ailedger.ops.budgets import rollup_sums
from ailedger.settings import Settings


@dataclass(frozen=True, slots=True)
class Finding:
    """A condition that holds for one scope of a rule or budget."""

    scope_key: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def money(value: Decimal) -> str:
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:,.6f}".rstrip("0")


def minute(ts: datetime) -> datetime:
    return rollups.floor_time(ts, "minute")


@dataclass(frozen=True, slots=True)
class Context:
    conn: psycopg.Connection[Any]
    settings: Settings
    now: datetime
    queue: Callable[[], Any]


def _cost_spike(ctx: Context, p: dict[str, Any]) -> list[Finding]:
    end = minute(ctx.now)
    start = end - timedelta(hours=1)
    days = int(p.get("days", 7))

    def cost(shift: int) -> Decimal:
        offset = timedelta(days=shift)
        found = rollup_sums(ctx.conn, start - offset, end - offset).get(())
        return found.cost if found else Decimal(0)

    last_hour = cost(0)
    median = Decimal(statistics.median([cost(d) for d in range(1, days + 1)]))
    factor = Decimal(str(p.get("factor", 3)))
    if last_hour < Decimal(str(p.get("min_cost_usd", 5))) or last_hour <= factor * median:
        return []
    ratio = f"{last_hour / median:.1f}x " if median else "over nothing at "
    return [
        Finding(
            "",
            f"AI spend of the last hour is {money(last_hour)}, {ratio}the median "
            f"({money(median)}) of the same hour on the previous {days} days",
            {"cost_usd": str(last_hour), "median_usd": str(median), "factor": str(factor)},
        )
    ]


def _rate(what: str) -> Callable[[Context, dict[str, Any]], list[Finding]]:
    def rule(ctx: Context, p: dict[str, Any]) -> list[Finding]:
        by = str(p.get("by", "task"))
        minutes = int(p.get("window_minutes", 15))
        end = minute(ctx.now)
        sums = rollup_sums(ctx.conn, end - timedelta(minutes=minutes), end, by=(by,))
        limit = float(p.get("max_rate", 0.3))
        found = []
        for (name,), s in sorted(sums.items()):
            count = s.errors if what == "error" else s.fallbacks
            if s.calls < int(p.get("min_calls", 50)) or count / s.calls <= limit:
                continue
            found.append(
                Finding(
                    f"{by}={name}",
                    f"{what} rate of {by} {name} is {count / s.calls:.0%} ({count} of "
                    f"{s.calls} calls) over the last {minutes} min, above {limit:.0%}",
                    {"calls": s.calls, what + "s": count, "rate": count / s.calls},
                )
            )
        return found

    return rule


def _queue_lag(ctx: Context, p: dict[str, Any]) -> list[Finding] | None:
    status = ctx.queue()
    if status is None:
        return None
    limit = int(p.get("max_lag", 10_000))
    if status.lag <= limit:
        return []
    return [
        Finding(
            "",
            f"{status.lag} events on {status.stream} were never delivered to a worker "
            f"(limit {limit}): start more workers (`ailedger worker -p N`), see `ailedger status`",
            {"lag": status.lag, "pending": status.pending},
        )
    ]


def _pending_age(ctx: Context, p: dict[str, Any]) -> list[Finding] | None:
    status = ctx.queue()
    if status is None:
        return None
    limit = float(p.get("max_age_s", 300))
    age = status.oldest_pending_age_s
    if age is None or age <= limit:
        return []
    return [
        Finding(
            "",
            f"the oldest unacknowledged event on {status.stream} is {age:.0f} s old "
            f"(limit {limit:.0f} s): a worker is stuck or Postgres is down; see `ailedger status`",
            {"oldest_pending_age_s": age, "pending": status.pending},
        )
    ]


def _dead_letters(ctx: Context, p: dict[str, Any]) -> list[Finding]:
    minutes = int(p.get("window_minutes", 60))
    row = ctx.conn.execute(
        "SELECT count(*) FROM ai_call_rejects WHERE first_seen >= %s",
        (ctx.now - timedelta(minutes=minutes),),
    ).fetchone()
    count = int(row[0]) if row else 0
    if count < int(p.get("min_new", 1)):
        return []
    return [
        Finding(
            "",
            f"{count} new dead letter(s) in the last {minutes} min: events the workers could "
            "not store; see `ailedger dlq list`, fix the cause, then `ailedger dlq replay --all`",
            {"new_dead_letters": count},
        )
    ]


def _unpriced(ctx: Context, p: dict[str, Any]) -> list[Finding]:
    days = int(p.get("window_days", 7))
    end = minute(ctx.now) + timedelta(minutes=1)
    sums = rollup_sums(ctx.conn, end - timedelta(days=days), end, by=("model", "provider"))
    found = []
    for (model, provider), s in sorted(sums.items()):
        if s.unpriced <= 0:
            continue
        who = f"model {model}" + (f" (provider {provider})" if provider else "")
        found.append(
            Finding(
                f"model={model}" + (f" provider={provider}" if provider else ""),
                f"{who} has no price: {s.unpriced} call(s) in the last {days} days are stored "
                "without a cost. Add a price override for it to price_overrides (provider, "
                "model, input_mtok, output_mtok), then run "
                f"`ailedger reprice --unpriced-only --model {model}`",
                {"model": model, "provider": provider, "unpriced_calls": s.unpriced},
            )
        )
    return found


RULES: dict[str, Callable[[Context, dict[str, Any]], list[Finding] | None]] = {
    "cost_spike": _cost_spike,
    "fallback_rate": _rate("fallback"),
    "error_rate": _rate("error"),
    "queue_lag": _queue_lag,
    "pending_age": _pending_age,
    "dead_letters": _dead_letters,
    "unpriced_model": _unpriced,
}
