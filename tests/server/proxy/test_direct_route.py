"""DirectRoute: one route served ahead of the router, with the app's own error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from wattfare.server.proxy.direct_route import DirectRoute, ErrorHandler

pytestmark = pytest.mark.anyio


class Refused(Exception):
    pass


class RefusedHard(Refused):
    pass


async def hot(request: Request) -> Response:
    kind = request.query_params.get("raise")
    if kind == "refused":
        raise RefusedHard("no")
    if kind == "other":
        raise LookupError("unmapped")
    return PlainTextResponse(f"hot {request.app.state.name}")


async def routed(request: Request) -> Response:
    return PlainTextResponse("routed")


async def refused(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": type(exc).__name__}, status_code=402)


def make_app() -> Starlette:
    handlers: dict[type[Exception], ErrorHandler] = {Refused: refused}
    app = Starlette(
        routes=[Route("/hot", routed, methods=["GET", "POST"]), Route("/cold", routed, methods=["POST"])],
        middleware=[Middleware(DirectRoute, method="POST", path="/hot", endpoint=hot, error_handlers=handlers)],
        exception_handlers=dict(handlers),
    )
    app.state.name = "app-state-visible"
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url="http://test") as client:
        yield client


async def test_the_hot_method_and_path_skip_the_router_and_see_the_app(client: httpx.AsyncClient) -> None:
    assert (await client.post("/hot")).text == "hot app-state-visible"
    assert (await client.get("/hot")).text == "routed"  # another method goes down the normal stack
    assert (await client.post("/cold")).text == "routed"


async def test_errors_are_answered_by_the_apps_handlers_by_class_hierarchy(client: httpx.AsyncClient) -> None:
    answer = await client.post("/hot", params={"raise": "refused"})
    assert (answer.status_code, answer.json()) == (402, {"error": "RefusedHard"})


async def test_an_error_without_a_handler_propagates_as_it_would_through_the_app(client: httpx.AsyncClient) -> None:
    with pytest.raises(LookupError):
        await client.post("/hot", params={"raise": "other"})
