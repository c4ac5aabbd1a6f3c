"""Realistic AI-call traffic from the document platform, for the demo and the bench.

A PDF upload is one processing job: its pages are cut into text chunks (embedded
with ``text-embedding-3-small``), its images are embedded with CLIP, analysed and
validated by Claude Sonnet vision and sometimes sent to Llama 4 Scout for material
analysis, and the products found in it are classified (Claude Haiku), enriched in
two stages (Haiku, then Sonnet with a cached prompt) and their material classified
(Llama 4 Scout). Token counts and latencies are lognormal, confidences come from
beta distributions, and a few percent of calls fail with the errors providers
really return — rate limits, overload, timeouts — often followed by a retry.

Everything is drawn from the ``random.Random`` passed in, so a seed reproduces the
traffic exactly. The worker derives most scores and actions; some services decide
in the request path and report the action themselves, as a real one would.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from producer.scoring import FALLBACK_TO_RULES, confidence_score, decide_action

Event = dict[str, Any]

HAIKU = "claude-3-5-haiku-20241022"
SONNET = "claude-3-5-sonnet-20241022"
LLAMA_SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
TEXT_EMBEDDING = "text-embedding-3-small"
#: Self-hosted: no catalog knows a price for it, so its calls are stored unpriced.
CLIP = "clip-vit-base-patch32"

#: Errors as the providers' SDKs report them, with how long the failed call took (ms).
_ERRORS: dict[str, tuple[tuple[str, int], ...]] = {
    "anthropic": (
        (
            "RateLimitError: Error code: 429 - rate_limit_error: Number of request tokens "
            "has exceeded your per-minute rate limit",
            180,
        ),
        ("InternalServerError: Error code: 529 - overloaded_error: Overloaded", 900),
        ("APITimeoutError: Request timed out.", 60_000),
    ),
    "together": (
        (
            f"RateLimitError: Error code: 429 - You have reached the rate limit specific "
            f"to this model {LLAMA_SCOUT}",
            150,
        ),
        ("APIError: Error code: 503 - The server is overloaded or not ready yet.", 400),
        ("APITimeoutError: Request timed out.", 30_000),
    ),
    "openai": (
        (
            f"RateLimitError: Error code: 429 - Rate limit reached for {TEXT_EMBEDDING} "
            "on tokens per min (TPM)",
            90,
        ),
        ("APIConnectionError: Connection error.", 2_000),
    ),
    "local": (("RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB", 40),),
}
#: Share of failed calls the service retries (a rate limit or overload usually passes).
RETRY_RATE = 0.6

CATEGORIES = (
    "flooring", "wall tiles", "countertops", "lighting", "furniture", "textiles",
    "sanitaryware", "facade panels", "acoustic panels", "hardware",
)  # fmt: skip
MATERIALS = (
    "oak", "walnut", "porcelain", "ceramic", "marble", "granite", "terrazzo", "travertine",
    "brushed steel", "aluminium", "linen", "wool", "glass", "concrete", "cork", "rattan",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CallProfile:
    """How one kind of call behaves: sizes, speed, quality, failure rate."""

    task: str
    model: str
    provider: str
    #: Median input tokens besides a cached prompt (0: the call reports no tokens), sigma.
    input_tokens: tuple[int, float]
    output_tokens: tuple[int, float]
    #: Time to first token (ms, median and sigma) and ms per output token.
    first_token_ms: tuple[float, float]
    ms_per_output_token: float
    error_rate: float
    #: Beta(alpha, beta) of ``model_confidence``; None: the call has no breakdown.
    quality: tuple[float, float] | None
    #: Share of calls where the service scores in the request path and reports the action.
    decides_action: float = 0.0
    #: The threshold such a service uses (it may be stricter than the worker's default).
    threshold: Decimal = Decimal("0.70")


PROFILES: dict[str, CallProfile] = {
    p.task: p
    for p in (
        CallProfile("text_embedding", TEXT_EMBEDDING, "openai", (150, 0.7), (0, 0),
                    (90, 0.5), 0.0, 0.01, None),
        CallProfile("image_embedding", CLIP, "local", (0, 0), (0, 0),
                    (35, 0.35), 0.0, 0.003, None),
        CallProfile("image_vision_analysis", SONNET, "anthropic", (1_750, 0.15), (380, 0.45),
                    (1_600, 0.35), 14.0, 0.025, (9.0, 2.0)),
        CallProfile("image_validation", SONNET, "anthropic", (1_680, 0.1), (60, 0.5),
                    (1_100, 0.3), 14.0, 0.02, (10.0, 1.6), decides_action=0.4,
                    threshold=Decimal("0.75")),
        CallProfile("material_analysis", LLAMA_SCOUT, "together", (1_400, 0.45), (320, 0.4),
                    (450, 0.45), 4.5, 0.035, (7.0, 2.4)),
        CallProfile("material_classification", LLAMA_SCOUT, "together", (620, 0.3), (45, 0.45),
                    (380, 0.4), 4.5, 0.035, (6.5, 2.2), decides_action=0.3),
        CallProfile("product_classification", HAIKU, "anthropic", (900, 0.35), (90, 0.4),
                    (450, 0.35), 7.0, 0.015, (9.0, 1.8), decides_action=0.5,
                    threshold=Decimal("0.75")),
        CallProfile("product_enrichment_stage1", HAIKU, "anthropic", (2_000, 0.35), (520, 0.35),
                    (500, 0.35), 7.0, 0.015, (8.5, 2.0)),
        CallProfile("product_enrichment_stage2", SONNET, "anthropic", (1_400, 0.35),
                    (900, 0.35), (1_200, 0.35), 15.0, 0.02, (10.0, 1.8)),
    )
}  # fmt: skip

#: The cached system prompts (tokens): enrichment instructions, the category taxonomy.
_STAGE2_PROMPT_TOKENS = (2_048, 3_600)
_TAXONOMY_PROMPT_TOKENS = 2_400
#: Share of jobs whose product classifier has prompt caching switched on.
_CACHED_CLASSIFIER_RATE = 0.3
#: Share of successful enrichment calls whose answer fails the service's schema check.
_SCHEMA_FAILURE_RATE = 0.02


def new_uuid(rng: random.Random) -> UUID:
    """A version-4 UUID drawn from ``rng`` (reproducible, unlike ``uuid4``)."""
    return UUID(int=rng.getrandbits(128), version=4)


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma)) if sigma else float(median)


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the small means used here.
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _beta(rng: random.Random, shape: tuple[float, float]) -> float:
    return round(rng.betavariate(*shape), 3)


class _Job:
    """One PDF being processed: its id and the prompt caches its services have warmed."""

    def __init__(self, rng: random.Random, started: datetime | None) -> None:
        self.rng = rng
        self.id = str(new_uuid(rng))
        self.clock = started
        self.stage2_prompt = rng.randint(*_STAGE2_PROMPT_TOKENS)
        self.stage2_warm = False
        self.cached_classifier = rng.random() < _CACHED_CLASSIFIER_RATE
        self.classifier_warm = False

    def call(self, profile: CallProfile, **context: Any) -> list[Event]:
        """The events of one logical call: a failure may be followed by its retry."""
        events = [self._attempt(profile, context)]
        while "error_message" in events[-1] and self.rng.random() < RETRY_RATE:
            events.append(self._attempt(profile, context))
        return events

    def _attempt(self, profile: CallProfile, context: dict[str, Any]) -> Event:
        rng = self.rng
        event: Event = {
            "task": profile.task,
            "model": profile.model,
            "provider": profile.provider,
            "job_id": self.id,
        }
        image_id = context.get("image_id")
        if image_id is not None:
            event["image_id"] = image_id
        if rng.random() < profile.error_rate:
            message, latency = rng.choice(_ERRORS[profile.provider])
            event["error_message"] = message
            event["latency_ms"] = max(1, round(_lognormal(rng, latency, 0.2)))
            if rng.random() < 0.5:
                event["action"] = FALLBACK_TO_RULES
                event["fallback_reason"] = "provider error; used the rule-based extractor"
        else:
            self._success(profile, event, context)
        if self.clock is not None:
            event["timestamp"] = self.clock
            # Pages are processed a few calls at a time, so the job's clock runs slower.
            self.clock += timedelta(milliseconds=event["latency_ms"] / 4)
        return event

    def _success(self, profile: CallProfile, event: Event, context: dict[str, Any]) -> None:
        rng = self.rng
        output = 0
        if profile.input_tokens[0]:
            event["input_tokens"] = max(1, round(_lognormal(rng, *profile.input_tokens)))
            if profile.output_tokens[0]:  # embeddings report input tokens only
                output = round(_lognormal(rng, *profile.output_tokens))
                event["output_tokens"] = output
        self._prompt_cache(profile, event)
        first_token = _lognormal(rng, *profile.first_token_ms)
        streaming = output * profile.ms_per_output_token * rng.uniform(0.8, 1.25)
        event["latency_ms"] = max(1, round(first_token + streaming))
        if profile.quality is None:
            return
        breakdown = self._breakdown(profile.quality)
        event["confidence_breakdown"] = breakdown
        event["request_data"] = {"prompt_version": f"{profile.task[:3]}-v{rng.randint(3, 7)}"}
        event["request_data"].update(context)
        event["response_data"] = self._answer(profile)
        if profile.task.startswith("product_enrichment") and rng.random() < _SCHEMA_FAILURE_RATE:
            breakdown["validation"] = 0.0
            event["action"] = FALLBACK_TO_RULES
            event["fallback_reason"] = "response failed schema validation: missing 'dimensions'"
        elif rng.random() < profile.decides_action:
            # The service scored the answer itself (producer.scoring) and acted on it.
            score = confidence_score(breakdown)
            action, reason = decide_action(score, threshold=profile.threshold)
            event["action"] = action
            if reason is not None:
                event["fallback_reason"] = reason
            if rng.random() < 0.5:
                event["confidence_score"] = score

    def _prompt_cache(self, profile: CallProfile, event: Event) -> None:
        """A cached system prompt: the job's first call writes it, later calls read it.

        As ailedger counts (and genai-prices): ``input_tokens`` is the whole input,
        cached tokens included; the cache counts say how much of it was cached.
        """
        if profile.task == "product_enrichment_stage2":
            cached, warm = self.stage2_prompt, self.stage2_warm
            self.stage2_warm = True
        elif profile.task == "product_classification" and self.cached_classifier:
            cached, warm = _TAXONOMY_PROMPT_TOKENS, self.classifier_warm
            self.classifier_warm = True
        else:
            return
        event["cache_read_tokens" if warm else "cache_write_tokens"] = cached
        event["input_tokens"] += cached

    def _breakdown(self, quality: tuple[float, float]) -> dict[str, float]:
        rng = self.rng
        model_confidence = _beta(rng, quality)
        breakdown = {
            "model_confidence": model_confidence,
            "completeness": _beta(rng, (quality[0] + 2, quality[1])),
            # Consistency with the rest of the document tracks the model's own confidence.
            "consistency": round(0.5 * model_confidence + 0.5 * rng.betavariate(8, 2), 3),
        }
        # Validation: most answers pass the checks outright; some only partly.
        breakdown["validation"] = 1.0 if rng.random() < 0.85 else round(rng.uniform(0.3, 0.9), 3)
        return breakdown

    def _answer(self, profile: CallProfile) -> dict[str, Any]:
        rng = self.rng
        if "material" in profile.task:
            return {"material": rng.choice(MATERIALS), "finish": rng.choice(("matt", "polished"))}
        if profile.task.startswith("image"):
            return {"objects": rng.randint(1, 6), "has_product": rng.random() < 0.7}
        return {"category": rng.choice(CATEGORIES), "fields": rng.randint(4, 18)}

    def events(self) -> Iterator[Event]:
        """Every call the platform makes for this PDF, in processing order."""
        rng = self.rng
        pages = min(240, max(1, round(_lognormal(rng, 14, 0.7))))
        for page in range(1, pages + 1):
            for _chunk in range(rng.choice((1, 2, 2, 3, 3, 4))):
                yield from self.call(PROFILES["text_embedding"])
            for number in range(1, _poisson(rng, 0.9) + 1):
                image = {"image_id": f"{self.id[:8]}-p{page}-i{number}", "page": page}
                yield from self.call(PROFILES["image_embedding"], **image)
                yield from self.call(PROFILES["image_vision_analysis"], **image)
                if rng.random() < 0.7:
                    yield from self.call(PROFILES["image_validation"], **image)
                if rng.random() < 0.5:
                    yield from self.call(PROFILES["material_analysis"], **image)
        for number in range(1, max(1, round(pages * rng.uniform(0.15, 0.45))) + 1):
            product = {"product": f"p{number}", "page": rng.randint(1, pages)}
            for task in (
                "product_classification",
                "product_enrichment_stage1",
                "product_enrichment_stage2",
                "material_classification",
            ):
                yield from self.call(PROFILES[task], **product)


def generate_jobs(
    rng: random.Random,
    n_events: int,
    *,
    start: datetime | None = None,
    jobs_per_hour: float = 120.0,
) -> Iterator[Event]:
    """Yield ``n_events`` event field dicts, job after job, ready for ``logger.log(**fields)``.

    Without ``start`` the events carry no timestamp and the producer stamps them when
    logged. With ``start`` (timezone-aware) they are spread over simulated time: jobs
    arrive at random at ``jobs_per_hour`` and each call starts when the previous ends.
    """
    arrival = start
    produced = 0
    while produced < n_events:
        job = _Job(rng, arrival)
        for event in job.events():
            yield event
            produced += 1
            if produced >= n_events:
                return
        if arrival is not None:
            arrival += timedelta(hours=rng.expovariate(jobs_per_hour))
