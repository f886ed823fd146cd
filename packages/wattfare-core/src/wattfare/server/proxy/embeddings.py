"""`POST /api/v1/embeddings`: embeddings metered like chat completions, on OpenAI's wire.

The same two steps as `chat_completions`. `embeddings` checks everything that can refuse without touching money
(auth, body size and shape, end user, model and endpoint, the upstream body's encoding). `MeteredEmbedding` then
reserves the input bound (`wattfare.metering.embedding_token_bound`, nothing for output) in the same conditional
write, calls the upstream's `/embeddings`, and answers its body with the cost headers, all inside the
`HeldRequest` that owns the hold, so it ends exactly once however the request ends.

Settled at the upstream's reported input tokens (or its `usage.cost`); at the input bound when the usage is
missing or cannot be right (`trusted_embedding_usage`); never above the hold. Released when the provider refused
or sent nothing usable. The ledger row says `embeddings`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from wattfare.metering import EMBEDDING_OUTPUT_TOKENS, nanos_to_json_number, trusted_embedding_usage
from wattfare.server.access.authentication import authenticate
from wattfare.server.access.keys import new_request_id
from wattfare.server.billing.hold import HeldRequest, Refusal
from wattfare.server.billing.pricebook import PricedModel
from wattfare.server.errors import ApiError
from wattfare.server.http_input import read_body
from wattfare.server.json_value import as_object
from wattfare.server.observability import metrics
from wattfare.server.observability.request_log import note_metered
from wattfare.server.proxy.embedding_request import EmbeddingRequest, parse_embedding, upstream_embedding_body
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
from wattfare.server.proxy.relay import Receive, Scope, Send, cost_headers
from wattfare.server.proxy.request_body import anonymous_user
from wattfare.server.services import Services, services_of
from wattfare.server.store.protocols import StoreUnavailableError
from wattfare.server.store.records import KeyRecord, Settled
from wattfare.server.upstream.base import UpstreamRequest, UpstreamResponse, UpstreamUnavailableError
from wattfare.server.upstream.usage import embedding_usage


async def embeddings(request: Request) -> MeteredEmbedding:
    """Check an embedding request, then hand it to the exchange that meters it (refusals name the request too)."""
    request_id = new_request_id()
    try:
        return await _admit(request, request_id)
    except ApiError as exc:
        exc.headers.setdefault("Wattfare-Request-Id", request_id)
        raise


async def _admit(request: Request, request_id: str) -> MeteredEmbedding:
    services = services_of(request)
    key = await authenticate(services.keys, request)
    body = await read_body(request, services.settings.max_body_bytes)
    embedding = parse_embedding(body)
    payer = await payer_of(services, key, request.headers, embedding.body_user)
    model = priced_model(services.prices[key.mode], embedding.model, embeddings=True)
    end_user = anonymous_user(key.app_id, payer.app_user_id)
    note_metered(request_id, "embeddings", model.id, end_user)
    payload, encoded = upstream_embedding_body(embedding, end_user=end_user)
    upstream_request = UpstreamRequest(body=encoded, payload=payload, stream=False, end_user=end_user)
    return MeteredEmbedding(services, key, payer, model, embedding, upstream_request, request_id)


class MeteredEmbedding:
    """The ASGI answer to one admitted embedding request: reserve, call the upstream, answer, settle."""

    __slots__ = ("_embedding", "_key", "_model", "_payer", "_request_id", "_services", "_upstream_request")

    def __init__(
        self,
        services: Services,
        key: KeyRecord,
        payer: Payer,
        model: PricedModel,
        embedding: EmbeddingRequest,
        upstream_request: UpstreamRequest,
        request_id: str,
    ) -> None:
        """Meter `embedding` for `payer` (an app user of `key`'s app, or a grant)."""
        self._services = services
        self._key = key
        self._payer = payer
        self._model = model
        self._embedding = embedding
        self._upstream_request = upstream_request
        self._request_id = request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the exchange."""
        await answered_in_envelope(self._exchange, self._request_id, "an embedding request", scope, receive, send)

    async def _exchange(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = self._services
        held = await services.meter.reserve(
            self._key,
            self._payer.app_user_id,
            self._model,
            prompt_token_bound=self._embedding.input_token_bound,
            requested_max_tokens=EMBEDDING_OUTPUT_TOKENS,
            request_id=self._request_id,
            endpoint="embeddings",
            grant=self._payer.grant,
        )
        if isinstance(held, Refusal):
            raise refusal_error(held)
        async with held:
            api_key = await funding_key(services, held.hold)
            outgoing = replace(self._upstream_request, api_key=api_key)
            metrics.upstream_called()
            try:
                answer = await services.upstreams[self._key.mode].embed(outgoing)
            except UpstreamUnavailableError as exc:
                raise unreachable(exc) from None
            metrics.upstream_answered()
            if answer.status != 200:
                # The provider refused before embedding anything: the exit releases the hold.
                raise await refused(answer, member_key=api_key is not None, services=services, hold=held.hold)
            held.answered = True
            response = await _whole_answer(held, answer, self._embedding.inputs)
            await response(scope, receive, send)


async def _whole_answer(held: HeldRequest, answer: UpstreamResponse, inputs: int) -> Response:
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
    usage = embedding_usage(answer_object.get("usage"))
    # No usage, or usage that cannot be right: the input bound is charged (never more than the hold).
    believed = usage is not None and trusted_embedding_usage(usage, inputs=inputs)
    settled: Settled | None
    try:
        settled = await (held.settle(usage) if usage is not None and believed else held.settle_output())
    except StoreUnavailableError:
        # The answer exists and its hold still covers it: the meter writes the charge once the store is back.
        settled = None
    costs = {} if settled is None else cost_headers(settled.charged, settled.remaining)
    if as_object(answer_object.get("error")) is not None:
        # The provider failed after accepting the request (OpenRouter answers 200 with an `error` then).
        metrics.upstream_failed("failed_answering")
        raise ApiError("upstream", "The model provider failed while embedding.", headers=costs)
    field: dict[str, Any] = {"requestId": held.hold.id}
    if settled is not None:
        field["costUsd"] = nanos_to_json_number(settled.charged)
        field["remainingUsd"] = nanos_to_json_number(settled.remaining)
    headers = {"Wattfare-Request-Id": held.hold.id} | costs
    return Response(with_wattfare_field(body, answer_object, field), 200, headers, media_type="application/json")
