"""What every metered exchange shares, chat completion or embedding: one way to refuse, call out and answer.

The model lookup (with its "did you mean" hint), the HTTP error of a metering refusal, the member's own provider
key, an upstream that did not answer or refused, the `wattfare` object spliced into a whole answer, and the ASGI
wrapper that answers whatever escaped an exchange in the error envelope (after its hold has ended).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from wattfare.server.billing.funding_notice import announce_funding_invalid
from wattfare.server.billing.hold import Hold, Refusal
from wattfare.server.billing.key_vault import VaultError
from wattfare.server.billing.pricebook import PriceBook, PricedModel
from wattfare.server.errors import ApiError, invalid, unavailable
from wattfare.server.instants import utc_text
from wattfare.server.observability import metrics
from wattfare.server.proxy.relay import Message, Receive, Scope, Send
from wattfare.server.services import Services
from wattfare.server.store.protocols import StoreUnavailableError
from wattfare.server.upstream.base import UpstreamResponse, UpstreamUnavailableError
from wattfare.server.upstream.errors import from_ceiling_key_status, from_member_key_status, from_status

log = logging.getLogger("wattfare.proxy")

Exchange = Callable[[Scope, Receive, Send], Awaitable[None]]


def refusal_error(refusal: Refusal) -> ApiError:
    """The HTTP error for a metering refusal."""
    extra: dict[str, object] = {}
    headers: dict[str, str] = {}
    if refusal.resets_at is not None:
        extra["resetsAt"] = utc_text(refusal.resets_at)
    if refusal.retry_after_seconds is not None:
        headers["Retry-After"] = str(refusal.retry_after_seconds)
    return ApiError(refusal.code, refusal.message, extra=extra, headers=headers)


def priced_model(prices: PriceBook, model_id: str, *, embeddings: bool) -> PricedModel:
    """The model a request names, priced; `model_not_found` (with a hint) or a 400 for the wrong endpoint.

    An embedding model answers only `/embeddings` and a chat model only `/chat/completions`: sent to the other,
    the request is refused before any hold, naming the endpoint that serves it.
    """
    model = prices.get(model_id)
    if model is None:
        similar = prices.similar(model_id, embeddings=embeddings)
        hint = f" Did you mean {' or '.join(repr(i) for i in similar)}?" if similar else ""
        raise ApiError(
            "model_not_found",
            f"Unknown model {model_id!r}.{hint} Wattfare meters only models with known prices (GET /api/v1/models).",
            param="model",
        )
    if model.embeds and not embeddings:
        raise invalid(
            f"{model_id!r} is an embedding model: send it to POST /api/v1/embeddings, not /chat/completions.", "model"
        )
    if embeddings and not model.embeds:
        raise invalid(
            f"{model_id!r} is not an embedding model: /embeddings serves only the models GET /api/v1/models lists "
            "with 'embeddings' in architecture.output_modalities (such as 'openai/text-embedding-3-small').",
            "model",
        )
    return model


async def funding_key(services: Services, hold: Hold) -> str | None:
    """The member's key the request goes out on (else None: the upstream's key is used).

    Their own linked key when it pays; when credits pay and the operator configured a management key, the
    member's ceiling key (`billing.provider_ceiling`), without which a credit-funded request is not sent.
    """
    if hold.funding is None:
        return None
    sealed = hold.member_key or hold.ceiling_key
    if sealed is None:
        if hold.credited and services.ceilings.enabled:
            raise ApiError(
                "funding_invalid",
                "The user's provider key with its spending ceiling is not set up yet; Wattfare is making it.",
            )
        return None
    try:
        return services.vault.open(sealed, hold.funding.member_id)
    except VaultError:
        await announce_funding_invalid(services.store, hold, "key_unreadable", services.clock())
        raise ApiError(
            "funding_invalid", "The user's linked provider key cannot be read: they need to relink it."
        ) from None


def unreachable(exc: UpstreamUnavailableError) -> ApiError:
    """The error for an upstream that sent no answer (a 504 when it timed out)."""
    log.warning("the upstream did not answer: %s", exc)
    metrics.upstream_failed("timeout" if exc.timed_out else "unreachable")
    if exc.timed_out:
        return ApiError("upstream", "The model provider did not answer in time.", status=504)
    return ApiError("upstream", "The model provider could not be reached.")


async def refused(answer: UpstreamResponse, *, member_key: bool, services: Services, hold: Hold) -> ApiError:
    """The error for an upstream's non-200 answer, its connection released (a member's key maps 401-403 apart).

    On a member's ceiling key, 401-403 mean the provider's hard limit stopped what the meter admitted: reported
    (`ProviderCeilings.reached`) and answered as that member's `funding_invalid`.
    """
    await answer.close()
    metrics.upstream_failed("refused_5xx" if answer.status >= 500 else "refused_4xx")
    if member_key and hold.ceiling_key is not None:
        error = from_ceiling_key_status(answer.status, answer.body, dict(answer.headers))
        if error.code == "funding_invalid":
            await services.ceilings.reached(hold)
        return error
    if not member_key:
        return from_status(answer.status, answer.body, dict(answer.headers))
    error = from_member_key_status(answer.status, answer.body, dict(answer.headers))
    if error.code == "funding_invalid":
        await announce_funding_invalid(services.store, hold, "key_refused", services.clock())
    return error


def with_wattfare_field(body: bytes, answer: dict[str, Any], field: dict[str, Any]) -> bytes:
    """The upstream's bytes with the `wattfare` object spliced in as the body's last member (no re-encoding)."""
    closing = body.rstrip()
    if not answer or not closing.endswith(b"}"):
        return body
    return closing[:-1] + b"," + orjson.dumps({"wattfare": field})[1:]


async def answered_in_envelope(
    exchange: Exchange, request_id: str, what: str, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run `exchange`; whatever escapes it before its answer started is answered in the error envelope.

    The exchange's own `async with held:` has ended the hold by then; a store outage is `unavailable` (503), any
    other unexpected exception `internal`, logged without the request body (prompts never reach the logs).
    """
    started = False

    async def tracked(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    error: ApiError
    try:
        await exchange(scope, receive, tracked)
        return
    except ApiError as exc:
        error = exc
    except StoreUnavailableError as exc:
        log.error("store unavailable during %s: %s", what, exc)
        error = unavailable()
    except Exception as exc:
        log.error("unhandled %s in %s", type(exc).__name__, what, exc_info=exc)
        error = ApiError("internal", "Internal error in Wattfare; retry shortly.")
    if not started:
        await error.response(request_id)(scope, receive, send)
