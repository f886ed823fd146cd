"""The package's version, the only place it is written: hatch reads it into the metadata (`[tool.hatch.version]`)."""

from __future__ import annotations

__version__ = "0.1.0"
