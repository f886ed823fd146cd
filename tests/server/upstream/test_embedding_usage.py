"""Reading an embedding answer's usage: its input tokens, OpenRouter's cost, and what cannot be believed."""

from __future__ import annotations

import pytest

from wattfare.metering import MeteredUsage
from wattfare.server.upstream.usage import embedding_usage


@pytest.mark.parametrize(
    ("usage", "read"),
    [
        ({"prompt_tokens": 12, "total_tokens": 12}, MeteredUsage(prompt_tokens=12, completion_tokens=0)),
        ({"total_tokens": 7}, MeteredUsage(prompt_tokens=7, completion_tokens=0)),
        ({"prompt_tokens": None, "total_tokens": 7}, MeteredUsage(prompt_tokens=7, completion_tokens=0)),
        (
            {"prompt_tokens": 9, "total_tokens": 9, "cost": 0.00000018},
            MeteredUsage(prompt_tokens=9, completion_tokens=0, upstream_cost=180),
        ),
        (
            {"prompt_tokens": 9, "cost": 0, "is_byok": True, "cost_details": {"upstream_inference_cost": 0.000001}},
            MeteredUsage(prompt_tokens=9, completion_tokens=0, upstream_cost=1000),
        ),
        ({"prompt_tokens": -3}, MeteredUsage(prompt_tokens=0, completion_tokens=0, suspect=True)),
        ({"prompt_tokens": 2.5}, MeteredUsage(prompt_tokens=0, completion_tokens=0, suspect=True)),
        ({"prompt_tokens": 4, "cost": "lots"}, MeteredUsage(prompt_tokens=4, completion_tokens=0, suspect=True)),
    ],
)
def test_the_input_tokens_and_cost_are_read(usage: object, read: MeteredUsage) -> None:
    assert embedding_usage(usage) == read


@pytest.mark.parametrize("usage", [None, [], "12", {}, {"completion_tokens": 3}, {"prompt_tokens": None}])
def test_no_token_count_is_no_usage(usage: object) -> None:
    assert embedding_usage(usage) is None
