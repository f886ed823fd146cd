"""Refusals in Wattfare's OpenAPI document: the error envelope, every code, and the statuses each is answered with.

The codes come from `wattfare._error_codes`, the table the server and the SDK share, and each error status lists
only the codes answered with it, so the document cannot drift from that table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from wattfare._error_codes import STATUS_BY_CODE
from wattfare.server.api.openapi_schemas import Schema, nullable, object_schema, ref

# Codes answered with a status other than their own (STATUS_BY_CODE): an unknown path or method, an oversized
# body, a provider's 422 (`invalid_request`); a browser's unregistered origin (`auth`); a provider's time-out.
_ALSO_ANSWERED: Final[dict[str, tuple[int, ...]]] = {
    "invalid_request": (404, 405, 413, 422),
    "auth": (403,),
    "upstream": (504,),
}
_STATUS_TEXT: Final = {
    400: "Malformed request",
    401: "Missing, invalid or revoked credentials",
    402: "The payer (the end user's budget, or the grant) cannot pay",
    403: "Origin not allowed",
    404: "Not found",
    405: "Method not allowed",
    413: "Body too large",
    422: "The model provider rejected the request",
    429: "Slow down (retry after `Retry-After` seconds)",
    500: "Internal error",
    502: "The model provider failed",
    503: "Wattfare's database is unavailable (retry shortly)",
    504: "The model provider timed out",
}
_OPENAI_ERROR_TYPES: Final = (
    "authentication_error",
    "insufficient_quota",
    "rate_limit_error",
    "invalid_request_error",
    "api_error",
)
_NO_RETRY: Final[dict[str, Schema]] = {
    "x-should-retry": {
        "description": "`false`: retrying cannot help until the payer changes (OpenAI clients read it).",
        "schema": {"type": "string", "enum": ["false"]},
    }
}


def codes_by_status() -> dict[int, list[str]]:
    """Every status an error is answered with, and the codes it may carry (from `wattfare._error_codes`)."""
    table: dict[int, list[str]] = {}
    for code, status in STATUS_BY_CODE.items():
        for answered in (status, *_ALSO_ANSWERED.get(code, ())):
            table.setdefault(answered, []).append(code)
    return {status: sorted(codes) for status, codes in sorted(table.items())}


def error_schemas() -> dict[str, Schema]:
    """The component schemas of the envelope: `ErrorCode` (every code) and `Error`."""
    return {
        "ErrorCode": {"type": "string", "enum": sorted(STATUS_BY_CODE)},
        "Error": object_schema(
            {
                "error": object_schema(
                    {
                        "code": ref("ErrorCode"),
                        "message": {"type": "string"},
                        "type": {"type": "string", "enum": list(_OPENAI_ERROR_TYPES)},
                        "param": nullable({"type": "string"}),
                        "resetsAt": {"type": "string", "format": "date-time", "description": "When a cap resets."},
                    },
                    ("code", "message", "type", "param"),
                )
            },
            ("error",),
        ),
    }


def error_response(status: int, codes: Sequence[str]) -> Schema:
    """The response of a refusal with `status`, whose envelope carries one of `codes`."""
    schema: Schema = {
        "allOf": [
            ref("Error"),
            {"properties": {"error": {"properties": {"code": {"enum": list(codes)}}}}},
        ]
    }
    response: Schema = {
        "description": f"{_STATUS_TEXT.get(status, 'Error')}: `{'`, `'.join(codes)}`.",
        "content": {"application/json": {"schema": schema}},
    }
    if status == 402:
        response["headers"] = _NO_RETRY
    return response


def error_responses() -> dict[str, Schema]:
    """The document's `components.responses`: `E<status>` for every error status, listing all its codes."""
    return {f"E{status}": error_response(status, codes) for status, codes in codes_by_status().items()}


def answers(
    success: dict[str, Schema], *errors: int, only: Mapping[int, Sequence[str]] | None = None
) -> dict[str, Schema]:
    """An operation's responses: `success`, then each of `errors` (a status in `only` lists just those codes)."""
    narrowed = only or {}
    listed: dict[str, Schema] = dict(success)
    for status in sorted({*errors, *narrowed}):
        if status in narrowed:
            listed[str(status)] = error_response(status, narrowed[status])
        else:
            listed[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    return listed
