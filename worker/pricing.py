"""What an AI call cost: a reported cost, an override from Postgres, or the catalog.

A call's cost comes from, in order: the cost its producer reported; the row of
``price_overrides`` in force at the call's timestamp; the genai-prices catalog price in
force at that timestamp. With none of these the call is unpriced (cost NULL), never $0.

Speed: a (provider, model) pair is looked up in the catalog once. Its prices become flat
per-million rates with validity windows (and token tiers), so pricing a call is a few
multiplications. Only prices flat rates cannot express (off-peak hours, or a price that
fails the self-check below) go through the catalog's own ``calc_price`` per call.

Token counts follow genai-prices: ``input_tokens`` includes cache reads and cache writes,
and ``cache_write_tokens`` includes the 1-hour writes (``cache_write_1h_tokens``), priced at
the 1-hour rate (Anthropic: 2x input; the rest at the 5-minute rate, 1.25x). A model without
a cache rate charges cache tokens at the input rate, as the catalog does; one without a
1-hour rate charges 1-hour writes at its cache write rate.
A failed call that reports no usage at all costs nothing (``no_usage``): there is nothing
the price is per, and providers do not bill a request that failed.
When cache reads plus writes exceed input (counts no provider reports), the cache counts
are trusted and uncached input is 0: the call is never priced negative nor rejected.
Token tiers are chosen on that corrected input.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import psycopg
import structlog
from genai_prices import Usage
from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id, get_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, StartDateConstraint, TieredPrices

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from worker.event import CallEvent

log = structlog.get_logger(__name__)

CostSource = Literal["catalog", "override", "reported", "unpriced", "no_usage"]
MTOK = Decimal(1_000_000)
#: The usage ailedger records, named as genai-prices names it.
USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
)
#: Searched first when a call names no provider and the catalog cannot infer one.
PREFERRED_PROVIDERS = ("openai", "anthropic", "google", "together")
#: Bound on cached (provider, model) lookups: model names come from producers.
MAX_CACHED_MODELS = 10_000


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """A catalog entry resolved once, for prices only the catalog can compute."""

    provider: Provider
    model: ModelInfo


@dataclass(frozen=True, slots=True)
class PriceRates:
    """One model's rates over one window of time. Token rates are USD per million tokens.

    ``tiers`` holds ``(start, rates)`` in ascending order: a call whose input exceeds
    ``start`` pays those rates on all its tokens. ``catalog_model`` is set when flat rates
    cannot express the price; the catalog then computes each call.
    """

    input_mtok: Decimal | None = None
    output_mtok: Decimal | None = None
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    cache_write_1h_mtok: Decimal | None = None
    per_request: Decimal | None = None
    per_image: Decimal | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    source: Literal["catalog", "override"] = "catalog"
    tiers: tuple[tuple[int, PriceRates], ...] = ()
    catalog_model: CatalogModel | None = None


@dataclass(frozen=True, slots=True)
class Priced:
    """A call's cost (None when unpriced) and where it came from."""

    cost: Decimal | None
    source: CostSource


UNPRICED = Priced(None, "unpriced")
NO_USAGE = Priced(Decimal(0), "no_usage")


@dataclass(frozen=True, slots=True)
class Override:
    """One row of ``price_overrides``; ``effective_from`` None means since always."""

    provider: str
    model: str
    effective_from: datetime | None
    input_mtok: Decimal | None = None
    output_mtok: Decimal | None = None
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    per_image: Decimal | None = None
    per_request: Decimal | None = None
    cache_write_1h_mtok: Decimal | None = None


# '-infinity' (the column default) cannot be a Python datetime; a row from 'infinity' never applies.
_SELECT_OVERRIDES = """
SELECT provider, model,
       CASE WHEN effective_from = '-infinity' THEN NULL ELSE effective_from END,
       input_mtok, output_mtok, cache_read_mtok, cache_write_mtok, per_image, per_request,
       cache_write_1h_mtok
FROM price_overrides
WHERE effective_from < 'infinity'
"""


def load_overrides(conn: psycopg.Connection[Any]) -> list[Override]:
    """Read every price override with one SELECT."""
    # A transaction block commits (or releases its savepoint), so the caller's
    # connection is never left idle in a transaction by a read.
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_SELECT_OVERRIDES)
        return [Override(*row) for row in cur.fetchall()]


OverrideIndex = dict[tuple[str, str], tuple[PriceRates, ...]]


