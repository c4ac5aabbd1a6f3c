"""Delivering alerts: an outbox in Postgres, webhooks and Slack, retried until they arrive.

A notification is written to ``alert_outbox`` in the same transaction as the alert
that decided it (:func:`enqueue`), so a decision is never made without its message,
nor a message sent for a decision that rolled back. :func:`deliver` then sends:

- per receiver URL, oldest message first; a failure stops that receiver's queue
  until its backoff (capped exponential, full jitter) has passed, so a receiver
  that was down gets everything later, in order;
- the receiver's row is locked ``FOR UPDATE SKIP LOCKED`` while its head message is
  sent, so several deliverers never send the same message, nor one receiver's
  messages out of order;
- after ``outbox_max_attempts`` failures the message, and what waits behind it for
  that receiver, is marked ``failed_at`` with the last error: visible in
  ``ailedger alerts outbox``, retried with ``ailedger alerts retry``, never dropped.

Delivery is at least once: a crash between a receiver's 2xx and the commit sends
that message again, with the same ``X-Ailedger-Delivery`` id for receivers to skip it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg
import structlog
from psycopg.types.json import Jsonb

from ailedger.settings import Settings
from producer.backoff import Backoff

log = structlog.get_logger("ailedger.outbox")

#: (url, body, headers, timeout) -> None; raises DeliveryFailed. Tests may pass their own.
Sender = Callable[[str, bytes, dict[str, str], float], None]


class DeliveryFailedError(Exception):
    """A receiver did not take a message (the message says how it answered)."""


def channel_of(url: str) -> str:
    """``slack`` for Slack incoming webhooks, ``webhook`` for everything else."""
    return "slack" if urlsplit(url).hostname == "hooks.slack.com" else "webhook"


def enqueue(
    conn: psycopg.Connection[Any],
    alert_id: int,
    event: str,
    payload: dict[str, Any],
    urls: Sequence[str],
) -> int:
    """Queue one message per receiver; call inside the transaction that made the decision."""
    for url in dict.fromkeys(urls):
        conn.execute(
            "INSERT INTO alert_receivers (url) VALUES (%s) ON CONFLICT (url) DO NOTHING", (url,)
        )
        conn.execute(
            "INSERT INTO alert_outbox (alert_id, event, url, channel, payload)"
            " VALUES (%s, %s, %s, %s, %s)",
            (alert_id, event, url, channel_of(url), Jsonb(payload)),
        )
    return len(dict.fromkeys(urls))


def webhook_body(delivery_id: int, event: str, payload: dict[str, Any]) -> bytes:
    """The documented JSON of a webhook (docs/alerts.md)."""
    return orjson.dumps(
        {
            "type": "ailedger.alert",
            "version": 1,
            "delivery_id": delivery_id,
            "event": event,
            "alert": payload,
        }
    )


def slack_body(event: str, payload: dict[str, Any]) -> bytes:
    """Slack's incoming-webhook format; everything from the data is plain text, never mrkdwn."""
    prefix = "Resolved" if event == "resolved" else "Alert"
    text = f"{prefix}: {payload['summary']}"
    context = f"ailedger · {payload['name']} · fired {payload['fired_at']}"
    if payload.get("resolved_at"):
        context += f" · resolved {payload['resolved_at']}"
    blocks = [
        {"type": "section", "text": {"type": "plain_text", "text": text[:3000]}},
        {"type": "context", "elements": [{"type": "plain_text", "text": context[:3000]}]},
    ]
    return orjson.dumps({"text": text, "blocks": blocks})


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>``, the X-Ailedger-Signature header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    """POST with the standard library; any answer but 2xx is a failure."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65_536)
    except urllib.error.HTTPError as exc:
        raise DeliveryFailedError(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailedError(f"{type(exc).__name__}: {reason}") from None


@dataclass(slots=True)
class DeliveryReport:
    delivered: int = 0
    failed_attempts: int = 0
    marked_failed: int = 0


_NEXT_RECEIVER = """
SELECT r.url, r.failures FROM alert_receivers r
WHERE r.next_attempt_at <= %(now)s
  AND EXISTS (SELECT FROM alert_outbox o
              WHERE o.url = r.url AND o.delivered_at IS NULL AND o.failed_at IS NULL)
ORDER BY r.next_attempt_at, r.url
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

_HEAD = """
SELECT id, event, channel, payload, attempts FROM alert_outbox
WHERE url = %s AND delivered_at IS NULL AND failed_at IS NULL
ORDER BY id LIMIT 1
"""


