"""LlamaIndex `ChatMessage`s to OpenAI Chat Completions messages, the wire Wattfare's proxy speaks.

Text, images, audio and documents become content parts; an assistant's `ToolCallBlock`s (or, from older
integrations, `additional_kwargs["tool_calls"]`) become `tool_calls`; a tool result becomes a `tool`
message answering its `tool_call_id`. Thinking blocks are not sent back: they are the model's own
notes, and providers refuse or ignore them as input.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from llama_index.core.base.llms.types import (
    AudioBlock,
    CachePoint,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from pydantic import BaseModel

__all__ = ["to_wire_messages"]

# LlamaIndex names the assistant differently for some providers; the wire knows only "assistant".
_ROLES: Mapping[MessageRole, str] = {MessageRole.CHATBOT: "assistant", MessageRole.MODEL: "assistant"}
# Kept from `additional_kwargs` because the wire defines them; anything else there is LlamaIndex's own.
_PASSED_THROUGH = ("name",)


def to_wire_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """The OpenAI messages for a LlamaIndex conversation.

    Raises:
        ValueError: A message holds a block the Chat Completions wire cannot carry (video, citations).
    """
    return [_message(message) for message in messages]


def _message(message: ChatMessage) -> dict[str, Any]:
    role = _ROLES.get(message.role, message.role.value)
    if role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.additional_kwargs.get("tool_call_id", ""),
            "content": message.content or "",
        }
    wire: dict[str, Any] = {"role": role}
    for key in _PASSED_THROUGH:
        if key in message.additional_kwargs:
            wire[key] = message.additional_kwargs[key]
    if role == "assistant":
        tool_calls = _tool_calls(message)
        text = message.content
        # An assistant turn that only calls tools has no content; an empty string there is refused by some providers.
        wire["content"] = text if text or not tool_calls else None
        if tool_calls:
            wire["tool_calls"] = tool_calls
        return wire
    wire["content"] = _content(message)
    return wire


def _content(message: ChatMessage) -> str | list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in message.blocks:
        part = _part(block)
        if part is not None:
            parts.append(part)
    if all(part["type"] == "text" for part in parts):
        # Plain text stays a string: every provider accepts that, not every one accepts a parts list.
        return message.content or ""
    return parts


def _part(block: object) -> dict[str, Any] | None:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        image_url: dict[str, Any] = {"url": _image_url(block)}
        if block.detail:
            image_url["detail"] = block.detail
        return {"type": "image_url", "image_url": image_url}
    if isinstance(block, AudioBlock):
        data = block.resolve_audio(as_base64=True).read().decode()
        return {"type": "input_audio", "input_audio": {"data": data, "format": block.format or "wav"}}
    if isinstance(block, DocumentBlock):
        raw = block.resolve_document().read()
        mimetype = block.document_mimetype or "application/pdf"
        data = f"data:{mimetype};base64,{base64.b64encode(raw).decode()}"
        return {"type": "file", "file": {"filename": block.title or "document", "file_data": data}}
    if isinstance(block, ThinkingBlock | CachePoint | ToolCallBlock):
        return None
    raise ValueError(f"Wattfare cannot send a {type(block).__name__} in a chat message")


def _image_url(block: ImageBlock) -> str:
    if block.url is not None and block.image is None:
        return str(block.url)
    return block.inline_url()


def _tool_calls(message: ChatMessage) -> list[dict[str, Any]]:
    blocks = [block for block in message.blocks if isinstance(block, ToolCallBlock)]
    if blocks:
        return [
            _tool_call(block.tool_call_id or "", block.tool_name, _arguments(block.tool_kwargs)) for block in blocks
        ]
    legacy: object = message.additional_kwargs.get("tool_calls") or []
    return [_legacy_tool_call(call) for call in cast(Sequence[object], legacy)]


def _tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _arguments(kwargs: Mapping[str, Any] | str) -> str:
    # A string is what the model wrote: sent back verbatim, so the conversation shows it exactly.
    return kwargs if isinstance(kwargs, str) else json.dumps(kwargs, ensure_ascii=False)


def _legacy_tool_call(call: object) -> dict[str, Any]:
    # Older integrations store OpenAI SDK objects, newer ones plain dicts: both have the OpenAI shape.
    if isinstance(call, BaseModel):
        return call.model_dump(mode="json", exclude_none=True)
    if isinstance(call, Mapping):
        return dict(cast(Mapping[str, Any], call))
    raise ValueError(f"unreadable tool call in additional_kwargs: {call!r}")
