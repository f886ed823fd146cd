"""`POST /api/v1/chat/completions`: the metering proxy, Wattfare's hot path.

Two steps. `chat_completions` checks everything that can refuse a request without touching money (auth,
body, end user, model, the upstream body's encoding). `MeteredExchange` then reserves (one conditional
write), sends upstream, and either answers the upstream's body as it came with cost headers or relays the
stream, all inside the `HeldRequest` that owns the hold: it ends exactly once whatever happens (success,
refusal upstream, timeout, hang-up, cancellation, an outage, a bug).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from wattfare.metering import nanos_to_usd
from wattfare.server.access.authentication import authenticate
from wattfare.server.access.keys import new_request_id
from wattfare.server.billing.hold import HeldRequest, Refusal
from wattfare.server.billing.pricebook import PricedModel
from wattfare.server.errors import ApiError
from wattfare.server.http_input import read_body
from wattfare.server.json_value import as_array, as_object
from wattfare.server.observability import metrics
from wattfare.server.observability.request_log import note_metered
from wattfare.server.proxy.completion_request import (
    SENT_BODY,
    CompletionRequest,
    UpstreamBody,
    parse_completion,
    upstream_body,
)
from wattfare.server.proxy.exchange import (
    answered_in_envelope,
    funding_key,
    priced_model,
    refusal_error,
    refused,
    unreachable,
    with_wattfare_field,
)
from wattfare.server.proxy.payer import Payer, payer_of
from wattfare.server.proxy.relay import (
    MeteredStream,
    Receive,
    Scope,
    Send,
    cost_headers,
    limit_headers,
    wattfare_field,
)
from wattfare.server.proxy.request_body import anonymous_user
from wattfare.server.services import Services, services_of
from wattfare.server.store.protocols import StoreUnavailableError
from wattfare.server.store.records import KeyRecord
from wattfare.server.upstream.base import UpstreamRequest, UpstreamResponse, UpstreamUnavailableError
from wattfare.server.upstream.usage import metered_usage


async def chat_completions(request: Request) -> MeteredExchange:
    """Check a chat completion request, then hand it to the exchange that meters it.

    Everything that can refuse a request without a hold (auth, body, end user, model, encoding) is checked
    here, so a refusal never has to undo anything. Every answer names the request, refusals included
    (`Wattfare-Request-Id`), so a support question can point at one ledger row or one refusal.
    """
    request_id = new_request_id()
    try:
        return await _admit(request, request_id)
    except ApiError as exc:
        exc.headers.setdefault("Wattfare-Request-Id", request_id)
        raise


async def _admit(request: Request, request_id: str) -> MeteredExchange:
    services = services_of(request)
    key = await authenticate(services.keys, request)
    body = await read_body(request, services.settings.max_body_bytes)
    completion = parse_completion(body)
    payer = await payer_of(services, key, request.headers, completion.body_user)
    model = priced_model(services.prices[key.mode], completion.model, embeddings=False)
    end_user = anonymous_user(key.app_id, payer.app_user_id)
    note_metered(request_id, "chat.completions", model.id, end_user, stream=completion.stream)
    outgoing = upstream_body(completion, end_user=end_user)
    return MeteredExchange(services, key, payer, model, completion, outgoing, end_user, request_id)


class MeteredExchange:
    """The ASGI answer to one admitted completion: reserve, call the upstream, answer, settle.

    One `async with held:` block spans all of it, the streamed relay included, so the hold's owner sees
    every way the request can end (see `hold`). Errors raised before the answer starts are answered in
    the error envelope here, after the hold has ended.
    """

    __slots__ = ("_completion", "_end_user", "_key", "_model", "_outgoing", "_payer", "_request_id", "_services")

    def __init__(
        self,
        services: Services,
        key: KeyRecord,
        payer: Payer,
        model: PricedModel,
        completion: CompletionRequest,
        outgoing: UpstreamBody,
        end_user: str,
        request_id: str,
    ) -> None:
        """Meter `completion` for `payer` (an app user of `key`'s app, or a grant)."""
        self._services = services
        self._key = key
        self._payer = payer
        self._model = model
        self._completion = completion
        self._outgoing = outgoing
        self._end_user = end_user
        self._request_id = request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the exchange."""
        await answered_in_envelope(self._exchange, self._request_id, "a completion", scope, receive, send)

    async def _exchange(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = self._services
        stream, choices = self._completion.stream, self._completion.choices
        held = await self._reserve()
        async with held:
            hold = held.hold
            answer = await self._answered(held)
            held.answered = True
            headers = {"Wattfare-Request-Id": hold.id} | limit_headers(hold)
            if stream and answer.chunks is not None:
                headers |= {
                    "content-type": "text/event-stream; charset=utf-8",
                    "cache-control": "no-cache",
                    "x-accel-buffering": "no",
                    "Wattfare-Remaining-Usd": f"{nanos_to_usd(hold.remaining_before):f}",
                }
                relay = MeteredStream(answer, held, services.revocations, headers, choices, services.ceilings.reached)
                await relay(scope, receive, send)
            else:
                response = await _whole_answer(held, answer, headers)
                await response(scope, receive, send)

    async def _reserve(self) -> HeldRequest:
        completion = self._completion
        held = await self._services.meter.reserve(
            self._key,
            self._payer.app_user_id,
            self._model,
            prompt_token_bound=completion.prompt_token_bound,
            requested_max_tokens=completion.requested_max_tokens,
            choices=completion.choices,
            images=completion.images,
            request_id=self._request_id,
            grant=self._payer.grant,
        )
        if isinstance(held, Refusal):
            raise refusal_error(held)
        return held

    async def _answered(self, held: HeldRequest) -> UpstreamResponse:
        """The upstream's 200 to the request under `held` (its refusal raised); the prompt then is let go.

        An open stream lasts tens of seconds and needs nothing of what was asked: its prompt (a conversation
        can be tens of kB, held parsed, encoded and re-encoded) is dropped here, not when the stream ends.
        """
        services, hold = self._services, held.hold
        payload, body = self._outgoing.with_max_tokens(hold.max_tokens)
        upstream_request = UpstreamRequest(
            body=body,
            payload=payload,
            stream=self._completion.stream,
            api_key=await funding_key(services, hold),
            end_user=self._end_user,
        )
        self._completion = self._completion.sent()
        self._outgoing = SENT_BODY
        metrics.upstream_called()
        try:
            answer = await services.upstreams[self._key.mode].send(upstream_request)
        except UpstreamUnavailableError as exc:
            raise unreachable(exc) from None
        metrics.upstream_answered()
        if answer.status != 200:
            # The provider refused before generating anything: the exit releases the hold.
            raise await refused(answer, member_key=upstream_request.api_key is not None, services=services, hold=hold)
        return answer


async def _whole_answer(held: HeldRequest, answer: UpstreamResponse, headers: dict[str, str]) -> Response:
    body = answer.body or b""
    await answer.close()
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        # Nothing the client can use came back: nothing is charged.
        await held.release()
        metrics.upstream_failed("malformed")
        raise ApiError("upstream", "The model provider sent a malformed response.") from None
    answer_object = as_object(parsed) or {}
    held.output_bytes = _answer_bytes(answer_object)
    usage = metered_usage(answer_object.get("usage"))
    # No usage reported: charge an upper bound of what the answer used (as a cut-short stream is), never
    # less than it cost and never more than the hold.
    try:
        settled = await (held.settle_output() if usage is None else held.settle(usage))
    except StoreUnavailableError:
        # The answer exists and its hold still covers it: the meter writes the charge once the store is back,
        # so the client gets what it will pay for, without the cost headers no one can confirm yet.
        settled = None
    costs = {} if settled is None else cost_headers(settled.charged, settled.remaining)
    if as_object(answer_object.get("error")) is not None:
        # The provider failed after it started (OpenRouter answers 200 with an `error` then): what it
        # processed is charged, as a stream cut by the same failure would be.
        metrics.upstream_failed("failed_answering")
        raise ApiError("upstream", "The model provider failed while answering.", headers=costs)
    body = with_wattfare_field(body, answer_object, wattfare_field(held.hold, settled))
    return Response(body, 200, headers | costs, media_type="application/json")


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
