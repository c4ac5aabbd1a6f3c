"""`ailedger dlq`: list what was refused and why, replay after a fix, purge old ones."""

from __future__ import annotations

import orjson

from producer import AICallLogger
from producer.constants import dead_letter_stream
from tests.faults import run_ailedger


def dlq(settings, *args: str):  # type: ignore[no-untyped-def]
    """``ailedger dlq ARGS`` on the test's servers."""
    return run_ailedger(settings, "dlq", *args, timeout=60)


def test_list_replay_after_fix_and_purge(settings, db, redis_client, run_burst) -> None:
    # Postgres refuses one task until the operator fixes the table: the classic replay case.
    db.execute("ALTER TABLE ai_call_logs ADD CONSTRAINT short_task CHECK (length(task) < 20)")
    logger = AICallLogger(settings.redis_url, stream=settings.stream)
    kept = logger.log(task="classification", model="gpt-4o", input_tokens=10)
    refused = logger.log(task="product_enrichment_stage2", model="gpt-4o", input_tokens=10)
    assert logger.flush(5)
    logger.close()
    run_burst()
    assert [r[0] for r in db.execute("SELECT id::text FROM ai_call_logs")] == [kept]

    listed = dlq(settings, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (letter,) = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert letter["event_id"] == refused and "short_task" in letter["reason"]
    assert orjson.loads(letter["raw"])["id"] == refused

    assert dlq(settings, "replay").returncode == 2  # must say which
    db.execute("ALTER TABLE ai_call_logs DROP CONSTRAINT short_task")  # the fix
    replayed = dlq(settings, "replay", "--id", letter["stream_id"])
    assert replayed.returncode == 0, replayed.stderr
    run_burst()
    stored = {r[0] for r in db.execute("SELECT id::text FROM ai_call_logs")}
    assert stored == {kept, refused}
    assert dlq(settings, "list", "--json").stdout.strip() == ""  # replayed ones hidden

    unknown = dlq(settings, "replay", "--id", "1-1")
    assert unknown.returncode == 1 and "no dead letter" in unknown.stdout

    assert redis_client.xlen(dead_letter_stream(settings.stream)) == 1
    bad_age = dlq(settings, "purge", "--older-than", "soon")
    assert bad_age.returncode == 2 and "30d" in bad_age.stdout
    db.execute("UPDATE ai_call_rejects SET last_seen = NOW() - interval '40 days'")
    purged = dlq(settings, "purge", "--older-than", "30d")
    assert purged.returncode == 0 and "purged 1" in purged.stdout
    assert db.execute("SELECT count(*) FROM ai_call_rejects").fetchone() == (0,)
