"""`WattfareEmbeddings`: LangChain embeddings whose every request is charged to one of your app's users."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Self, cast

from langchain_core.embeddings import Embeddings
from langchain_core.utils import from_env, secret_from_env
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator

from wattfare import (
    AsyncWattfare,
    AsyncWattfareGrant,
    AsyncWattfareUser,
    UsageError,
    Wattfare,
    WattfareGrant,
    WattfareUser,
)
from wattfare_langchain._arguments import EMBEDDINGS, accepted_names, check_arguments
from wattfare_langchain._connections import POOL, ClientSettings
from wattfare_langchain._payer import async_payer, check_non_empty, check_one_payer, sync_payer

__all__ = ["WattfareEmbeddings"]

_SECRET_KEY_ENV = "WATTFARE_SECRET_KEY"  # noqa: S105  (a variable name, not a secret)
_BASE_URL_ENV = "WATTFARE_BASE_URL"


class WattfareEmbeddings(BaseModel, Embeddings):
    """LangChain embeddings served by Wattfare and paid from one app user's budget.

    A drop-in for `OpenAIEmbeddings`: `OpenAIEmbeddings(model="text-embedding-3-small")` becomes
    `WattfareEmbeddings(model="openai/text-embedding-3-small", user_id=user.id)`, and vector stores,
    retrievers and `embed_documents` / `embed_query` (and their async twins) work as before. Texts are
    sent `chunk_size` at a time, one request per chunk, each metered against the user's monthly cap.

    Errors are Wattfare's own typed exceptions, unchanged and never retried when a retry cannot help:
    `wattfare.NotConnectedError` (show the "Connect AI budget" button), `wattfare.BudgetExceededError`
    (the cap is reached until `resets_at`). A busy budget (`wattfare.BudgetBusyError`) is retried by the
    core client, up to `max_retries`.

    Args:
        model: A Wattfare embedding model id, such as `"openai/text-embedding-3-small"`.
        user_id: Your app's id for the user who pays; see `for_user` for one instance shared by many users.
        grant: Instead of a user, a member's one-time grant token (`wfg_…`, sent as `Wattfare-Grant`); see
            `for_grant`.
        dimensions: The size of each vector, for models that can shorten theirs (`text-embedding-3-*`).
        chunk_size: The most texts sent in one request (`OpenAIEmbeddings`' default: 1000).
        secret_key: Your app's secret key (alias `api_key`, or `OpenAIEmbeddings`' `openai_api_key`); defaults to
            `WATTFARE_SECRET_KEY`.
        base_url: The Wattfare server (alias `openai_api_base`); defaults to `WATTFARE_BASE_URL`, then the core
            client's default.
        timeout: Seconds per request (alias `request_timeout`); the core client's default when None.
        max_retries: Retries of connection errors, timeouts, 429s (a busy budget included) and 5xx; a 402 never.

    Raises:
        wattfare.UsageError: No secret key was given and `WATTFARE_SECRET_KEY` is unset; both `user_id` and `grant`
            were given; or an argument is unknown, or one of `OpenAIEmbeddings`' that means nothing here
            (`openai_organization`, `tiktoken_model_name`, `embedding_ctx_length`, `default_headers`, ...): the
            message says what to do instead. Unknown arguments are never sent: request fields go in `model_kwargs`.

    Example:
        >>> from wattfare_langchain import WattfareEmbeddings
        >>> embeddings = WattfareEmbeddings(
        ...     model="openai/text-embedding-3-small", user_id="user_42", secret_key="sk_test_123"
        ... )
        >>> embeddings.for_user("user_43").user_id
        'user_43'
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True, protected_namespaces=())

    model: str
    """The Wattfare embedding model id."""
    user_id: str | None = None
    """Your app's id for the user charged; this or `grant` is required by the time a request is sent."""
    grant: str | None = Field(default=None, repr=False, exclude=True)
    """A member's one-time grant token, charged instead of a user; never shown in a repr or a dump."""
    dimensions: int | None = Field(default=None, ge=1)
    """The size of each vector, for models that can shorten theirs; the model's own when None."""
    chunk_size: int = Field(default=1000, ge=1)
    """The most texts sent in one request."""
    secret_key: SecretStr | None = Field(
        default_factory=secret_from_env(_SECRET_KEY_ENV, default=None),
        validation_alias=AliasChoices("secret_key", "api_key", "openai_api_key"),
    )
    """Your app's secret key (`sk_test_…` / `sk_live_…`); `api_key=` or `openai_api_key=` in the constructor too."""
    base_url: str | None = Field(
        default_factory=from_env(_BASE_URL_ENV, default=None),
        validation_alias=AliasChoices("base_url", "openai_api_base"),
    )
    """The Wattfare server (its root, or its `/api/v1`); `openai_api_base=` in the constructor too."""
    timeout: float | None = Field(default=None, validation_alias=AliasChoices("timeout", "request_timeout"))
    """Seconds per request; `request_timeout=` in the constructor too."""
    max_retries: int = 2
    """Retries of what a retry can fix, done by the core client; never a 402."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other embeddings request fields, sent as given (never client settings such as `api_key` or `timeout`)."""
    client: Wattfare | None = Field(default=None, exclude=True)
    """A core client to send sync calls through instead of the shared one built from the settings above."""
    async_client: AsyncWattfare | None = Field(default=None, exclude=True)
    """A core client to send async calls through instead of the shared one built from the settings above."""

    @model_validator(mode="before")
    @classmethod
    def _check_arguments(cls, data: object) -> object:
        # As ChatWattfare: nothing unknown becomes a request field (see _arguments).
        if not isinstance(data, dict):
            return data
        return check_arguments(cast(dict[str, Any], data), accepted_names(cls), EMBEDDINGS)

    @model_validator(mode="after")
    def _require_secret_key(self) -> Self:
        if self.secret_key is None and self.client is None and self.async_client is None:
            raise UsageError(f"no secret key: pass secret_key=... (or api_key=...) or set {_SECRET_KEY_ENV}")
        return self

    @model_validator(mode="after")
    def _one_payer(self) -> Self:
        check_one_payer("WattfareEmbeddings", self.user_id, self.grant)
        return self

    # ------------------------------------------------------------ users and connections

    def for_user(self, user_id: str) -> Self:
        """A copy charged to another user; cheap, and it shares this instance's connections.

        Build one `WattfareEmbeddings` at startup and call this per request.

        Raises:
            wattfare.UsageError: `user_id` is not a non-empty string.
        """
        return self.model_copy(update={"user_id": check_non_empty("user_id", user_id), "grant": None})

    def for_grant(self, grant: str) -> Self:
        """A copy charged to a member's one-time grant (its token) instead of a user; cheap, as `for_user`.

        Raises:
            wattfare.UsageError: `grant` is not a non-empty string.
        """
        return self.model_copy(update={"grant": check_non_empty("grant", grant), "user_id": None})

    def close(self) -> None:
        """Close the shared sync connection pool this instance uses (a `client` you passed in stays yours to close).

        The pool is shared with every `ChatWattfare` and `WattfareEmbeddings` of the same key, server, timeout and
        retries; the next call opens a new one.
        """
        if self.client is None:
            POOL.close(self._settings())

    async def aclose(self) -> None:
        """Close the running event loop's shared connection pool this instance uses; see `close`."""
        if self.async_client is None:
            await POOL.aclose(self._settings())

    def _settings(self) -> ClientSettings:
        key = self.secret_key.get_secret_value() if self.secret_key is not None else None
        return ClientSettings(key, self.base_url, self.timeout, self.max_retries)

    def _sync_payer(self) -> WattfareUser | WattfareGrant:
        client = self.client if self.client is not None else POOL.sync_client(self._settings())
        return sync_payer("WattfareEmbeddings", client, self.user_id, self.grant)

    def _async_payer(self) -> AsyncWattfareUser | AsyncWattfareGrant:
        client = self.async_client if self.async_client is not None else POOL.async_client(self._settings())
        return async_payer("WattfareEmbeddings", client, self.user_id, self.grant)

    def _chunks(self, texts: list[str], chunk_size: int | None) -> Iterator[list[str]]:
        size = self.chunk_size if chunk_size is None else chunk_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise UsageError(f"chunk_size must be an int >= 1, got {size!r}")
        for start in range(0, len(texts), size):
            yield texts[start : start + size]

    # ------------------------------------------------------------ LangChain's embeddings interface

    def embed_documents(self, texts: list[str], chunk_size: int | None = None) -> list[list[float]]:
        """One vector per text, in order, sent `chunk_size` texts per request (this instance's when None)."""
        payer = self._sync_payer()
        vectors: list[list[float]] = []
        for chunk in self._chunks(texts, chunk_size):
            response = payer.embed(model=self.model, input=chunk, dimensions=self.dimensions, extra_body=self._body())
            vectors.extend(response.vectors())
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """The vector of one text."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str], chunk_size: int | None = None) -> list[list[float]]:
        """`embed_documents`, async; the chunks are sent one after another, as `OpenAIEmbeddings` sends them."""
        payer = self._async_payer()
        vectors: list[list[float]] = []
        for chunk in self._chunks(texts, chunk_size):
            response = await payer.embed(
                model=self.model, input=chunk, dimensions=self.dimensions, extra_body=self._body()
            )
            vectors.extend(response.vectors())
        return vectors

    async def aembed_query(self, text: str) -> list[float]:
        """`embed_query`, async."""
        return (await self.aembed_documents([text]))[0]

    def _body(self) -> dict[str, Any] | None:
        return dict(self.model_kwargs) or None
