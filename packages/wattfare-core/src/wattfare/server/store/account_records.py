"""Plain records of the human side: members, their sessions, funding, and the developer console's view of apps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from wattfare.server.store.records import Connection, Endpoint, Mode


@dataclass(frozen=True, slots=True)
class Member:
    """A person with a Wattfare account: the owner of one budget across all their connected apps."""

    id: str
    email: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MemberCredentials:
    """A member and their password hash (argon2id), read only to sign them in."""

    member: Member
    password_hash: str


@dataclass(frozen=True, slots=True)
class AppProfile:
    """An app as its developer and the consent page see it."""

    id: str
    name: str
    owner_member_id: str | None
    allowed_origins: tuple[str, ...]
    default_test_cap: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PublishableKey:
    """What a publishable key names: one app, in one mode (it unlocks nothing by itself)."""

    key_id: str
    app_id: str
    mode: Mode


@dataclass(frozen=True, slots=True)
class AppKey:
    """One of an app's keys, as the console lists it (`display` is set for publishable keys only)."""

    id: str
    mode: Mode
    kind: str
    hint: str
    display: str | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class MemberConnection:
    """A member's connection to an app, with its counters for one window."""

    connection: Connection
    app_name: str
    spent: int
    reserved: int
    alert_percent: int | None = 80  # the share of the cap at which the member is emailed; None: never


@dataclass(frozen=True, slots=True)
class CreditBalance:
    """A member's operator-granted credits, in nano-USD."""

    granted: int
    spent: int
    reserved: int

    @property
    def available(self) -> int:
        """What new holds may still hold."""
        return max(0, self.granted - self.spent - self.reserved)


@dataclass(frozen=True, slots=True)
class ConnectionFunding:
    """Who pays for a connection's requests: its member's own provider key if linked, else their credits.

    Attributes:
        member_id: the member who approved the connection.
        provider_key: the member's encrypted provider key, or None (credits pay).
        credits_available: the member's unreserved credits (nano-USD).
        ceiling_key: when credits pay, the member's encrypted per-member provider key with its hard ceiling
            (`billing.provider_ceiling`), or None (the operator's key is used, as without a management key).
    """

    member_id: str
    provider_key: str | None
    credits_available: int
    ceiling_key: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderKey:
    """A member's own provider key, encrypted at rest."""

    member_id: str
    provider: str
    ciphertext: str
    hint: str
    external_user_id: str | None
    created_at: datetime
    monthly_limit: int | None = None


@dataclass(frozen=True, slots=True)
class OAuthState:
    """A pending OAuth PKCE link: whose it is and the verifier that proves it."""

    member_id: str
    verifier: str
    monthly_limit: int | None = None


@dataclass(frozen=True, slots=True)
class DailySpend:
    """What a member's connections were charged on one UTC day (`day` is YYYY-MM-DD) through one endpoint."""

    day: str
    amount: int
    endpoint: Endpoint = "chat.completions"


@dataclass(frozen=True, slots=True)
class CeilingKey:
    """A credit-funded member's own provider key, made by the operator's management key, with its hard ceiling.

    Attributes:
        member_id: whose key it is.
        key_hash: the provider's id of the key (what its management API takes; not a secret).
        ciphertext: the key itself, sealed by the key vault for this member.
        monthly_limit: the limit (nano-USD a month) the provider last accepted for it.
        disabled: whether the provider was last told to refuse every request on it.
        synced_at: when the provider last accepted its limit.
    """

    member_id: str
    key_hash: str
    ciphertext: str
    monthly_limit: int
    disabled: bool
    synced_at: datetime


@dataclass(frozen=True, slots=True)
class CeilingBudget:
    """What bounds a credit-funded member's spend this month, as the ceiling's limit is computed from it.

    Attributes:
        charged_this_month: credits charged since the month began (already counted in the key's monthly usage).
        credits_left: credits granted and not yet charged (holds in flight are inside it).
        caps_headroom: what the member's active live connections may still spend this month, summed.
        linked_own_key: whether the member's own provider key pays their requests (credits then pay none).
    """

    charged_this_month: int
    credits_left: int
    caps_headroom: int
    linked_own_key: bool


@dataclass(frozen=True, slots=True)
class CeilingHit:
    """The provider refused a member's request at its ceiling: how often this month, and when last."""

    window_key: str
    hits: int
    last_at: datetime
