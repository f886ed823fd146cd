"""The parts every operation of Wattfare's OpenAPI document is written with.

The `/api/v1` prefix, JSON answers and request bodies (by their schema's name), and the secret key's security
requirement.

Shared by `openapi_paths` and `openapi_webhook_paths`, so neither imports the other.
"""

from __future__ import annotations

from typing import Final

from wattfare.server.api.openapi_schemas import Schema, ref

V1: Final = "/api/v1"


def json_answer(schema_name: str, description: str, headers: dict[str, Schema] | None = None) -> Schema:
    """An answer whose JSON body is the named schema (with its headers, if any)."""
    answer: Schema = {"description": description, "content": {"application/json": {"schema": ref(schema_name)}}}
    if headers:
        answer["headers"] = headers
    return answer


def request_body(schema_name: str, *, required: bool = True) -> Schema:
    """A JSON request body of the named schema."""
    return {"required": required, "content": {"application/json": {"schema": ref(schema_name)}}}


BY_SECRET_KEY: Final[list[dict[str, list[str]]]] = [{"secretKey": []}]