def index_overrides(overrides: Sequence[Override]) -> OverrideIndex:
    """Group overrides by (provider, model), lower-cased, as windows in time order."""
    grouped: dict[tuple[str, str], list[Override]] = {}
    for row in overrides:
        key = (row.provider.strip().lower(), row.model.strip().lower())
        grouped.setdefault(key, []).append(row)
    index: OverrideIndex = {}
    for key, rows in grouped.items():
        rows.sort(key=lambda r: r.effective_from or datetime.min.replace(tzinfo=UTC))
        ends = [r.effective_from for r in rows[1:]] + [None]
        index[key] = tuple(
            PriceRates(
                input_mtok=r.input_mtok,
                output_mtok=r.output_mtok,
                cache_read_mtok=r.cache_read_mtok,
                cache_write_mtok=r.cache_write_mtok,
                cache_write_1h_mtok=r.cache_write_1h_mtok,
                per_request=r.per_request,
                per_image=r.per_image,
                valid_from=r.effective_from,
                valid_to=end,
                source="override",
            )
            for r, end in zip(rows, ends, strict=True)
        )
    return index


def in_force(windows: tuple[PriceRates, ...], timestamp: datetime) -> PriceRates | None:
    """The rates whose window holds ``timestamp`` (the latest start at or before it)."""
    for rates in reversed(windows):
        if rates.valid_from is None or rates.valid_from <= timestamp:
            return rates
    return None


def flat_cost(
    rates: PriceRates,
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write: int,
    cache_write_1h: int = 0,
) -> Decimal:
    """Cost from flat rates; ``input_tokens`` already includes (and covers) the cache tokens.

    ``cache_write`` includes (and covers) ``cache_write_1h``.
    """
    for start, tier in reversed(rates.tiers):
        if input_tokens > start:
            rates = tier
            break
    in_rate = rates.input_mtok
    per_mtok = Decimal(0)
    uncached = input_tokens - cache_read - cache_write
    if rates.cache_read_mtok is not None:
        per_mtok += cache_read * rates.cache_read_mtok
    else:
        uncached += cache_read
    one_hour_rate = rates.cache_write_1h_mtok
    if one_hour_rate is None:
        one_hour_rate = rates.cache_write_mtok
    if one_hour_rate is not None:
        per_mtok += cache_write_1h * one_hour_rate
        cache_write -= cache_write_1h
    if rates.cache_write_mtok is not None:
        per_mtok += cache_write * rates.cache_write_mtok
    else:
        uncached += cache_write
    if in_rate is not None:
        per_mtok += uncached * in_rate
    if rates.output_mtok is not None:
        per_mtok += output_tokens * rates.output_mtok
    cost = per_mtok / MTOK
    if rates.per_request is not None:
        cost += rates.per_request
    return cost


