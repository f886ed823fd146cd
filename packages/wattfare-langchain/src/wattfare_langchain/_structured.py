"""`with_structured_output`'s three methods: function calling, a JSON schema response format, JSON mode.

Each binds the request fields the OpenAI wire uses for the method and pairs them with the parser that
turns the answer into the caller's schema (a pydantic model, or a dict for a TypedDict / JSON schema).
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter
from typing import Any, Literal, Protocol, cast

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_function, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

Method = Literal["function_calling", "json_schema", "json_mode"]
METHODS: tuple[Method, ...] = ("function_calling", "json_schema", "json_mode")


class Bindable(Protocol):
    """The two ChatWattfare methods a structured-output pipeline is built from."""

    def bind(self, **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]: ...

    def bind_tools(
        self, tools: Any, *, tool_choice: Any = None, strict: bool | None = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]: ...


def structured_output(
    model: Bindable,
    schema: Mapping[str, Any] | type,
    *,
    method: str,
    strict: bool | None,
    include_raw: bool,
) -> Runnable[LanguageModelInput, Any]:
    """The runnable `with_structured_output` returns.

    Raises:
        ValueError: An unknown `method`, or `strict` with JSON mode (which has no schema to be strict about).
    """
    is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
    parser: Runnable[AIMessage, Any]
    if method == "function_calling":
        name = convert_to_openai_tool(schema)["function"]["name"]
        llm = model.bind_tools(
            [schema], tool_choice=name, strict=strict, parallel_tool_calls=False, ls_structured_output_format=trace
        )
        if is_pydantic:
            parser = PydanticToolsParser(tools=[cast(type, schema)], first_tool_only=True)
        else:
            parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
    elif method == "json_schema":
        llm = model.bind(response_format=_json_schema_format(schema, strict), ls_structured_output_format=trace)
        parser = _json_parser(schema, is_pydantic=is_pydantic)
    elif method == "json_mode":
        if strict is not None:
            raise ValueError("strict is not supported with method='json_mode': JSON mode sends no schema")
        trace["kwargs"] = {"method": method}
        llm = model.bind(response_format={"type": "json_object"}, ls_structured_output_format=trace)
        parser = _json_parser(schema, is_pydantic=is_pydantic)
    else:
        raise ValueError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    if not include_raw:
        return llm | parser
    parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=_none)
    unparsed = RunnablePassthrough.assign(parsed=_none)
    return RunnableMap(raw=llm) | parsed.with_fallbacks([unparsed], exception_key="parsing_error")


def _none(_: object) -> None:
    return None


def _json_parser(schema: Mapping[str, Any] | type, *, is_pydantic: bool) -> Runnable[AIMessage, Any]:
    if is_pydantic:
        return PydanticOutputParser(pydantic_object=cast(Any, schema))
    return JsonOutputParser()


def _json_schema_format(schema: Mapping[str, Any] | type, strict: bool | None) -> dict[str, Any]:
    if isinstance(schema, Mapping) and "name" in schema and "schema" in schema:
        # Already OpenAI's `json_schema` object.
        spec: dict[str, Any] = dict(schema)
    else:
        function = convert_to_openai_function(cast(Any, schema), strict=strict)
        spec = {"name": function["name"], "schema": function["parameters"]}
        if function.get("description"):
            spec["description"] = function["description"]
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}
