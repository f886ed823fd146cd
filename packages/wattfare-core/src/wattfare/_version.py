"""The SDK's version, sent in the `User-Agent` header."""

from __future__ import annotations

__version__ = "0.1.0"