class PriceBook:
    """Prices calls: overrides (cached ``ttl_s`` seconds), then the genai-prices catalog.

    Not locked: sharing one book between threads at worst looks a model up twice.
    """

    def __init__(
        self,
        overrides_loader: Callable[[], list[Override]] | None = None,
        *,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = overrides_loader
        self._ttl_s = ttl_s
        self._clock = clock
        self._overrides: OverrideIndex = {}
        self._loaded_at: float | None = None
        self._snapshot: DataSnapshot = get_snapshot()
        self._catalog: dict[tuple[str | None, str], tuple[PriceRates, ...]] = {}
        self._failing: set[tuple[str, str]] = set()

    @classmethod
    def from_database(cls, source: str | ConnectionPool[Any], *, ttl_s: float = 60.0) -> PriceBook:
        """A book whose overrides are read from a database URL or a connection pool."""

        def loader() -> list[Override]:
            if isinstance(source, str):
                with psycopg.connect(source, connect_timeout=10, autocommit=True) as conn:
                    return load_overrides(conn)
            with source.connection(timeout=10) as conn:
                return load_overrides(conn)

        return cls(loader, ttl_s=ttl_s)

    def price(
        self,
        provider: str | None,
        model: str,
        timestamp: datetime,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        cache_write_1h_tokens: int | None = None,
        has_image: bool = False,
        failed: bool = False,
        reported_cost: Decimal | None = None,
    ) -> Priced:
        """Price one call at the prices in force at ``timestamp``.

        ``failed``: the call ended in an error; with no usage reported it costs nothing.
        """
        self._refresh()
        return self._price(
            provider,
            model,
            timestamp,
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            cache_write_1h_tokens,
            has_image,
            failed,
            reported_cost,
        )

    def _price(
        self,
        provider: str | None,
        model: str,
        timestamp: datetime,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None,
        cache_write_tokens: int | None,
        cache_write_1h_tokens: int | None,
        has_image: bool,
        failed: bool,
        reported_cost: Decimal | None,
    ) -> Priced:
        if reported_cost is not None:
            return Priced(reported_cost, "reported")
        timestamp = _aware(timestamp)
        rates = self._rates(provider, model, timestamp)
        if rates is None:
            return UNPRICED
        image_charge = rates.per_image if has_image else None
        if (
            input_tokens is None
            and output_tokens is None
            and cache_read_tokens is None
            and cache_write_tokens is None
            and rates.per_request is None
            and image_charge is None
        ):
            # Nothing the price is per is known: $0 would be a guess, unless the call failed.
            return NO_USAGE if failed else UNPRICED
        cr = cache_read_tokens or 0
        cw1h = cache_write_1h_tokens or 0
        cw = max(cache_write_tokens or 0, cw1h)
        inp = max(input_tokens or 0, cr + cw)
        out = output_tokens or 0
        if rates.catalog_model is None:
            cost = flat_cost(rates, inp, out, cr, cw, cw1h)
        else:
            calculated = self._calc(rates.catalog_model, timestamp, inp, out, cr, cw, cw1h)
            if calculated is None:
                return UNPRICED
            cost = calculated
        if image_charge is not None:
            cost += image_charge
        return Priced(cost, rates.source)

    def price_batch(self, events: Sequence[CallEvent]) -> list[Priced]:
        """Price validated events, in order (overrides refreshed once for the batch)."""
        self._refresh()
        price = self._price
        return [
            price(
                e.get("provider"),
                e["model"],
                e["timestamp"],
                e.get("input_tokens"),
                e.get("output_tokens"),
                e.get("cache_read_tokens"),
                e.get("cache_write_tokens"),
                e.get("cache_write_1h_tokens"),
                e.get("image_id") is not None,
                e.get("error_message") is not None,
                e.get("cost"),
            )
            for e in events
        ]

    def rates(self, provider: str | None, model: str, timestamp: datetime) -> PriceRates | None:
        """The rates a call would be priced with (override first), or None if unpriced."""
        self._refresh()
        return self._rates(provider, model, _aware(timestamp))

    def _refresh(self) -> None:
        snapshot = get_snapshot()
        if snapshot is not self._snapshot:  # prices were updated at run time
            self._snapshot = snapshot
            self._catalog.clear()
        if self._loader is None:
            return
        now = self._clock()
        if self._loaded_at is not None and now - self._loaded_at < self._ttl_s:
            return
        try:
            overrides = self._loader()
        except Exception:
            if self._loaded_at is None:
                raise  # without overrides, negotiated prices would be silently wrong
            log.warning(
                "price overrides could not be reloaded", exc_info=True, retry_in_s=self._ttl_s
            )
        else:
            self._overrides = index_overrides(overrides)
        self._loaded_at = now

    def _rates(self, provider: str | None, model: str, timestamp: datetime) -> PriceRates | None:
        if self._overrides:
            name = model.strip().lower()
            if provider:
                windows = self._overrides.get((provider.strip().lower(), name))
                if windows and (rates := in_force(windows, timestamp)):
                    return rates
            windows = self._overrides.get(("", name))
            if windows and (rates := in_force(windows, timestamp)):
                return rates
        key = (provider, model)
        catalog = self._catalog.get(key)
        if catalog is None:
            if len(self._catalog) >= MAX_CACHED_MODELS:
                self._catalog.clear()
            catalog = self._catalog[key] = self._lookup(provider, model)
        return in_force(catalog, timestamp) if catalog else None

    def _lookup(self, provider: str | None, model: str) -> tuple[PriceRates, ...]:
        found = find_catalog_model(self._snapshot, provider, model)
        if found is None:
            log.info("model has no price; calls stored unpriced", provider=provider, model=model)
            return ()
        return catalog_windows(found)

    def _calc(
        self,
        found: CatalogModel,
        timestamp: datetime,
        inp: int,
        out: int,
        cr: int,
        cw: int,
        cw1h: int,
    ) -> Decimal | None:
        usage = Usage(**dict(zip(USAGE_KEYS, (inp, out, cr, cw, cw1h), strict=True)))
        try:
            result = found.model.calc_price(
                usage, found.provider, genai_request_timestamp=timestamp
            )
        except (ValueError, ArithmeticError):
            key = (found.provider.id, found.model.id)
            if key not in self._failing:  # once per model, not once per call
                self._failing.add(key)
                log.warning(
                    "catalog price lookup failed", provider=key[0], model=key[1], exc_info=True
                )
            return None
        return result.total_price


def find_catalog_model(
    snapshot: DataSnapshot, provider: str | None, model: str
) -> CatalogModel | None:
    """Resolve a call's (provider, model) in the catalog; None when it has no price.

    A provider the catalog knows is trusted: a model it does not list is unpriced. A call
    without a provider, or with one the catalog does not know (a gateway, an OpenTelemetry
    system name), is matched by model name across providers, the common ones first:
    ``calc_price`` alone cannot price e.g. ``text-embedding-3-small`` without a provider.
    """
    try:
        found_provider, found_model = snapshot.find_provider_model(model, None, provider, None)
        return CatalogModel(found_provider, found_model)
    except LookupError:
        if provider and find_provider_by_id(snapshot.providers, provider) is not None:
            return None
    preferred = [p for name in PREFERRED_PROVIDERS for p in snapshot.providers if p.id == name]
    others = [p for p in snapshot.providers if p.id not in PREFERRED_PROVIDERS]
    for candidate in preferred + others:
        if (info := candidate.find_model(model, all_providers=snapshot.providers)) is not None:
            return CatalogModel(candidate, info)
    return None


def catalog_windows(found: CatalogModel) -> tuple[PriceRates, ...]:
    """A catalog model's prices as windows of flat rates covering all time."""
    prices = found.model.prices
    if isinstance(prices, ModelPrice):
        return (_catalog_rates(found, prices, None, None),)
    constraints = [p.constraint for p in prices]
    if any(c is not None and not isinstance(c, StartDateConstraint) for c in constraints):
        return (PriceRates(catalog_model=found),)  # time-of-day prices: the catalog decides
    # StartDateConstraint holds from UTC midnight of its date.
    starts = sorted(
        {
            datetime.combine(c.start_date, time_of_day(0), tzinfo=UTC)
            for c in constraints
            if isinstance(c, StartDateConstraint)
        }
    )
    bounds: list[datetime | None] = [None, *starts]
    windows: list[PriceRates] = []
    for i, start in enumerate(bounds):
        end = bounds[i + 1] if i + 1 < len(bounds) else None
        # Ask the catalog which price holds inside this window, so its own rules decide.
        inside = start or (starts[0] - timedelta(days=1) if starts else datetime.now(UTC))
        windows.append(_catalog_rates(found, found.model.get_prices(inside), start, end))
    return tuple(windows)


def _catalog_rates(
    found: CatalogModel, price: ModelPrice, start: datetime | None, end: datetime | None
) -> PriceRates:
    """Flat rates for one catalog price, or a catalog fallback if they would not match it."""
    values = {k: v for k, v in vars(price).items() if not k.startswith("_") and v is not None}
    thresholds = sorted(
        {t.start for v in values.values() if isinstance(v, TieredPrices) for t in v.tiers}
    )
    tiers = tuple((s, _rates_at(values, s)) for s in thresholds)
    rates = replace(_rates_at(values, None), valid_from=start, valid_to=end, tiers=tiers)
    # Other price keys (audio, web searches...) cost nothing for the token counts ailedger
    # records; check that against the catalog once, on each tier.
    when = start or (end - timedelta(days=1) if end else datetime.now(UTC))
    for low, high in zip([0, *thresholds], [*thresholds, None], strict=True):
        inp = low + max(1, min(977_113, (high - low) // 2) if high is not None else 977_113)
        probe = (inp, 12_347, inp // 5, inp // 7, inp // 17)
        usage = Usage(**dict(zip(USAGE_KEYS, probe, strict=True)))
        try:
            expected = found.model.calc_price(
                usage, found.provider, genai_request_timestamp=when
            ).total_price
        except (ValueError, ArithmeticError):
            expected = None
        if expected is None or flat_cost(rates, *probe) != expected:
            log.debug("catalog price is not flat", provider=found.provider.id, model=found.model.id)
            return PriceRates(valid_from=start, valid_to=end, catalog_model=found)
    return rates


def _rates_at(values: dict[str, Any], tier_start: int | None) -> PriceRates:
    def at(key: str) -> Decimal | None:
        value = values.get(key)
        if not isinstance(value, TieredPrices):
            return value
        rate = value.base
        if tier_start is not None:
            for tier in value.tiers:
                if tier.start <= tier_start:
                    rate = tier.price
        return rate

    requests_kcount = at("requests_kcount")
    return PriceRates(
        input_mtok=at("input_mtok"),
        output_mtok=at("output_mtok"),
        cache_read_mtok=at("cache_read_mtok"),
        cache_write_mtok=at("cache_write_mtok"),
        cache_write_1h_mtok=at("cache_write_1h_mtok"),
        per_request=requests_kcount / 1000 if requests_kcount is not None else None,
    )


def _aware(timestamp: datetime) -> datetime:
    return timestamp if timestamp.tzinfo is not None else timestamp.replace(tzinfo=UTC)
