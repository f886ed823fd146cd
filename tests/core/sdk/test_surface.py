"""The public surface: twin parity, exports, docstrings, and what `import wattfare` pulls in."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from types import ModuleType
from typing import Any

import pytest

import wattfare
import wattfare.webhooks
from wattfare import (
    AsyncChatStream,
    AsyncModelHandle,
    AsyncWattfare,
    AsyncWattfareGrant,
    AsyncWattfareUser,
    ChatStream,
    ModelHandle,
    Wattfare,
    WattfareGrant,
    WattfareUser,
)

# The only names that differ between the twins: httpx's async spelling.
ASYNC_NAME = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__", "__iter__": "__aiter__"}
PROTOCOL = set(ASYNC_NAME) | set(ASYNC_NAME.values())

TWINS = [
    (Wattfare, AsyncWattfare),
    (WattfareUser, AsyncWattfareUser),
    (WattfareGrant, AsyncWattfareGrant),
    (ModelHandle, AsyncModelHandle),
    (ChatStream, AsyncChatStream),
]


def public_names(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") or n in PROTOCOL} - set(dir(object))


@pytest.mark.parametrize(("sync_cls", "async_cls"), TWINS, ids=lambda c: c.__name__)
def test_the_twins_expose_the_same_public_names(sync_cls: type, async_cls: type) -> None:
    expected = {ASYNC_NAME.get(name, name) for name in public_names(sync_cls)}

    assert public_names(async_cls) == expected


@pytest.mark.parametrize(("sync_cls", "async_cls"), TWINS, ids=lambda c: c.__name__)
def test_twin_methods_take_the_same_parameters_and_the_async_ones_that_do_io_are_coroutines(
    sync_cls: type, async_cls: type
) -> None:
    for name in public_names(sync_cls) - PROTOCOL - {"close"}:
        sync_attr, async_attr = inspect.getattr_static(sync_cls, name), inspect.getattr_static(async_cls, name)
        if isinstance(sync_attr, property):
            assert isinstance(async_attr, property), name
            continue
        sync_params = list(inspect.signature(sync_attr).parameters)
        assert sync_params == list(inspect.signature(async_attr).parameters), name
        sync_returns_handle = name in {"user", "grant", "model", "stream"}
        assert inspect.iscoroutinefunction(async_attr) is not sync_returns_handle, name


@pytest.mark.parametrize(
    ("sync_cls", "async_cls"),
    [(WattfareUser, AsyncWattfareUser), (WattfareGrant, AsyncWattfareGrant), (ModelHandle, AsyncModelHandle)],
    ids=lambda c: c.__name__,
)
def test_both_twins_embed_with_the_same_keyword_arguments(sync_cls: type, async_cls: type) -> None:
    sync_embed, async_embed = inspect.signature(sync_cls.embed), inspect.signature(async_cls.embed)

    assert inspect.iscoroutinefunction(async_cls.embed)
    assert not inspect.iscoroutinefunction(sync_cls.embed)
    assert list(sync_embed.parameters) == list(async_embed.parameters)
    assert {"input", "dimensions", "encoding_format", "extra_body"} <= set(sync_embed.parameters)
    assert str(sync_embed.return_annotation) == str(async_embed.return_annotation) == "EmbeddingResponse"


def test_the_embedding_types_are_exported() -> None:
    assert {"Embedding", "EmbeddingResponse", "EmbeddingUsage"} <= set(wattfare.__all__)


@pytest.mark.parametrize("module", [wattfare, wattfare.webhooks], ids=lambda m: m.__name__)
def test_every_exported_name_is_documented_and_all_is_sorted(module: ModuleType) -> None:
    assert module.__all__ == sorted(module.__all__)
    undocumented: list[str] = []
    for name in module.__all__:
        obj: Any = getattr(module, name)
        if inspect.isclass(obj):
            if not inspect.getdoc(obj):
                undocumented.append(name)
            undocumented.extend(
                f"{name}.{attr}"
                for attr, member in vars(obj).items()
                if not attr.startswith("_")
                and (callable(member) or isinstance(member, property))
                and not inspect.getdoc(member)
            )
        elif inspect.isfunction(obj) and not inspect.getdoc(obj):
            undocumented.append(name)
    assert undocumented == []


def test_the_webhook_surface_is_its_own_module_and_its_error_is_a_top_level_one() -> None:
    events = {
        "BudgetThreshold",
        "ConnectionApproved",
        "ConnectionCapChanged",
        "ConnectionRevoked",
        "FundingInvalid",
        "GrantCreated",
        "GrantRevoked",
        "UnknownEvent",
    }
    assert set(wattfare.webhooks.__all__) == events | {
        "WebhookConnection",
        "WebhookEvent",
        "WebhookGrant",
        "WebhookVerificationError",
        "verify",
    }
    assert set(typing.get_args(wattfare.webhooks.WebhookEvent)) == {getattr(wattfare.webhooks, e) for e in events}
    assert wattfare.webhooks.WebhookVerificationError is wattfare.WebhookVerificationError
    assert "WebhookVerificationError" in wattfare.__all__
    assert not events & set(wattfare.__all__)


def test_importing_the_sdk_pulls_in_no_server_stack() -> None:
    forbidden = ["starlette", "uvicorn", "sqlite3", "orjson", "wattfare.server"]
    code = f"import sys, wattfare; print([m for m in {forbidden!r} if m in sys.modules])"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)

    assert result.stdout.strip() == "[]"


def test_the_version_is_a_string_matching_the_distribution() -> None:
    from importlib.metadata import version

    assert wattfare.__version__ == version("wattfare-core")
