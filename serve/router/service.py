"""One request end to end, in the order data flows:

body (size-limited) -> JSON -> model (tier alias resolved) -> validated request (vLLM's
protocol models) -> estimate -> dispatch decision -> engine call (one retry elsewhere) ->
response priced and labelled -> latency observed.

Errors leave as ``FrugalError`` and become HTTP in ``serve.router.errors``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from serve.cache import CacheLookup, ResponseCache, StreamRecorder, entry_from_body, take_cache_controls
from serve.config.schema import FrugalConfig, ModelConfig
from serve.cost.estimate import format_usd
from serve.dispatch.latency import LatencyTracker
from serve.dispatch.tiers import route_tier
from serve.dispatch.types import RequestEstimate
from serve.observability.metrics import FrugalMetrics
from serve.router.outcome import Finisher, Outcome, Status
from serve.tenants.service import Tenants
from serve.engine.protocol import Endpoint, ErrorBody, RunStats
from serve.router.accounting import Pricer, body_with_cost, dispatch_headers, usage_tokens
from serve.router.cached import respond_from_cache
from serve.router.dispatcher import Dispatched, Dispatcher
from serve.router.errors import FrugalError, bad_request, model_not_found
from serve.router.requests import (
    decode_json_object,
    estimate_request,
    force_usage_chunk,
    is_streaming,
    parse_request,
    wants_usage_chunk,
)
from serve.router.streaming import StreamUsage, relay_sse

# Refusals by error code or parameter -> the metrics' rejection reasons.
REJECTION_REASONS: dict[str, str] = {
    "requests_per_minute": "rate_limit_requests",
    "tokens_per_minute": "rate_limit_tokens",
    "max_tokens": "too_large",
    "monthly_requests": "quota",
    "insufficient_quota": "budget",
    "model_not_allowed": "model_not_allowed",
    "overloaded": "queue_full",
    "store_unavailable": "store_unavailable",
}


def rejection_reason(err: FrugalError) -> str:
    return REJECTION_REASONS.get(err.body.param or "", REJECTION_REASONS.get(err.body.code or "", "other"))

logger = logging.getLogger(__name__)

ENDPOINT_TASK: dict[Endpoint, str] = {"chat": "chat", "completion": "chat", "embedding": "embed"}
REQUEST_ID_PREFIX: dict[Endpoint, str] = {"chat": "chatcmpl", "completion": "cmpl", "embedding": "embd"}


@dataclass
class Resolved:
    """The model a request runs on, and how it was chosen when the client named a tier alias."""

    model: ModelConfig
    tier_headers: dict[str, str]


class RouterService:
    """Resolves models, dispatches to pools and prices every answer."""

    def __init__(
        self,
        config: FrugalConfig,
        dispatcher: Dispatcher,
        latency: LatencyTracker,
        tenants: Tenants,
        metrics: FrugalMetrics,
        cache: ResponseCache,
    ) -> None:
        self.config = config
        self.dispatcher = dispatcher
        self.latency = latency
        self.tenants = tenants
        self.metrics = metrics
        self.cache = cache
        self.created_s = int(time.time())
        self._started = False

    async def ensure_started(self) -> None:
        """Start the pool monitor and the tenant stores on the serving event loop (first request)."""
        if not self._started:
            self._started = True
            await self.tenants.start()
            await self.dispatcher.monitor.start()

    async def close(self) -> None:
        await self.dispatcher.monitor.stop()
        await self.cache.close()
        await self.tenants.close()

    # --- request validation -------------------------------------------------------------

    def resolve_model(self, endpoint: Endpoint, data: dict[str, Any]) -> Resolved:
        name = data.get("model")
        task = ENDPOINT_TASK[endpoint]
        if name is None:
            candidates = [m for m in self.config.models if m.task == task]
            if len(candidates) != 1:
                raise bad_request("model is required when several models are served.", param="model")
            data["model"] = candidates[0].name
            return Resolved(candidates[0], {})
        if not isinstance(name, str):
            raise bad_request("model must be a string.", param="model")
        headers: dict[str, str] = {}
        tiers = self.config.tiers
        if tiers is not None and task == "chat" and name in tiers.aliases:
            text = data.get("messages") if endpoint == "chat" else data.get("prompt")
            if not isinstance(text, (list, str)):
                raise bad_request("messages or prompt is required.", param="messages" if endpoint == "chat" else "prompt")
            try:
                tier, chosen, score = route_tier(tiers, text)
            except (AttributeError, TypeError, ValueError):  # malformed: the schema would refuse it too
                raise bad_request("messages must be a list of message objects.", param="messages") from None
            headers = {"x-frugal-tier": tier, "x-frugal-complexity": f"{score:.3f}", "x-frugal-model": chosen}
            data["model"] = name = chosen
        model = self.config.model(name)
        if model is None:
            raise model_not_found(name)
        if model.task != task:
            raise bad_request(
                f"The model '{name}' is a {model.task} model and does not serve this endpoint.",
                param="model",
                code="unsupported_endpoint",
            )
        return Resolved(model, headers)

    async def read_body(self, request: Request) -> bytes:
        limit = self.config.router.max_request_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise FrugalError(413, f"The request body exceeds {limit} bytes.", code="request_too_large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise FrugalError(413, f"The request body exceeds {limit} bytes.", code="request_too_large")
        return bytes(body)

    # --- the request path ---------------------------------------------------------------

    async def handle(self, endpoint: Endpoint, request: Request) -> Response:
        await self.ensure_started()
        context = await self.tenants.authenticate(request.headers.get("authorization"))
        data = decode_json_object(await self.read_body(request))
        controls = take_cache_controls(data)  # the `cache` field is Frugal's, not vLLM's
        resolved = self.resolve_model(endpoint, data)
        parsed = parse_request(endpoint, data)
        estimate = estimate_request(resolved.model.name, endpoint, data, parsed)
        try:
            ticket = await self.tenants.admit(context, resolved.model.name, estimate.prompt_tokens + estimate.max_output_tokens)
        except FrugalError as err:
            self.metrics.rejected(reason=rejection_reason(err), tier=context.tier_name)
            raise
        # vLLM prefixes the id itself (chatcmpl-, cmpl-, embd-), as the response's ``id``.
        request_id = uuid.uuid4().hex
        outcome = Outcome(request_id=request_id, model=resolved.model.name)
        finisher = Finisher(self.tenants, self.metrics, ticket, outcome)
        headers = {
            "x-frugal-request-id": f"{REQUEST_ID_PREFIX[endpoint]}-{request_id}",
            **ticket.headers,
            **resolved.tier_headers,
        }
        exits = AsyncExitStack()
        lookup: CacheLookup | None = None
        try:
            lookup = await self.cache.lookup(endpoint, data, context.cache_namespace, controls)
            self.metrics.cache_lookup(model=resolved.model.name, result=lookup.status, match=lookup.match)
            headers.update(lookup.headers())
            if lookup.status == "hit":
                stream = is_streaming(endpoint, parsed)
                return await respond_from_cache(
                    endpoint, lookup, resolved.model.name, stream, wants_usage_chunk(parsed), outcome, finisher, headers
                )
            await exits.enter_async_context(self.tenants.gate.slot(context.priority, resolved.model.name))
            response = await self._dispatch(endpoint, parsed, estimate, outcome, finisher, exits, headers, lookup)
        except FrugalError as err:
            self.cache.release(lookup)  # identical requests waiting for this one go on without it
            await exits.aclose()
            if err.body.code == "overloaded":  # the priority gate's queue is full
                self.metrics.rejected(reason="queue_full", tier=context.tier_name)
            await finisher.finish("failed", err.body.code)
            err.headers = {**ticket.headers, **err.headers}
            raise
        except BaseException:
            self.cache.release(lookup)
            await exits.aclose()
            await finisher.finish("cancelled")
            raise
        return response

    async def _dispatch(
        self,
        endpoint: Endpoint,
        parsed: Any,
        estimate: RequestEstimate,
        outcome: Outcome,
        finisher: Finisher,
        exits: AsyncExitStack,
        headers: dict[str, str],
        lookup: CacheLookup,
    ) -> Response:
        stream = is_streaming(endpoint, parsed)
        include_usage = wants_usage_chunk(parsed)
        if stream:
            force_usage_chunk(parsed)
        decision = self.dispatcher.decide(estimate)
        call = await self.dispatcher.call(estimate, decision, endpoint, parsed, outcome.request_id)
        exits.callback(call.lease.release)
        exits.push_async_callback(call.replies.aclose)
        outcome.pool = call.pool.name
        if isinstance(call.first, ErrorBody):
            raise FrugalError.from_body(call.first)
        pricer = Pricer(call.pool.template.price_usd_per_hour, estimate, decision)
        headers.update(dispatch_headers(call.pool.name, decision))
        if call.retried_from:
            headers["x-frugal-retried-from"] = call.retried_from
        if not stream:
            body = await self._complete(call, pricer, outcome)
            await exits.aclose()
            if lookup.plan is not None and endpoint != "embedding":
                await self.cache.store(lookup, entry_from_body(endpoint, body, outcome.cost_usd))
            await finisher.finish("ok")
            headers.update({"x-frugal-cost-usd": format_usd(outcome.cost_usd), "x-frugal-cost-kind": "actual"})
            return Response(content=body, media_type="application/json", headers=headers)
        headers.update({
            "cache-control": "no-cache",
            "x-frugal-cost-usd": format_usd(decision.estimated_cost_usd),
            "x-frugal-cost-kind": "estimate",
        })
        return StreamingResponse(
            self._stream(call, pricer, include_usage, outcome, finisher, exits.pop_all(), lookup, endpoint),
            media_type="text/event-stream",
            headers=headers,
        )

    async def _complete(self, call: Dispatched, pricer: Pricer, outcome: Outcome) -> str:
        """The priced body of a complete (non-streamed) answer; fills ``outcome``."""
        body = call.first
        assert isinstance(body, str)
        stats: RunStats | None = None
        try:
            async for item in call.replies:  # the run stats follow the body
                if isinstance(item, RunStats):
                    stats = item
        except Exception as exc:  # the body is complete; only its pricing degrades
            logger.warning("reading run stats from pool %s failed: %r", call.pool.name, exc)
        outcome.prompt_tokens, outcome.completion_tokens = usage_tokens(body)
        outcome.cost_usd = pricer.cost_usd(outcome.prompt_tokens, outcome.completion_tokens, stats)
        # A complete body has no first-token time: only streams feed the latency tracker.
        return body_with_cost(body, outcome.cost_usd)

    async def _stream(
        self,
        call: Dispatched,
        pricer: Pricer,
        include_usage: bool,
        outcome: Outcome,
        finisher: Finisher,
        exits: AsyncExitStack,
        lookup: CacheLookup,
        endpoint: Endpoint,
    ) -> AsyncIterator[str]:
        usage = StreamUsage()
        recorder = StreamRecorder(endpoint) if lookup.plan is not None and endpoint != "embedding" else None
        observe = recorder.feed if recorder is not None else None
        events = relay_sse(call.first, call.replies, include_usage, usage, pricer.cost_usd, observe)
        status: Status = "cancelled"  # unless the relay runs to its end
        try:
            async for event in events:
                yield event
            status = "ok" if usage.error is None else "failed"
        finally:
            await events.aclose()  # the client went away: abort the engine's request now
            await exits.aclose()
            outcome.prompt_tokens, outcome.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            if status != "ok" and usage.completion_tokens == 0:
                # Cancelled or failed mid-stream: no usage chunk came. Each content event the
                # client got carried at least one token: a lower bound of what was consumed.
                outcome.completion_tokens = usage.num_content_events
            outcome.cost_usd = usage.cost_usd if usage.prompt_tokens else pricer.cost_usd(
                outcome.prompt_tokens, outcome.completion_tokens, None
            )
            if usage.first_token_s is not None:
                outcome.ttft_s = usage.first_token_s - outcome.started_s
                if usage.completion_tokens > 1:
                    outcome.tpot_s = (time.monotonic() - usage.first_token_s) / (usage.completion_tokens - 1)
                if usage.error is None:
                    self.latency.observe(
                        call.pool.name, outcome.ttft_s * 1000, outcome.tpot_s * 1000 if outcome.tpot_s else None
                    )
            try:
                if recorder is not None and status == "ok":  # only a stream that finished normally
                    entry = recorder.entry(outcome.cost_usd)
                    if entry is not None:
                        await self.cache.store(lookup, entry)
            finally:
                self.cache.release(lookup)  # stored or not, identical requests stop waiting
            await finisher.finish(status, usage.error.code if usage.error else None)

    def list_models(self) -> dict[str, Any]:
        data = [
            {"id": m.name, "object": "model", "created": self.created_s, "owned_by": "frugal", "task": m.task}
            for m in self.config.models
        ]
        if self.config.tiers is not None:
            for alias in self.config.tiers.aliases:
                data.append({"id": alias, "object": "model", "created": self.created_s, "owned_by": "frugal", "task": "chat"})
        return {"object": "list", "data": data}

