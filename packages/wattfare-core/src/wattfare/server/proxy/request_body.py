"""What every metered request body shares, chat completion or embedding: checked before any hold exists.

A proxy body is a JSON object, nested no deeper than any real request, with no field named like a credential
(Wattfare never forwards one to a provider); it names a `model`, and may name its end user in `user`. The end
user is then named to the provider only by an opaque id (`anonymous_user`). Each refusal is a typed 400 naming
the field; the body the upstream gets is encoded here too, so encoding cannot fail once a hold is taken.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from wattfare.server.errors import ApiError, invalid
from wattfare.server.store.grant_records import GRANT_PREFIX_REFUSAL, GRANT_USER_PREFIX

MAX_USER_ID_LENGTH = 256
MAX_MODEL_ID_LENGTH = 256
# Deeper than any real request: OpenAI caps structured-output schemas at 10 levels of nesting, and a
# message with content parts and tool calls is 6 deep. The JSON encoder gives up at 255.
MAX_NESTING_DEPTH = 64
# Top-level body fields whose name marks a credential: a provider must never receive one from Wattfare
# (an app's leftover `openai_api_key` would otherwise reach it in the body). Names are compared lower-case
# with `_`/`-` removed; "token" fields are credentials unless they count tokens (`max_tokens`).
_CREDENTIAL_MARKS = ("apikey", "secret", "password", "passwd", "authorization", "bearer", "credential", "privatekey")


def credential_field(name: str) -> bool:
    """Whether a body field's name marks it as a credential (an API key, a password, an access token)."""
    folded = name.lower().replace("_", "").replace("-", "")
    if any(mark in folded for mark in _CREDENTIAL_MARKS):
        return True
    return "accesskey" in folded or ("token" in folded and not folded.endswith("tokens"))


def _nesting_depth_within(value: Any, limit: int) -> bool:
    """Whether `value` nests at most `limit` arrays/objects deep.

    Level by level, containers only (most of a body is strings), and without recursion: a hostile body
    cannot exhaust the stack. Untyped on purpose: this runs on every request, over every container.
    """
    level: list[Any] = [value]
    for _ in range(limit):
        below: list[Any] = []
        for item in level:
            for child in item.values() if type(item) is dict else item:  # pyright: ignore[reportUnknownVariableType]
                if type(child) is dict or type(child) is list:  # pyright: ignore[reportUnknownArgumentType]
                    below.append(child)
        if not below:
            return True
        level = below
    return False


def json_object_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, checked for depth and credential-named fields; 400 otherwise."""
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise invalid("The request body must be a JSON object.")
    body_dict: dict[str, Any] = payload  # pyright: ignore[reportUnknownVariableType]
    if not _nesting_depth_within(body_dict, MAX_NESTING_DEPTH):
        raise invalid(f"The request body nests deeper than {MAX_NESTING_DEPTH} levels of arrays and objects.")
    for name in body_dict:
        if credential_field(name):
            raise invalid(
                f"The body field {name!r} looks like a credential; Wattfare never forwards credentials to a model "
                "provider. Authenticate with the 'Authorization' header and remove this field.",
                name,
            )
    return body_dict


def model_field(payload: dict[str, Any], example: str = "openai/gpt-4o-mini") -> str:
    """The body's `model`: a non-empty string of at most 256 characters; 400 otherwise."""
    model = payload.get("model")
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_ID_LENGTH:
        raise invalid(f"'model' is required and must be a model id such as {example!r}.", "model")
    return model


def user_field(payload: dict[str, Any]) -> str | None:
    """The body's `user` (the end user, when the `Wattfare-User` header is absent), if any; 400 if malformed."""
    user = payload.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > MAX_USER_ID_LENGTH):
        raise invalid(f"'user' must be a string of at most {MAX_USER_ID_LENGTH} characters.", "user")
    return user


def encoded_body(payload: dict[str, Any]) -> bytes:
    """The body the upstream gets, encoded now so that encoding cannot fail after the reserve; 400 if it cannot."""
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError as exc:
        raise invalid(f"The request body cannot be forwarded: {exc}.") from None


def anonymous_user(app_id: str, app_user_id: str) -> str:
    """A stable id for the end user that reveals neither the app's id for them nor who they are."""
    return "wf_" + hashlib.sha256(f"{app_id}:{app_user_id}".encode()).hexdigest()[:32]


def require_end_user(header_value: str | None, body_user: str | None) -> str:
    """The app user id from `Wattfare-User`, else the body's `user`; raise 400 when neither names one."""
    user = header_value if header_value else body_user
    if not user:
        raise ApiError(
            "invalid_request",
            "Name the end user with the 'Wattfare-User' header (or the 'user' field of the body).",
            param="user",
        )
    if len(user) > MAX_USER_ID_LENGTH or not user.isprintable():
        raise invalid(f"The end user id must be printable and at most {MAX_USER_ID_LENGTH} characters.", "user")
    if user.startswith(GRANT_USER_PREFIX):
        raise invalid(GRANT_PREFIX_REFUSAL, "user")
    return user
