"""The SDK's version, sent in the `User-Agent` header.

The only place it is written: hatch reads it into the distribution's metadata (`[tool.hatch.version]`).
"""

from __future__ import annotations

__version__ = "0.1.0"
