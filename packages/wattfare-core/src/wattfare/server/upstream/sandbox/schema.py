"""Plausible JSON values for a JSON schema: the sandbox's tool arguments and structured outputs.

The builder fills what a validator checks (required properties, types, `enum`, `const`, bounds, lengths,
local `$ref`s) with deterministic values, so an app's parsing code sees the shape it asked for. The values
come from the prompt's cues (`cues.Cues`), the way a model would pick them, and are then fitted to the
schema's constraints:
- numbers and integers: the prompt's numbers, in the order the fields are built (integers rounded);
  1 and 1.5 once they run out;
- strings: the prompt's candidate strings in turn (quoted text, then names, then other words),
  "sandbox" when it has none; a `format` gets a fixed valid value;
- enums: the first value the prompt mentions, else the first value;
- booleans: true only when the prompt names the property ("refundable", `include_forecast`), else false;
- arrays: one item (or `minItems`). Optional properties are left out, as a terse model would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

from wattfare.server.upstream.sandbox.cues import Cues

__all__ = ["value_for_schema"]

# Past this depth a recursive schema stops at the first place where a smaller value is valid.
_MAX_DEPTH = 12
_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "12:00:00Z",
    "email": "sandbox@example.com",
    "uri": "https://example.com/sandbox",
    "url": "https://example.com/sandbox",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}


def value_for_schema(schema: Mapping[str, Any], cues: Cues | Sequence[str] = ()) -> Any:
    """Build a deterministic value that satisfies `schema`.

    Args:
        schema: a JSON schema (draft 7 / 2020-12 subset: types, properties, required, items,
            prefixItems, enum, const, anyOf/oneOf/allOf, local `$ref`, numeric and length bounds).
        cues: what the user's message offers (`Cues.read(text)`), or just candidate strings.

    Returns:
        A JSON-compatible value (dict, list, str, int, float, bool or None).
    """
    return _Builder(schema, cues if isinstance(cues, Cues) else Cues(strings=tuple(cues))).build(schema, "", 0)


def _mapping(value: object) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}


def _sequence(value: object) -> list[Any]:
    return list(cast(Sequence[Any], value)) if isinstance(value, list | tuple) else []


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _field_name(path: str) -> str:
    """The property a path ends in: ".trip.refundable" and ".flags[0]" give "refundable" and "flags"."""
    return path.rpartition(".")[2].partition("[")[0]


class _Builder:
    """Builds one value; it takes the prompt's numbers and strings in turn, so fields get different ones."""

    def __init__(self, root: Mapping[str, Any], cues: Cues) -> None:
        self._root = root
        self._cues = cues
        self._strings = cues.strings or ("sandbox",)
        self._numbers_used = 0
        self._strings_used = 0

    def build(self, schema: Mapping[str, Any], path: str, depth: int) -> Any:
        if "$ref" in schema:
            return self.build(self._resolve(str(schema["$ref"])), path, depth + 1)
        if "const" in schema:
            return schema["const"]
        enum = _sequence(schema.get("enum"))
        if enum:
            return self._enum(enum)
        if "allOf" in schema:
            return self._all_of(schema, path, depth)
        options = _sequence(schema.get("anyOf")) or _sequence(schema.get("oneOf"))
        if options:
            return self._one_of(options, path, depth)
        kind = self._type(schema)
        # A recursive schema ends at its first array (or nullable branch) past the depth limit; an
        # object that requires itself cannot be satisfied at all, so it is cut off later, as {}.
        if kind == "array" and depth > _MAX_DEPTH:
            return []
        if kind == "object" and depth > 2 * _MAX_DEPTH:
            return {}
        if kind == "object":
            return self._object(schema, path, depth)
        if kind == "array":
            return self._array(schema, path, depth)
        if kind == "integer":
            taken = self._number()
            return int(self._bounded(schema, 1 if taken is None else round(taken), integer=True))
        if kind == "number":
            taken = self._number()
            return self._bounded(schema, 1.5 if taken is None else taken, integer=False)
        if kind == "boolean":
            return self._cues.mentions_name(_field_name(path))
        if kind == "null":
            return None
        return self._string(schema)

    def _number(self) -> int | float | None:
        numbers = self._cues.numbers
        if self._numbers_used >= len(numbers):
            return None
        self._numbers_used += 1
        return numbers[self._numbers_used - 1]

    def _enum(self, values: list[Any]) -> Any:
        named = (
            value
            for value in values
            if isinstance(value, str | int | float) and not isinstance(value, bool) and self._cues.mentions(str(value))
        )
        return next(named, values[0])

    def _resolve(self, ref: str) -> Mapping[str, Any]:
        # Only local pointers ("#/$defs/Item"); anything else is built as a plain string.
        if not ref.startswith("#"):
            return {}
        node: object = self._root
        for part in filter(None, ref[1:].split("/")):
            node = _mapping(node).get(part.replace("~1", "/").replace("~0", "~"))
        return _mapping(node)

    def _type(self, schema: Mapping[str, Any]) -> str:
        declared = schema.get("type")
        if isinstance(declared, str):
            return declared
        kinds = [kind for kind in _sequence(declared) if isinstance(kind, str)]
        if kinds:
            return next((kind for kind in kinds if kind != "null"), kinds[0])
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"

    def _one_of(self, options: list[Any], path: str, depth: int) -> Any:
        schemas = [_mapping(option) for option in options]
        non_null = [option for option in schemas if option.get("type") != "null"]
        # Deep inside a recursive schema, a nullable branch ends the recursion.
        if depth > _MAX_DEPTH and len(non_null) < len(schemas):
            return None
        return self.build((non_null or schemas)[0], path, depth + 1)

    def _all_of(self, schema: Mapping[str, Any], path: str, depth: int) -> Any:
        parts = [self.build(_mapping(part), path, depth + 1) for part in _sequence(schema["allOf"])]
        rest = {key: value for key, value in schema.items() if key != "allOf"}
        if any(key in rest for key in ("type", "properties", "required")):
            parts.append(self.build(rest, path, depth + 1))
        merged: dict[str, Any] = {}
        for part in parts:
            if not isinstance(part, dict):
                return part
            merged.update(cast(dict[str, Any], part))
        return merged

    def _object(self, schema: Mapping[str, Any], path: str, depth: int) -> dict[str, Any]:
        properties = _mapping(schema.get("properties"))
        extra = _mapping(schema.get("additionalProperties"))
        value: dict[str, Any] = {}
        for name in _sequence(schema.get("required")):
            key = str(name)
            value[key] = self.build(_mapping(properties.get(key, extra)), f"{path}.{key}", depth + 1)
        return value

    def _array(self, schema: Mapping[str, Any], path: str, depth: int) -> list[Any]:
        prefix = [_mapping(item) for item in _sequence(schema.get("prefixItems"))]
        items = schema.get("items")
        if not prefix and isinstance(items, list | tuple):  # draft 7 tuple form
            prefix = [_mapping(item) for item in cast(Sequence[Any], items)]
            items = schema.get("additionalItems")
        minimum = int(_number(schema.get("minItems")) or 0)
        maximum = _number(schema.get("maxItems"))
        count = max(len(prefix), minimum, 1)
        if maximum is not None:
            count = min(count, int(maximum))
        values: list[Any] = []
        for index in range(count):
            item = prefix[index] if index < len(prefix) else _mapping(items)
            values.append(self.build(item, f"{path}[{index}]", depth + 1))
        return values

    def _bounded(self, schema: Mapping[str, Any], value: float, *, integer: bool) -> float:
        step = 1.0 if integer else 0.5
        low, high = _number(schema.get("minimum")), _number(schema.get("maximum"))
        if (exclusive := _number(schema.get("exclusiveMinimum"))) is not None:
            low = max(low if low is not None else -math.inf, exclusive + step)
        if (exclusive := _number(schema.get("exclusiveMaximum"))) is not None:
            high = min(high if high is not None else math.inf, exclusive - step)
        if low is not None and value < low:
            value = math.ceil(low) if integer else low
        if high is not None and value > high:
            value = math.floor(high) if integer else high
        multiple = _number(schema.get("multipleOf"))
        if multiple and multiple.is_integer() and value % multiple:
            value = math.ceil(value / multiple) * multiple
        return value

    def _string(self, schema: Mapping[str, Any]) -> str:
        text = _FORMATS.get(str(schema.get("format", "")))
        if text is None:
            # Each field takes the next candidate, so `city` and `country` get "Paris" and "France".
            text = self._strings[self._strings_used % len(self._strings)]
            self._strings_used += 1
        minimum = int(_number(schema.get("minLength")) or 0)
        if len(text) < minimum:
            text = (text * (minimum // max(len(text), 1) + 1))[:minimum] if text else "s" * minimum
        maximum = _number(schema.get("maxLength"))
        if maximum is not None:
            text = text[: int(maximum)]
        return text
