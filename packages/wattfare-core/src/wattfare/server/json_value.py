"""Typed views of parsed JSON: upstream bodies are untrusted, so every access checks the shape first."""

from __future__ import annotations

from typing import Any, cast


def as_object(value: object) -> dict[str, Any] | None:
    """`value` as a JSON object, or None when it is anything else."""
    return cast("dict[str, Any]", value) if isinstance(value, dict) else None


def as_array(value: object) -> list[Any] | None:
    """`value` as a JSON array, or None when it is anything else."""
    return cast("list[Any]", value) if isinstance(value, list) else None
