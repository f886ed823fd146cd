"""The store's webhook protocols: apps' endpoints and their deliveries, members' alert emails, funding notices."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from wattfare.server.store.records import Mode
from wattfare.server.store.webhook_records import (
    DeliveryRecord,
    DueAlert,
    DueDelivery,
    FundingProblem,
    WebhookEndpoint,
)


class Webhooks(Protocol):
    """Endpoints an app registers, and the deliveries of the events the outbox wrote for them."""

    async def add_webhook_endpoint(
        self, endpoint_id: str, app_id: str, mode: Mode, url: str, description: str, sealed_secret: str, now: datetime
    ) -> WebhookEndpoint:
        """Register an endpoint; it receives the events made from now on."""
        ...

    async def webhook_endpoints(self, app_id: str, mode: Mode) -> list[WebhookEndpoint]:
        """An app's endpoints in one mode, oldest first."""
        ...

    async def webhook_endpoint(self, app_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        """One of an app's endpoints (None for another app's, or a deleted one)."""
        ...

    async def rotate_webhook_secret(
        self, app_id: str, endpoint_id: str, sealed_secret: str, previous_until: datetime
    ) -> WebhookEndpoint | None:
        """Sign with a new secret from now on, and with the current one too until `previous_until`."""
        ...

    async def update_webhook_endpoint(
        self,
        app_id: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> WebhookEndpoint | None:
        """Change what is given (None keeps it), in one statement; any change turns `failing` into `enabled`."""
        ...

    async def delete_webhook_endpoint(self, app_id: str, endpoint_id: str, now: datetime) -> bool:
        """Stop delivering to an endpoint, for good (its past deliveries stay on the books)."""
        ...

    async def claim_deliveries(self, now: datetime, lease_until: datetime, limit: int) -> list[DueDelivery]:
        """Claim up to `limit` due deliveries until `lease_until`, with what sending each needs."""
        ...

    async def delivery_succeeded(self, event_id: str, endpoint_id: str, status: int, now: datetime) -> None:
        """The endpoint answered 2xx: delivered, and the endpoint is healthy again."""
        ...

    async def delivery_failed(
        self, event_id: str, endpoint_id: str, status: int | None, error: str, now: datetime, retry_at: datetime | None
    ) -> None:
        """An attempt failed: try again at `retry_at`, or (None) give up and mark the endpoint failing."""
        ...

    async def recent_deliveries(self, app_id: str, endpoint_id: str, limit: int = 20) -> list[DeliveryRecord]:
        """An endpoint's deliveries, newest event first."""
        ...

    async def resend_delivery(self, app_id: str, endpoint_id: str, event_id: str, now: datetime) -> bool:
        """Send one delivery again, now (delivered or failed: the receiver dedupes by `webhook-id`)."""
        ...

    async def note_funding_invalid(
        self, connection_id: str, window_key: str, reason: FundingProblem, now: datetime
    ) -> bool:
        """Announce `funding.invalid` for a connection, unless it was announced this window already."""
        ...


class MemberAlerts(Protocol):
    """Members' threshold emails: the choice per connection, and the emails settles wrote to send."""

    async def claim_member_alerts(
        self, now: datetime, lease_until: datetime, limit: int, max_attempts: int
    ) -> list[DueAlert]:
        """Claim up to `limit` threshold emails not yet sent (nor tried `max_attempts` times) until `lease_until`."""
        ...

    async def member_alert_sent(self, connection_id: str, window_key: str, percent: int, now: datetime) -> None:
        """A threshold email went out."""
        ...

    async def set_alert_percent(self, member_id: str, connection_id: str, percent: int | None) -> bool:
        """Choose the member's threshold email for one of their connections (None: no email)."""
        ...
