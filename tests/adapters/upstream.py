"""What the model provider received through Wattfare, read from the stand-in upstream's record of it.

The stand-in keeps the last request it got (body and headers) and a count per model. An adapter test
sends one request carrying a fresh marker, then asks: did exactly that request arrive, and does it carry
any credential: a field named like one (`api_key`, `openai_api_key`, `secret`, `password`,
`authorization`, `…token` but not a token count such as `max_tokens`), at any depth of the body, or
a Wattfare key's text anywhere in the body or the headers?
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.standin_upstream import StandIn

_SECRET_NAME = re.compile(r"api[_-]?key|apikey|secret|passw(or)?d|authori[sz]ation|credential", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether a body field's name says it holds a credential (`max_tokens` and other token counts do not)."""
    lowered = name.lower()
    return bool(_SECRET_NAME.search(lowered)) or ("token" in lowered and not lowered.endswith("tokens"))


def secret_fields(value: Any, path: str = "") -> list[str]:
    """The paths of every field named like a credential in a JSON value, at any depth."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if is_secret_name(str(key)):
                found.append(where)
            found += secret_fields(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += secret_fields(item, f"{path}[{index}]")
    return found


def leaks(stats: dict[str, Any], keys: Iterable[str]) -> list[str]:
    """Every credential in the stand-in's last request: secret-named body fields and key text in body or headers."""
    found = [f"body field {path}" for path in secret_fields(stats["last_request"])]
    headers: dict[str, str] = stats["last_headers"]
    for key in keys:
        if key in stats["last_raw"]:
            found.append(f"the key {key[:12]}… in the body")
        found += [f"the key {key[:12]}… in header {name}" for name, value in headers.items() if key in f"{name}{value}"]
    return found


class Upstream:
    """The stand-in model provider, as a test asks it what it received."""

    def __init__(self, standin: StandIn) -> None:
        self.standin = standin

    def requests(self, model: str) -> int:
        """How many chat completions for `model` reached the provider so far."""
        counts: dict[str, int] = self.standin.stats()["requests"]
        return counts.get(model, 0)

    @contextmanager
    def receives_one_clean_request(self, keys: Iterable[str]) -> Iterator[str]:
        """Yields a marker to put in the request's messages; afterwards, exactly one request carrying it arrived,
        and it carries no credential."""
        marker = f"marker-{uuid.uuid4().hex}"
        before = self.standin.stats()["total"]
        yield marker
        stats = self.standin.stats()
        assert stats["total"] == before + 1, f"{stats['total'] - before} requests reached the provider, not 1"
        assert marker in stats["last_raw"], "the request that arrived last is not this test's"
        found = leaks(stats, keys)
        assert not found, f"credentials reached the model provider: {found}"

    @contextmanager
    def receives_nothing(self) -> Iterator[None]:
        """Asserts afterwards that no request reached the provider."""
        before = self.standin.stats()["total"]
        yield
        assert self.standin.stats()["total"] == before, "a request reached the provider"
