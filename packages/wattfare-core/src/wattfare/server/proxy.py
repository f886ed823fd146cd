"""`POST /api/v1/chat/completions`: the metering proxy, Wattfare's hot path.

Auth (cached), parse, price, reserve (one conditional write), send upstream, then either answer the
upstream's body as it came with cost headers, or hand the stream to the relay. The hold is settled
exactly once whatever happens: success, refusal upstream, timeout, hang-up.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from wattfare.metering import nanos_to_usd
from wattfare.server.completion_request import anonymous_user, parse_completion, require_end_user, upstream_payload
from wattfare.server.errors import ApiError
from wattfare.server.http_input import bearer, read_body
from wattfare.server.json_value import as_array, as_object
from wattfare.server.key_vault import VaultError
from wattfare.server.keys import new_request_id
from wattfare.server.meter import Hold, Refusal
from wattfare.server.relay import MeteredStream, cost_headers
from wattfare.server.services import Services
from wattfare.server.store.records import KeyRecord
from wattfare.server.upstream.base import UpstreamRequest, UpstreamResponse, UpstreamUnavailableError
from wattfare.server.upstream_errors import from_member_key_status, from_status
from wattfare.server.upstream_usage import metered_usage

log = logging.getLogger("wattfare.proxy")


async def authenticate(services: Services, request: Request) -> KeyRecord:
    """The app behind the request's secret key, or a 401."""
    credential = bearer(request)
    record = await services.keys.lookup(credential)
    if record is None:
        if credential.startswith("pk_"):
            raise ApiError("auth", "A publishable key cannot call this endpoint: use a secret key (sk_…).")
        raise ApiError("auth", "Invalid or revoked secret key.")
    return record


def refusal_error(refusal: Refusal) -> ApiError:
    """The HTTP error for a metering refusal."""
    extra: dict[str, object] = {}
    if refusal.resets_at is not None:
        extra["resetsAt"] = refusal.resets_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return ApiError(refusal.code, refusal.message, extra=extra)


async def chat_completions(request: Request) -> Response:
    """Proxy one chat completion, metered against the end user's cap.

    Every answer names the request, refusals included (`Wattfare-Request-Id`), so a support question can
    point at one ledger row or one refusal.
    """
    request_id = new_request_id()
    try:
        return await _proxy(request, request_id)
    except ApiError as exc:
        exc.headers.setdefault("Wattfare-Request-Id", request_id)
        raise


async def _proxy(request: Request, request_id: str) -> Response:
    services: Services = request.app.state.services
    key = await authenticate(services, request)
    body = await read_body(request, services.settings.max_body_bytes)
    completion = parse_completion(body)
    app_user_id = require_end_user(request.headers.get("wattfare-user"), completion.body_user)
    model = services.prices[key.mode].get(completion.model)
    if model is None:
        raise ApiError(
            "model_not_found",
            f"Unknown model {completion.model!r}: Wattfare meters only models with known prices (GET /api/v1/models).",
            param="model",
        )
    hold = await services.meter.reserve(
        key,
        app_user_id,
        model,
        prompt_token_bound=completion.prompt_token_bound,
        requested_max_tokens=completion.requested_max_tokens,
        choices=completion.choices,
        images=completion.images,
        request_id=request_id,
    )
    if isinstance(hold, Refusal):
        raise refusal_error(hold)
    end_user = anonymous_user(key.app_id, app_user_id)
    payload = upstream_payload(completion, max_tokens=hold.max_tokens, end_user=end_user)
    api_key: str | None = None
    if hold.member_key is not None and hold.funding is not None:
        try:
            api_key = services.vault.open(hold.member_key, hold.funding.member_id)
        except VaultError:
            await services.meter.release(hold)
            raise ApiError(
                "funding_invalid", "The user's linked provider key cannot be read: they need to relink it."
            ) from None
    upstream_request = UpstreamRequest(
        body=orjson.dumps(payload), payload=payload, stream=completion.stream, api_key=api_key, end_user=end_user
    )
    try:
        answer = await services.upstreams[key.mode].send(upstream_request)
    except UpstreamUnavailableError as exc:
        await services.meter.release(hold)
        raise ApiError(
            "upstream", f"The model provider did not answer: {exc}", status=504 if exc.timed_out else 502
        ) from None
    except BaseException:
        await services.meter.release(hold)
        raise
    if answer.status != 200:
        # The provider refused before generating anything: nothing was used, so nothing is charged.
        await services.meter.release(hold)
        await answer.close()
        refused = from_member_key_status if api_key is not None else from_status
        raise refused(answer.status, answer.body, dict(answer.headers))
    headers = {"Wattfare-Request-Id": hold.id}
    if completion.stream and answer.chunks is not None:
        headers |= {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
            "Wattfare-Remaining-Usd": f"{nanos_to_usd(hold.remaining_before):f}",
        }
        return MeteredStream(answer, hold, services.meter, services.revocations, headers, completion.choices)  # type: ignore[return-value]
    return await _whole_answer(services, hold, answer, headers)


async def _whole_answer(services: Services, hold: Hold, answer: UpstreamResponse, headers: dict[str, str]) -> Response:
    body = answer.body or b""
    await answer.close()
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        await services.meter.release(hold)
        raise ApiError("upstream", "The model provider sent a malformed response.") from None
    answer_object = as_object(parsed) or {}
    usage = metered_usage(answer_object.get("usage"))
    if as_object(answer_object.get("error")) is not None:
        await services.meter.release(hold)
        raise ApiError("upstream", "The model provider failed.")
    if usage is None:
        # No usage reported: charge an upper bound of what the answer used (as a cut-short stream is), never
        # less than it cost and never more than the hold.
        settled = await services.meter.settle_estimate(hold, _answer_bytes(answer_object))
    else:
        settled = await services.meter.settle(hold, usage)
    if settled is not None:
        headers |= cost_headers(settled.charged, max(0, settled.cap - settled.spent - settled.reserved))
    return Response(body, 200, headers, media_type="application/json")


def _answer_bytes(answer: dict[str, Any]) -> int:
    """UTF-8 bytes of everything the model wrote in a whole answer (no token is shorter than a byte)."""
    texts: list[object] = []
    for choice in as_array(answer.get("choices")) or ():
        message = as_object((as_object(choice) or {}).get("message")) or {}
        texts += (message.get("content"), message.get("refusal"), message.get("reasoning"))
        for call in as_array(message.get("tool_calls")) or ():
            function = as_object((as_object(call) or {}).get("function")) or {}
            texts += (function.get("name"), function.get("arguments"))
    return sum(len(text.encode()) for text in texts if isinstance(text, str))
