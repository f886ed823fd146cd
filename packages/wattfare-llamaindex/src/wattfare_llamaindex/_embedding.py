"""`WattfareEmbedding`: a LlamaIndex embedding model whose every request is paid from one end user's budget."""

from __future__ import annotations

from typing import Any

import httpx
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from wattfare_llamaindex._arguments import EMBEDDING, resolve_arguments
from wattfare_llamaindex._connection import Connection

__all__ = ["WattfareEmbedding"]


class WattfareEmbedding(BaseEmbedding):
    """A LlamaIndex embedding model served by Wattfare and charged to one of your app's users.

    Use it where LlamaIndex's `OpenAIEmbedding` goes (`Settings.embed_model`, `VectorStoreIndex(...,
    embed_model=...)`, ingestion pipelines); the difference is who pays: every request is metered against
    `user_id`'s Wattfare budget. LlamaIndex sends texts `embed_batch_size` at a time, one request per batch
    (async batches run concurrently, up to `num_workers` at once when set). Failures raise the Wattfare
    SDK's typed errors unchanged (`NotConnectedError`: show your "Connect AI budget" button;
    `BudgetExceededError`: the cap is reached until `resets_at`); a spent cap is never retried, a busy
    budget is retried by the SDK (`max_retries`).

    Args:
        model: An embedding model id, as in Wattfare's model list (`openai/text-embedding-3-small`).
        user_id: Your app's id for the end user who pays.
        grant: Instead of a user, a member's one-time grant token (`wfg_…`, sent as `Wattfare-Grant`); see
            `for_grant`.
        secret_key: Your app's secret key (alias `api_key`, as in `OpenAIEmbedding`); `WATTFARE_SECRET_KEY` when
            None.
        base_url: The Wattfare server (alias `api_base`); `WATTFARE_BASE_URL`, then `http://127.0.0.1:8787`, when
            None.
        http_client: An `httpx.Client` for the SDK to send through (proxies, custom transports); you close it.
        async_http_client: The same for async calls; you close it.
        **kwargs: Any other field below (`dimensions`, `embed_batch_size`, `timeout`, ...), or LlamaIndex's own
            (`callback_manager`, `num_workers`, `embeddings_cache`, ...).

    Raises:
        UsageError: The secret key is missing or malformed; `user_id` is empty, or not exactly one of `user_id` and
            `grant` is given; or an argument is unknown, or one of `OpenAIEmbedding`'s that means nothing here
            (`mode`, `default_headers`, `reuse_client`, ...): the message says what to do instead. Unknown arguments
            are never sent: request fields go in `additional_kwargs`.

    Example:
        >>> embed_model = WattfareEmbedding(model="openai/text-embedding-3-small", user_id="user_42")  # doctest: +SKIP
        >>> index = VectorStoreIndex.from_documents(documents, embed_model=embed_model)  # doctest: +SKIP
    """

    user_id: str | None = Field(default=None, description="The app's id for the end user whose budget pays.")
    grant: str | None = Field(
        default=None, exclude=True, repr=False, description="A one-time grant's token, charged instead of a user."
    )
    base_url: str | None = Field(default=None, description="The Wattfare server (WATTFARE_BASE_URL when None).")
    dimensions: int | None = Field(
        default=None, gt=0, description="The size of each vector, for models that can shorten theirs."
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="More embeddings request fields sent with every request."
    )
    timeout: float = Field(default=60.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(
        default=2,
        ge=0,
        description="The SDK's retries of connection errors, 429 (a busy budget included) and 5xx; a 402 never is.",
    )

    _connection: Connection = PrivateAttr()

    def __init__(
        self,
        model: str,
        user_id: str | None = None,
        secret_key: str | None = None,
        base_url: str | None = None,
        *,
        grant: str | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        given = {"secret_key": secret_key, "base_url": base_url}
        arguments = resolve_arguments(
            {**{name: value for name, value in given.items() if value is not None}, **kwargs},
            accepted={*type(self).model_fields, "secret_key"} - {"model_name"},
            rules=EMBEDDING,
        )
        secret_key = arguments.pop("secret_key", None)
        # BaseEmbedding's signature names only its own fields; this class's reach pydantic through `**data`.
        data: dict[str, Any] = {"model_name": model, "user_id": user_id, "grant": grant, **arguments}
        super().__init__(**data)
        self._connection = Connection(
            secret_key=secret_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            http_client=http_client,
            async_http_client=async_http_client,
        )
        self._connection.check_payer("WattfareEmbedding", user_id, grant)

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serializes this class under."""
        return "WattfareEmbedding"

    def for_user(self, user_id: str) -> WattfareEmbedding:
        """The same model charged to another user: a cheap copy sharing this one's connection pools.

        Raises:
            UsageError: `user_id` is empty.
        """
        self._connection.check_payer("WattfareEmbedding", user_id, None)
        return self.model_copy(update={"user_id": user_id, "grant": None})

    def for_grant(self, grant: str) -> WattfareEmbedding:
        """The same model charged to a member's one-time grant (its token) instead of a user: a cheap copy.

        Raises:
            UsageError: `grant` is not a non-empty printable ASCII str.
        """
        self._connection.check_payer("WattfareEmbedding", None, grant)
        return self.model_copy(update={"grant": grant, "user_id": None})

    def close(self) -> None:
        """Close the sync connection pool (shared with `for_user` copies)."""
        self._connection.close()

    async def aclose(self) -> None:
        """Close this event loop's async connection pool (shared with `for_user` copies)."""
        await self._connection.aclose()

    # ---------------------------------------------------------------- LlamaIndex's hooks

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embeddings([query])[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aget_text_embeddings([query]))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        if not texts:
            return []
        payer = self._connection.payer(self.user_id, self.grant)
        response = payer.embed(model=self.model_name, input=texts, dimensions=self.dimensions, extra_body=self._body())
        return response.vectors()

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        if not texts:
            return []
        payer = self._connection.async_payer(self.user_id, self.grant)
        response = await payer.embed(
            model=self.model_name, input=texts, dimensions=self.dimensions, extra_body=self._body()
        )
        return response.vectors()

    def _body(self) -> dict[str, Any] | None:
        return dict(self.additional_kwargs) or None
