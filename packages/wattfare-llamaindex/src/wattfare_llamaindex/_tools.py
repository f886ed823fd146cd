"""Tool calling between LlamaIndex and the OpenAI wire: tool schemas out, `ToolSelection`s back.

`tool_choice` follows the OpenAI integration: a tool's name forces that tool, `tool_required=True`
(what LlamaIndex's structured output asks for) becomes `"required"`, and otherwise the model chooses.
Arguments are read leniently (`parse_partial_json`) because agents read every streamed, half-written call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from llama_index.core.base.llms.types import ChatResponse, ToolCallBlock
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json  # pyright: ignore[reportUnknownVariableType]
from llama_index.core.tools.types import BaseTool
from pydantic import BaseModel

__all__ = ["keep_first_tool_call", "resolve_tool_choice", "tool_selections", "tool_specs"]

_CHOICES = frozenset({"auto", "none", "required"})


def tool_specs(tools: Sequence[BaseTool], *, strict: bool) -> list[dict[str, Any]]:
    """The OpenAI `tools` for LlamaIndex tools; `strict` asks for schema-exact arguments.

    Descriptions longer than OpenAI's 1024 characters are sent as they are: Wattfare routes to many
    providers, and the one serving the model decides.
    """
    specs: list[dict[str, Any]] = []
    for tool in tools:
        spec = tool.metadata.to_openai_tool(skip_length_check=True)
        if strict:
            function = spec["function"]
            function["strict"] = True
            function["parameters"] = {**function["parameters"], "additionalProperties": False}
        specs.append(spec)
    return specs


def resolve_tool_choice(tool_choice: str | Mapping[str, Any] | None, *, tool_required: bool) -> str | dict[str, Any]:
    """The OpenAI `tool_choice` for LlamaIndex's `tool_choice` and `tool_required`."""
    if tool_choice is None:
        return "required" if tool_required else "auto"
    if isinstance(tool_choice, str):
        if tool_choice in _CHOICES:
            return tool_choice
        return {"type": "function", "function": {"name": tool_choice}}
    return dict(tool_choice)


def tool_selections(response: ChatResponse, *, error_on_no_tool_call: bool) -> list[ToolSelection]:
    """The tool calls in a response's message, whole or (mid-stream) partial.

    Raises:
        ValueError: There is none and `error_on_no_tool_call` is set.
    """
    message = response.message
    blocks = [block for block in message.blocks if isinstance(block, ToolCallBlock)]
    if blocks:
        selections = [
            ToolSelection(
                tool_id=block.tool_call_id or "", tool_name=block.tool_name, tool_kwargs=_kwargs(block.tool_kwargs)
            )
            for block in blocks
        ]
    else:
        legacy = cast(Sequence[object], message.additional_kwargs.get("tool_calls") or [])
        selections = [_legacy_selection(call) for call in legacy]
    if not selections and error_on_no_tool_call:
        raise ValueError("Expected at least one tool call, but got 0 tool calls.")
    return selections


def keep_first_tool_call(response: ChatResponse) -> ChatResponse:
    """Drop every tool call but the first (`allow_parallel_tool_calls=False`), in place; returns the response."""
    message = response.message
    calls = [block for block in message.blocks if isinstance(block, ToolCallBlock)]
    if len(calls) > 1:
        message.blocks = [
            block for block in message.blocks if block is calls[0] or not isinstance(block, ToolCallBlock)
        ]
    legacy = message.additional_kwargs.get("tool_calls")
    if isinstance(legacy, list) and len(cast(list[object], legacy)) > 1:
        message.additional_kwargs["tool_calls"] = cast(list[object], legacy)[:1]
    return response


def _kwargs(arguments: object) -> dict[str, Any]:
    if isinstance(arguments, Mapping):
        return dict(cast(Mapping[str, Any], arguments))
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = cast(object, parse_partial_json(arguments))
    except (ValueError, TypeError, json.JSONDecodeError):
        # Too little of the arguments has streamed in to read anything yet.
        return {}
    return dict(cast(Mapping[str, Any], parsed)) if isinstance(parsed, Mapping) else {}


def _legacy_selection(call: object) -> ToolSelection:
    data: Mapping[str, Any]
    if isinstance(call, Mapping):
        data = cast(Mapping[str, Any], call)
    elif isinstance(call, BaseModel):
        data = call.model_dump()
    else:
        raise ValueError(f"unreadable tool call: {call!r}")
    function = cast(Mapping[str, Any], data.get("function") or {})
    return ToolSelection(
        tool_id=str(data.get("id") or ""),
        tool_name=str(function.get("name") or ""),
        tool_kwargs=_kwargs(function.get("arguments")),
    )
