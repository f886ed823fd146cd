"""Browser origins an app registers: the only places its consent results and CORS answers may go.

An origin is `scheme://host[:port]`, exactly as browsers send it in the `Origin` header (lower-case host,
default port omitted), so a registered origin compares equal to the header or not at all.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_ORIGINS = 20
_DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginError(ValueError):
    """Not an origin an app may register."""


def normalize_origin(text: str) -> str:
    """`text` as a canonical origin; raise `OriginError` when it is not one (a path, `*`, another scheme…)."""
    candidate = text.strip().rstrip("/")
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError:
        raise OriginError(f"{text!r} is not a URL") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise OriginError(f"{text!r}: an origin starts with http:// or https://")
    if not parts.hostname or parts.username or parts.password:
        raise OriginError(f"{text!r}: an origin names a host, without user or password")
    if parts.path or parts.query or parts.fragment:
        raise OriginError(f"{text!r}: an origin has no path, query or fragment (e.g. https://app.example.com)")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def parse_origins(text: str) -> list[str]:
    """Origins separated by whitespace or commas, normalised and deduplicated, in their given order."""
    found: list[str] = []
    for item in text.replace(",", " ").split():
        origin = normalize_origin(item)
        if origin not in found:
            found.append(origin)
    if len(found) > MAX_ORIGINS:
        raise OriginError(f"at most {MAX_ORIGINS} origins per app")
    return found
