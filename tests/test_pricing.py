"""Pricing: reported costs, Postgres overrides, and the genai-prices catalog, exactly."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import TimeOfDateConstraint
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import make_conninfo

from worker.pricing import (
    Override,
    PriceBook,
    Priced,
    catalog_windows,
    find_catalog_model,
    load_overrides,
)

ADMIN_URL = os.environ.get("AILEDGER_TEST_ADMIN_URL", "postgresql://127.0.0.1:5432/postgres")
NOW = datetime.now(UTC)
JUNE_2025 = datetime(2025, 6, 1, 12, tzinfo=UTC)

# Catalog models the property test prices: flat, cached, tiered, historic, off-peak.
CATALOG_MODELS = [
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("anthropic", "claude-sonnet-4-5"),  # token tiers
    ("anthropic", "claude-opus-4-6"),  # tiers until 2026-03-13, flat after
    ("openai", "gpt-4o"),
    ("openai", "text-embedding-3-small"),
    ("together", "meta-llama/Llama-4-Scout-17B-16E-Instruct"),
    ("google", "gemini-2.5-pro"),  # token tiers
    ("google", "gemini-3-pro-preview"),  # historic
    ("mistral", "ministral-8b-latest"),  # historic
    ("deepseek", "deepseek-chat"),  # off-peak hours: the catalog computes it
]


def catalog_total(provider: str | None, model: str, ts: datetime, **tokens: int) -> Decimal:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        usage = Usage(**tokens)
        return calc_price(
            usage, model, provider_id=provider, genai_request_timestamp=ts
        ).total_price


# --- the catalog --------------------------------------------------------------------------


def test_known_figures() -> None:
    book = PriceBook()
    sonnet = book.price(
        None, "claude-3-5-sonnet-20241022", JUNE_2025, input_tokens=1000, output_tokens=500
    )
    assert sonnet == Priced(Decimal("0.0105"), "catalog")
    embedding = book.price(None, "text-embedding-3-small", JUNE_2025, input_tokens=37)
    assert embedding == Priced(Decimal("0.00000074"), "catalog")
    scout = book.price(
        "together",
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        JUNE_2025,
        input_tokens=1000,
        output_tokens=500,
    )
    # $0.18 in, $0.59 out per million.
    assert scout == Priced(Decimal("0.000475"), "catalog")


def test_embedding_without_provider_is_priced_where_calc_price_gives_up() -> None:
    with pytest.raises(LookupError):
        calc_price(Usage(input_tokens=37), "text-embedding-3-small")
    book = PriceBook()
    without = book.price(None, "text-embedding-3-small", JUNE_2025, input_tokens=37)
    given_ = book.price("openai", "text-embedding-3-small", JUNE_2025, input_tokens=37)
    assert without == given_ == Priced(Decimal("0.00000074"), "catalog")


@pytest.mark.parametrize(
    ("provider", "model"),
    [("anthropic", "claude-3-5-sonnet-20241022"), ("Anthropic", "claude-3-5-sonnet-20241022")],
)
def test_provider_given_or_not_gives_the_same_price(provider: str, model: str) -> None:
    book = PriceBook()
    tokens: dict[str, Any] = {"input_tokens": 5000, "output_tokens": 300, "cache_read_tokens": 4000}
    assert book.price(provider, model, JUNE_2025, **tokens) == book.price(
        None, model, JUNE_2025, **tokens
    )


def test_unknown_model_is_unpriced_never_zero() -> None:
    book = PriceBook()
    assert book.price(None, "acme-llm-9000", NOW, input_tokens=1000) == Priced(None, "unpriced")
    assert book.price("acme", "acme-llm-9000", NOW, input_tokens=1) == Priced(None, "unpriced")
    # A provider the catalog knows, asked for a model it does not sell.
    assert book.price("together", "gpt-4o", NOW, input_tokens=1000).source == "unpriced"


def test_call_without_any_token_count_is_unpriced() -> None:
    book = PriceBook()
    assert book.price("openai", "gpt-4o", NOW) == Priced(None, "unpriced")
    assert book.price("openai", "gpt-4o", NOW, output_tokens=0).cost == 0


def test_reported_cost_wins_even_for_unknown_models_and_over_overrides() -> None:
    override = Override("", "gpt-4o", None, input_mtok=Decimal("1"))
    book = PriceBook(lambda: [override])
    for model in ("gpt-4o", "acme-llm-9000"):
        priced = book.price(
            "openai", model, NOW, input_tokens=10**6, reported_cost=Decimal("0.0123")
        )
        assert priced == Priced(Decimal("0.0123"), "reported")


def test_cache_counts_beyond_input_are_trusted_never_negative() -> None:
    book = PriceBook()
    model = "claude-3-5-sonnet-20241022"
    odd = book.price(
        "anthropic", model, NOW, input_tokens=100, cache_read_tokens=900, cache_write_tokens=50
    )
    # Uncached input is taken as 0: the cache counts are what the provider billed.
    expected = catalog_total(
        "anthropic", model, NOW, input_tokens=950, cache_read_tokens=900, cache_write_tokens=50
    )
    assert odd == Priced(expected, "catalog")
    assert odd.cost is not None and odd.cost > 0


def test_call_is_priced_at_the_price_in_force_at_its_timestamp() -> None:
    book = PriceBook()
    tokens: dict[str, Any] = {"input_tokens": 300_000, "output_tokens": 1000}
    change = datetime(2026, 3, 13, tzinfo=UTC)  # Opus 4.6 dropped its long-context tier
    before = book.price("anthropic", "claude-opus-4-6", change - timedelta(seconds=1), **tokens)
    after = book.price("anthropic", "claude-opus-4-6", change, **tokens)
    assert before.cost == Decimal("3.0375")
    assert after.cost == Decimal("1.525")


@settings(max_examples=400, deadline=None)
@given(
    model=st.sampled_from(CATALOG_MODELS),
    named=st.booleans(),
    input_tokens=st.integers(0, 2_000_000),
    output=st.integers(0, 200_000),
    cache_shares=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    ts=st.datetimes(
        min_value=datetime(2023, 1, 1),
        max_value=datetime.now().replace(tzinfo=None),
        timezones=st.just(UTC),
    ),
)
def test_price_matches_calc_price_exactly(
    model: tuple[str, str],
    named: bool,
    input_tokens: int,
    output: int,
    cache_shares: tuple[float, float],
    ts: datetime,
) -> None:
    provider, name = model
    cache_read = int(input_tokens * cache_shares[0])
    cache_write = int((input_tokens - cache_read) * cache_shares[1])
    tokens: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
    }
    expected = catalog_total(provider, name, ts, **tokens)
    priced = PriceBook().price(provider if named else None, name, ts, **tokens)
    assert priced == Priced(expected, "catalog")


def test_every_catalog_model_matches_calc_price_from_flat_rates() -> None:
    """Whole catalog, on both sides of every price change and of every token tier."""
    snapshot = get_snapshot()
    book = PriceBook()
    mismatches = []
    for provider in snapshot.providers:
        for model in provider.models:
            found = find_catalog_model(snapshot, provider.id, model.id)
            if found is None:
                continue
            windows = catalog_windows(found)
            off_peak = isinstance(model.prices, list) and any(
                isinstance(p.constraint, TimeOfDateConstraint) for p in model.prices
            )
            # Only off-peak prices may need the catalog per call: the rest must be fast.
            assert all((w.catalog_model is not None) == off_peak for w in windows), model.id
            stamps = [datetime(2023, 1, 1, tzinfo=UTC), NOW]
            inputs = {0, 1000, 250_000, 3_000_000}
            for window in windows:
                if window.valid_from is not None:
                    stamps += [window.valid_from, window.valid_from - timedelta(microseconds=1)]
                inputs |= {n for start, _ in window.tiers for n in (start, start + 1)}
            for ts in stamps:
                for inp in sorted(inputs):
                    tokens: dict[str, Any] = dict(
                        input_tokens=inp, output_tokens=1234, cache_read_tokens=inp // 3,
                        cache_write_tokens=inp // 11,
                    )  # fmt: skip
                    try:
                        expected: Decimal | None = catalog_total(
                            provider.id, model.id, ts, **tokens
                        )
                    except ValueError:  # catalog data the catalog itself cannot price
                        expected = None
                    got = book.price(provider.id, model.id, ts, **tokens).cost
                    if got != expected:
                        mismatches.append((provider.id, model.id, ts, tokens, got, expected))
    assert mismatches == []


def test_common_models_are_priced_from_flat_rates() -> None:
    """No per-call catalog computation for the models most calls use, tiered or not."""
    book = PriceBook()
    for provider, model in CATALOG_MODELS:
        rates = book.rates(provider, model, NOW)
        assert rates is not None
        assert (rates.catalog_model is None) == (provider != "deepseek"), model
    sonnet_4_5 = book.rates("anthropic", "claude-sonnet-4-5", NOW)
    assert sonnet_4_5 is not None and [start for start, _ in sonnet_4_5.tiers] == [200_000]


def test_price_batch_reads_the_event_fields() -> None:
    from worker.event import EVENT, CallEvent

    override = Override("", "vision-ft", None, input_mtok=Decimal("2"), per_image=Decimal("0.01"))
    book = PriceBook(lambda: [override])

    def event(**fields: Any) -> CallEvent:
        return EVENT.validate_python(
            {"id": str(uuid.uuid4()), "timestamp": JUNE_2025.isoformat(), "task": "t", **fields}
        )

    priced = book.price_batch(
        [
            event(model="vision-ft", input_tokens=1000, image_id="img-1"),
            event(model="vision-ft", input_tokens=1000),
            event(model="claude-3-5-sonnet-20241022", input_tokens=1000, output_tokens=500),
            event(model="text-embedding-3-small", provider="openai", input_tokens=37, cost=0.5),
            event(model="acme-llm-9000", input_tokens=10),
        ]
    )
    assert priced == [
        Priced(Decimal("0.012"), "override"),
        Priced(Decimal("0.002"), "override"),
        Priced(Decimal("0.0105"), "catalog"),
        Priced(Decimal("0.5"), "reported"),
        Priced(None, "unpriced"),
    ]


# --- overrides from Postgres ----------------------------------------------------------------


@pytest.fixture
def overrides_db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A migrated database of its own, for its price_overrides table."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def add_override(
    conn: psycopg.Connection[Any],
    model: str,
    provider: str = "",
    effective_from: datetime | None = None,
    **rates: str,
) -> None:
    columns = ["provider", "model", *rates]
    values: list[Any] = [provider, model, *(Decimal(v) for v in rates.values())]
    if effective_from is not None:
        columns.append("effective_from")
        values.append(effective_from)
    query = sql.SQL("INSERT INTO price_overrides ({}) VALUES ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    conn.execute(query, values)


def db_book(conn: psycopg.Connection[Any]) -> PriceBook:
    return PriceBook(lambda: load_overrides(conn))


def test_override_prices_a_model_the_catalog_lacks(overrides_db: psycopg.Connection[Any]) -> None:
    model = "acme/Llama-4-Scout-ft"
    assert PriceBook().price("together", model, NOW, input_tokens=1).source == "unpriced"
    add_override(overrides_db, model, "together", input_mtok="0.18", output_mtok="0.59")
    priced = db_book(overrides_db).price(
        "together", model, NOW, input_tokens=1000, output_tokens=500
    )
    assert priced == Priced(Decimal("0.000475"), "override")


def test_override_beats_the_catalog(overrides_db: psycopg.Connection[Any]) -> None:
    # A negotiated rate for Sonnet: $2 in, $10 out, no cache discount.
    add_override(overrides_db, "claude-3-5-sonnet-20241022", input_mtok="2", output_mtok="10")
    book = db_book(overrides_db)
    priced = book.price(
        "anthropic", "claude-3-5-sonnet-20241022", NOW, input_tokens=1000, output_tokens=500,
        cache_read_tokens=400,
    )  # fmt: skip
    # Without a cache rate, cached tokens are charged as input, as the catalog does.
    assert priced == Priced(Decimal("0.007"), "override")
    other = book.price("anthropic", "claude-sonnet-4-5", NOW, input_tokens=1000)
    assert other.source == "catalog"


def test_overrides_take_effect_from_their_date(overrides_db: psycopg.Connection[Any]) -> None:
    change = datetime(2025, 3, 1, tzinfo=UTC)
    add_override(overrides_db, "in-house-7b", input_mtok="1")
    add_override(overrides_db, "in-house-7b", effective_from=change, input_mtok="0.5")
    book = db_book(overrides_db)
    before = book.price(None, "in-house-7b", change - timedelta(microseconds=1), input_tokens=10**6)
    after = book.price(None, "in-house-7b", change, input_tokens=10**6)
    assert (before, after) == (Priced(Decimal(1), "override"), Priced(Decimal("0.5"), "override"))


def test_override_not_yet_in_force_leaves_the_catalog_price(
    overrides_db: psycopg.Connection[Any],
) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    add_override(overrides_db, "gpt-4o", "openai", effective_from=start, input_mtok="1")
    book = db_book(overrides_db)
    early = book.price("openai", "gpt-4o", start - timedelta(days=1), input_tokens=10**6)
    late = book.price("openai", "gpt-4o", start, input_tokens=10**6)
    assert early == Priced(Decimal("2.5"), "catalog")
    assert late == Priced(Decimal(1), "override")


def test_provider_specific_override_beats_any_provider(
    overrides_db: psycopg.Connection[Any],
) -> None:
    add_override(overrides_db, "qwen-72b", "", input_mtok="1")
    add_override(overrides_db, "qwen-72b", "together", input_mtok="0.8")
    book = db_book(overrides_db)
    million: dict[str, Any] = {"input_tokens": 10**6}
    assert book.price("together", "qwen-72b", NOW, **million).cost == Decimal("0.8")
    assert book.price("fireworks", "qwen-72b", NOW, **million).cost == Decimal(1)
    assert book.price(None, "qwen-72b", NOW, **million).cost == Decimal(1)


def test_overrides_are_cached_for_the_ttl(overrides_db: psycopg.Connection[Any]) -> None:
    add_override(overrides_db, "in-house-7b", input_mtok="1")
    loads = []
    now = [1000.0]

    def loader() -> list[Override]:
        loads.append(now[0])
        return load_overrides(overrides_db)

    book = PriceBook(loader, ttl_s=60, clock=lambda: now[0])
    million: dict[str, Any] = {"input_tokens": 10**6}
    assert book.price(None, "in-house-7b", NOW, **million).cost == 1
    overrides_db.execute("UPDATE price_overrides SET input_mtok = 3")
    now[0] += 59
    assert book.price(None, "in-house-7b", NOW, **million).cost == 1
    assert book.price_batch([]) == []
    assert loads == [1000.0]
    now[0] += 1
    assert book.price(None, "in-house-7b", NOW, **million).cost == 3
    assert loads == [1000.0, 1060.0]


def test_failed_reload_keeps_the_last_overrides() -> None:
    rows = [Override("", "in-house-7b", None, input_mtok=Decimal(1))]
    now = [0.0]

    def loader() -> list[Override]:
        if now[0] > 0:
            raise psycopg.OperationalError("connection refused")
        return rows

    book = PriceBook(loader, ttl_s=60, clock=lambda: now[0])
    assert book.price(None, "in-house-7b", NOW, input_tokens=10**6).cost == 1
    now[0] = 100
    assert book.price(None, "in-house-7b", NOW, input_tokens=10**6).cost == 1


def test_first_load_failure_is_raised() -> None:
    def loader() -> list[Override]:
        raise psycopg.OperationalError("connection refused")

    with pytest.raises(psycopg.OperationalError):
        PriceBook(loader).price(None, "gpt-4o", NOW, input_tokens=1)


def test_load_overrides_leaves_no_transaction_open(overrides_db: psycopg.Connection[Any]) -> None:
    add_override(overrides_db, "in-house-7b", input_mtok="1")
    info = overrides_db.info
    with psycopg.connect(make_conninfo(ADMIN_URL, dbname=info.dbname)) as conn:
        (row,) = load_overrides(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert row == Override("", "in-house-7b", None, input_mtok=Decimal(1))


@pytest.mark.parametrize("via", ["url", "pool"])
def test_book_from_database(overrides_db: psycopg.Connection[Any], via: str) -> None:
    from psycopg_pool import ConnectionPool

    add_override(overrides_db, "in-house-7b", input_mtok="1")
    url = make_conninfo(ADMIN_URL, dbname=overrides_db.info.dbname)
    if via == "url":
        book = PriceBook.from_database(url, ttl_s=60)
        assert book.price(None, "in-house-7b", NOW, input_tokens=10**6).cost == 1
        return
    with ConnectionPool(url, min_size=1, max_size=1, open=True) as pool:
        book = PriceBook.from_database(pool, ttl_s=60)
        assert book.price(None, "in-house-7b", NOW, input_tokens=10**6).cost == 1