def deliver(
    conn: psycopg.Connection[Any],
    settings: Settings,
    *,
    sender: Sender = http_post,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    max_messages: int = 10_000,
) -> DeliveryReport:
    """Send what is due, receiver by receiver, oldest first; returns what happened."""
    report = DeliveryReport()
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    for _ in range(max_messages):
        with conn.transaction():
            picked = conn.execute(_NEXT_RECEIVER, {"now": now()}).fetchone()
            if picked is None:
                break
            url, failures = picked
            head = conn.execute(_HEAD, (url,)).fetchone()
            if head is None:
                continue
            outbox_id, event, channel, payload, attempts = head
            if channel == "slack":
                body = slack_body(event, payload)
            else:
                body = webhook_body(outbox_id, event, payload)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "ailedger-alerts/1",
                "X-Ailedger-Delivery": str(outbox_id),
                "X-Ailedger-Event": event,
                "X-Ailedger-Timestamp": str(int(time.time())),
            }
            if secret:
                headers["X-Ailedger-Signature"] = signature(secret, body)
            try:
                sender(url, body, headers, settings.outbox_timeout_s)
            except DeliveryFailedError as exc:
                report.failed_attempts += 1
                _failed(conn, settings, url, failures, outbox_id, attempts + 1, str(exc), now())
                if attempts + 1 >= settings.outbox_max_attempts:
                    report.marked_failed += _give_up(conn, url, outbox_id, attempts + 1, now())
                continue
            conn.execute(
                "UPDATE alert_outbox SET delivered_at = %s, attempts = attempts + 1,"
                " last_error = NULL WHERE id = %s",
                (now(), outbox_id),
            )
            conn.execute(
                "UPDATE alert_receivers SET failures = 0, last_error = NULL,"
                " next_attempt_at = '-infinity' WHERE url = %s",
                (url,),
            )
            report.delivered += 1
    return report


def _failed(
    conn: psycopg.Connection[Any],
    settings: Settings,
    url: str,
    failures: int,
    outbox_id: int,
    attempts: int,
    error: str,
    at: datetime,
) -> None:
    delay = Backoff(
        base=settings.outbox_backoff_base_s, cap=settings.outbox_backoff_cap_s, attempts=failures
    ).next_delay()
    conn.execute(
        "UPDATE alert_outbox SET attempts = %s, last_error = %s WHERE id = %s",
        (attempts, error, outbox_id),
    )
    conn.execute(
        "UPDATE alert_receivers SET failures = failures + 1, last_error = %s,"
        " next_attempt_at = %s WHERE url = %s",
        (error, at + timedelta(seconds=delay), url),
    )
    log.warning(
        "alert delivery failed",
        url=safe_url(url),
        delivery=outbox_id,
        attempts=attempts,
        error=error,
        retry_in_s=round(delay, 2),
    )


def _give_up(
    conn: psycopg.Connection[Any], url: str, outbox_id: int, attempts: int, at: datetime
) -> int:
    """Mark the head and everything queued behind it for ``url`` failed; returns how many."""
    cursor = conn.execute(
        "UPDATE alert_outbox SET failed_at = %s, last_error = CASE WHEN id = %s THEN last_error"
        " ELSE 'not sent: message ' || %s || ' to this receiver failed ' || %s || ' times' END"
        " WHERE url = %s AND delivered_at IS NULL AND failed_at IS NULL",
        (at, outbox_id, outbox_id, attempts, url),
    )
    log.error(
        "receiver keeps failing: its messages are marked failed; "
        "see `ailedger alerts outbox`, then `ailedger alerts retry`",
        url=safe_url(url),
        messages=cursor.rowcount,
    )
    return cursor.rowcount


def retry_failed(conn: psycopg.Connection[Any], *, url: str | None = None) -> int:
    """Queue messages marked failed again (all, or one receiver's); returns how many."""
    with conn.transaction():
        cursor = conn.execute(
            "UPDATE alert_outbox SET failed_at = NULL, attempts = 0"
            " WHERE failed_at IS NOT NULL AND delivered_at IS NULL"
            " AND (%(url)s::text IS NULL OR url = %(url)s)",
            {"url": url},
        )
        conn.execute(
            "UPDATE alert_receivers SET failures = 0, next_attempt_at = '-infinity'"
            " WHERE %(url)s::text IS NULL OR url = %(url)s",
            {"url": url},
        )
    return cursor.rowcount


def safe_url(url: str) -> str:
    """A receiver URL for logs: Slack and most webhooks carry their secret in the path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{'/…' if parts.path not in ('', '/') else ''}"
