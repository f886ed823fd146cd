"""Reading a Wattfare SSE response the way a client would: the `data` of each event, in order."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def data_fields(body: bytes) -> list[str]:
    """The `data` field of every event in a complete SSE body (comments and blank events skipped)."""
    fields: list[str] = []
    for event in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
        if lines:
            fields.append(b"\n".join(lines).decode())
    return fields


def decoded(field: str) -> Any:
    """One event's JSON, with numbers as `Decimal` so money compares exactly."""
    return json.loads(field, parse_float=Decimal)


def chunks(body: bytes) -> list[Any]:
    """Every JSON event before `[DONE]`."""
    return [decoded(field) for field in data_fields(body) if field != "[DONE]"]


def content_chunks(body: bytes) -> int:
    """How many events carried generated text."""
    counted = 0
    for chunk in chunks(body):
        choices: list[dict[str, Any]] = chunk.get("choices") or []
        deltas: list[dict[str, Any]] = [choice.get("delta") or {} for choice in choices]
        counted += any(delta.get("content") for delta in deltas)
    return counted
