"""The stand-in model provider (OpenAI-compatible, and OpenRouter's OAuth), run by tests as a real process.

The model provider is the one component tests may replace, and this is its only stand-in: every test that
needs one (proxy, process, scale, adapter and browser tests) starts it with `run_standin`, choosing only its
delays, keep-alive and backlog. The proxy forwards only the request body,
so the behaviour is chosen per request by the model name:

    standin/ok (or any other name)  text, streaming, usage as OpenAI (stream usage only when
                                    `stream_options.include_usage`), honours max_tokens (20 tokens)
    standin/cost-<usd>              as ok, and `usage.cost` = <usd> like OpenRouter (always sent)
    standin/long-context            as ok; its listed price has an `overrides` entry
    standin/http-<status>           500, 502, 401, 402, 429 (with Retry-After: 7): OpenRouter error body
    standin/timeout                 sleeps 30 s (--timeout-delay) before answering
    standin/malformed               200 with a body that is not JSON
    standin/midstream-error         stream: 3 tokens, then OpenRouter's error chunk, then the end
    standin/hangup                  stream: 3 tokens, then the connection is dropped (no [DONE])
    standin/slow                    stream: one token every 200 ms (--slow-delay), 50 tokens
    standin/runaway                 ignores max_tokens: 500 tokens, and usage that reports them
    standin/no-usage                as ok, but never any usage
    standin/negative-usage          as ok, but its usage reports negative token counts (a broken upstream)
    standin/premium                 priced like a premium model ($3/M prompt, $15/M completion, 64k max
                                    output); its 20 tokens come 50 ms apart (--premium-delay), so hang-ups
                                    can land anywhere in the stream (a whole answer waits as long)
    standin/sonnet                  priced as standin/premium (Claude Sonnet's prices and 64k output); a
                                    chat answer of 200 tokens, 10 ms apart (2 s: parallel requests overlap)

Embeddings (`POST /v1/embeddings`, OpenAI's wire), chosen the same way:

    standin/embed                   one vector of 8 floats per input (`dimensions` honoured, `encoding_format:
                                    "base64"` as little-endian float32), usage prompt_tokens = total_tokens =
                                    ceil(UTF-8 bytes / 4) per string input (at least 1), a token array's length
    standin/embed-cost-<usd>        as embed, and `usage.cost` = <usd> like OpenRouter
    standin/embed-no-usage          as embed, without usage
    standin/embed-negative-usage    as embed, with negative token counts (a broken upstream)
    standin/embed-undercount        as embed, claiming 0 tokens (fewer than there were inputs)
    standin/embed-slow              answers after 0.4 s (2 x --slow-delay): a client can hang up while it waits
    standin/embed-slow-no-usage     as embed-slow, without usage
    standin/embed-timeout           sleeps --timeout-delay before answering
    standin/embed-malformed         200 with a body that is not JSON
    standin/embed-hangup            sends half the answer, then drops the connection
    standin/embed-error-body        200 with vectors, usage and OpenRouter's `error` object
    standin/embed-http-<status>     the statuses of standin/http-<status>

Also `GET /v1/models` (OpenRouter format, every chat id above priced), `GET /v1/embeddings/models` (the
embedding ids, OpenRouter's shape: `pricing.prompt` only, `architecture.output_modalities: ["embeddings"]`),
OpenRouter's OAuth PKCE pages at the root (`/auth`, `/api/v1/auth/keys`: `_openrouter_auth.py`; a `limit` asked
there is carried by the key issued), OpenRouter's key management API (`/api/v1/keys`, `/api/v1/key`, with
`MANAGEMENT_KEY`: `_openrouter_keys.py`), whose keys' limits chat completions enforce as OpenRouter does, and
`GET /v1/_stats` (requests per model, chat and embeddings alike, the last request body, parsed and raw, and
its headers; the OAuth keys issued and exchanges tried) so tests can assert what Wattfare sent the provider.

Run it: `python -m tests.support.standin_upstream --port 0 --port-file F` from the repository root (F gets
the bound port once the server accepts connections), or from a test: `with run_standin() as standin:`.
"""

from __future__ import annotations

from tests.support.standin_upstream._answers import (
    COMPLETION_PRICE,
    EMBEDDING_DIMENSIONS,
    EMBEDDING_MODEL_IDS,
    EMBEDDING_PRICE,
    MODEL_IDS,
    NORMAL_TOKENS,
    PREMIUM_COMPLETION_PRICE,
    PREMIUM_MAX_OUTPUT,
    PREMIUM_PROMPT_PRICE,
    PROMPT_PRICE,
    SONNET_TOKENS,
)
from tests.support.standin_upstream._openrouter_keys import MANAGEMENT_KEY
from tests.support.standin_upstream._process import StandIn, main, run_standin
from tests.support.standin_upstream._server import StandinServer

__all__ = [
    "COMPLETION_PRICE",
    "EMBEDDING_DIMENSIONS",
    "EMBEDDING_MODEL_IDS",
    "EMBEDDING_PRICE",
    "MANAGEMENT_KEY",
    "MODEL_IDS",
    "NORMAL_TOKENS",
    "PREMIUM_COMPLETION_PRICE",
    "PREMIUM_MAX_OUTPUT",
    "PREMIUM_PROMPT_PRICE",
    "PROMPT_PRICE",
    "SONNET_TOKENS",
    "StandIn",
    "StandinServer",
    "main",
    "run_standin",
]
