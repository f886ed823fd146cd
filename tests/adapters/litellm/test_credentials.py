"""No LiteLLM call through `wattfare/` lets a credential reach the model provider, whatever else the call carries.

LiteLLM hands a custom provider every keyword argument it does not know, so a call left over from another
provider (`openai_api_key=`, `azure_ad_token=`, ...) would put it in the request body. Each test sends real
requests through a `wattfare serve` process to the recording stand-in upstream, and reads what the provider
received: exactly the one request, with no field named like a credential and no Wattfare key anywhere.
"""

# litellm re-exports `Router` and its exceptions without `__all__`, so pyright calls the documented `litellm.X` private.
# pyright: reportPrivateImportUsage=false

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import litellm
import pytest

import wattfare_litellm
from tests.adapters.upstream import Upstream
from tests.support.wattfare_server import ServerProcess
from wattfare_litellm import WattfareLLM

pytestmark = [pytest.mark.anyio, pytest.mark.xdist_group("standin")]

MODEL = "wattfare/standin/ok"
USER = "u_litellm_credentials"
MODES = ["sync", "stream", "async", "astream"]


@dataclass
class Caller:
    """One way of calling `wattfare/`: `litellm.completion` with some arguments, or a Router's deployment."""

    handler: WattfareLLM
    arguments: dict[str, Any] = field(default_factory=dict[str, Any])
    router: litellm.Router | None = None

    async def send(self, mode: str, marker: str) -> str:
        """The answer's text, for a call made the way `mode` says."""
        request: dict[str, Any] = {"messages": [{"role": "user", "content": f"Hi {marker}"}], "user": USER}
        request |= {"model": "g"} if self.router is not None else {"model": MODEL, **self.arguments}
        stream = mode in ("stream", "astream")
        if mode in ("sync", "stream"):
            reply: Any = (self.router.completion if self.router else litellm.completion)(stream=stream, **request)
        else:
            reply = await (self.router.acompletion if self.router else litellm.acompletion)(stream=stream, **request)
        if not stream:
            return reply.choices[0].message.content
        if mode == "stream":
            return "".join(chunk.choices[0].delta.content or "" for chunk in reply if chunk.choices)
        return "".join([chunk.choices[0].delta.content or "" async for chunk in reply if chunk.choices])


def registered(handler: WattfareLLM) -> WattfareLLM:
    return wattfare_litellm.register(handler)


def with_call_credentials(server: ServerProcess) -> Caller:
    return Caller(registered(WattfareLLM()), {"api_key": server.secret, "api_base": server.base_url})


def with_another_providers_leftovers_dropped(server: ServerProcess) -> Caller:
    # A call kept from another provider, with LiteLLM's drop_params: what is not a Chat Completions param is dropped.
    leftovers = {
        "openai_api_key": server.secret,
        "azure_ad_token": server.secret,
        "api_token": server.secret,
        "organization": "org-1",
        "timeout": 30,
        "max_retries": 1,
        "extra_body": {"provider": {"sort": "price"}},
        "temperature": 0.2,
    }
    return Caller(
        registered(WattfareLLM()),
        {"api_key": server.secret, "api_base": server.base_url, "drop_params": True, **leftovers},
    )


def with_handler_defaults(server: ServerProcess) -> Caller:
    return Caller(registered(WattfareLLM(secret_key=server.secret, base_url=server.base_url)))


def from_the_environment(server: ServerProcess) -> Caller:
    # The fixture below sets WATTFARE_SECRET_KEY and WATTFARE_BASE_URL for this one.
    return Caller(registered(WattfareLLM()))


def with_a_router_deployment(server: ServerProcess) -> Caller:
    deployment = {"model": MODEL, "api_key": server.secret, "api_base": server.base_url}
    router = litellm.Router(model_list=[{"model_name": "g", "litellm_params": deployment}])
    return Caller(registered(WattfareLLM()), router=router)


PATHS: list[Callable[[ServerProcess], Caller]] = [
    with_call_credentials,
    with_another_providers_leftovers_dropped,
    with_handler_defaults,
    from_the_environment,
    with_a_router_deployment,
]


@pytest.fixture(params=PATHS, ids=lambda path: path.__name__)
def caller(
    request: pytest.FixtureRequest, standin_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Caller]:
    monkeypatch.setattr(litellm, "custom_provider_map", list(litellm.custom_provider_map))
    monkeypatch.setenv("WATTFARE_SECRET_KEY", standin_server.secret)
    monkeypatch.setenv("WATTFARE_BASE_URL", standin_server.base_url)
    made: Caller = request.param(standin_server)
    yield made
    made.handler.close()


@pytest.mark.parametrize("mode", MODES)
async def test_a_call_sends_no_credential_to_the_provider(
    caller: Caller, mode: str, standin_server: ServerProcess, upstream: Upstream
) -> None:
    try:
        with upstream.receives_one_clean_request([standin_server.secret]) as marker:
            assert await caller.send(mode, marker)
    finally:
        await caller.handler.aclose()


REFUSED: list[tuple[dict[str, Any], type[Exception]]] = [
    ({"openai_api_key": "KEY"}, litellm.UnsupportedParamsError),
    ({"azure_ad_token": "KEY"}, litellm.UnsupportedParamsError),
    ({"token": "KEY"}, litellm.UnsupportedParamsError),
    ({"extra_body": {"api_key": "KEY"}}, litellm.BadRequestError),
    ({"extra_body": {"api_base": "http://elsewhere.invalid"}}, litellm.BadRequestError),
    # Another provider's key as the deployment's key: refused by the SDK before anything is sent.
    ({"api_key": "sk-proj-openai-key"}, litellm.AuthenticationError),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("arguments", "error"), REFUSED, ids=lambda value: "-".join(map(str, value)) if isinstance(value, dict) else ""
)
async def test_a_call_that_could_leak_a_credential_is_refused_before_anything_is_sent(
    arguments: dict[str, Any],
    error: type[Exception],
    mode: str,
    standin_server: ServerProcess,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(litellm, "custom_provider_map", list(litellm.custom_provider_map))
    handler = registered(WattfareLLM())
    given: dict[str, Any] = {
        name: standin_server.secret if value == "KEY" else value
        for name, value in {"api_key": standin_server.secret, "api_base": standin_server.base_url, **arguments}.items()
    }
    given["extra_body"] = {
        name: standin_server.secret if value == "KEY" else value for name, value in given.get("extra_body", {}).items()
    } or None
    try:
        with upstream.receives_nothing(), pytest.raises(error):
            await Caller(handler, given).send(mode, "refused")
    finally:
        handler.close()
        await handler.aclose()
