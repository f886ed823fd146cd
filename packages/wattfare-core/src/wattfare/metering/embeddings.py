"""Embedding requests: a bound on their input tokens, and when their reported usage may be believed.

An embedding request writes no tokens: its whole cost is its input, priced per prompt token. It is admitted
by the same `decide_admission` as a chat completion, with ``requested_max_tokens=EMBEDDING_OUTPUT_TOKENS``
(no answer to allow), so the hold is exactly the input bound at the highest prompt rate plus the per-request
fee, whatever the model's completion price or the app's output allowance, and the cap guarantee, ``budget_busy``
and ``budget_exceeded`` mean what they mean for chat.

The input bound holds for every tokenizer, as the chat prompt bound does (see `bounds`): a byte-level
tokenizer never emits a token shorter than one byte, so a string has at most as many tokens as UTF-8 bytes.
Token-array inputs are counted exactly. Each input is allowed a few tokens more for what a model adds
around it (a BERT-style model's ``[CLS]``/``[SEP]``, a begin/end-of-text pair).
"""

from __future__ import annotations

from collections.abc import Sequence

from wattfare.metering.settlement import MeteredUsage

__all__ = [
    "EMBEDDING_OUTPUT_TOKENS",
    "PER_INPUT_TOKEN_ALLOWANCE",
    "embedding_token_bound",
    "trusted_embedding_usage",
]

EMBEDDING_OUTPUT_TOKENS: int = 0
"""The ``max_tokens`` an embedding request is admitted with (`decide_admission`): it writes no tokens."""

PER_INPUT_TOKEN_ALLOWANCE: int = 4
"""Tokens a model may add around each input (special tokens such as ``[CLS]`` and ``[SEP]``)."""


def embedding_token_bound(inputs: Sequence[str | Sequence[int]]) -> int:
    """An upper bound on the input tokens of an embedding request, valid for every byte-level tokenizer.

    Args:
        inputs: One entry per input: a string (bounded by its UTF-8 bytes) or an array of token ids (counted
            exactly).

    Returns:
        The bound, in tokens: the inputs' bytes and token counts, plus `PER_INPUT_TOKEN_ALLOWANCE` per input.

    Raises:
        TypeError: An input is neither a string nor a sequence of token ids.
    """
    total = PER_INPUT_TOKEN_ALLOWANCE * len(inputs)
    for item in inputs:
        if isinstance(item, str):
            # surrogatepass: a lone surrogate cannot be UTF-8 encoded strictly, yet occupies three bytes.
            total += len(item.encode("utf-8", "surrogatepass"))
        elif isinstance(item, Sequence):  # pyright: ignore[reportUnnecessaryIsInstance]  # callers may pass anything
            total += len(item)
        else:
            raise TypeError(f"an embedding input must be a string or a token array, not {type(item).__name__}")
    return total


def trusted_embedding_usage(usage: MeteredUsage, *, inputs: int) -> bool:
    """Whether an upstream's reported usage of an embedding request may be charged as it stands.

    Every input is at least one token (inputs are never empty), so usage claiming fewer prompt tokens than
    there were inputs cannot be right, nor can usage the upstream reported impossible numbers for
    (``MeteredUsage.suspect``). Trusted usage is priced as a chat completion's is (a reported ``upstream_cost``
    wins). Untrusted usage is charged at the input bound instead: a wrong report never becomes a discount.

    Args:
        usage: The usage the upstream reported.
        inputs: How many inputs the request embedded.

    Returns:
        True when ``usage`` may be priced with `cost_of`.
    """
    if usage.suspect:
        return False
    return usage.prompt_tokens >= inputs
