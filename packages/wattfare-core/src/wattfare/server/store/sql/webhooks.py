"""Webhooks in SQL: apps' endpoints, the deliveries the outbox made, claimed by one process at a time; alert emails.

A delivery (or an alert email) is claimed by setting `claimed_until`, a lease, in one conditional UPDATE: on
PostgreSQL the rows another instance is claiming are skipped (`SKIP LOCKED`) and the UPDATE's own WHERE is checked
again on the row as it stands, so two instances never both hold one; SQLite's write lock serialises the same
UPDATE. A process killed while sending leaves the lease to run out, and the next claim sends it again, under
the same `webhook-id`: at least once, never lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from wattfare.server.store.records import Mode
from wattfare.server.store.rows import CONNECTION_COLUMNS, connection_from_row
from wattfare.server.store.sql.engine import Executor, Row, SqlConcern
from wattfare.server.store.sql.outbox import record_event
from wattfare.server.store.sql.statement import per_dialect, portable
from wattfare.server.store.timestamps import from_text, to_text
from wattfare.server.store.webhook_records import (
    DeliveryRecord,
    DeliveryState,
    DueAlert,
    DueDelivery,
    EndpointState,
    FundingProblem,
    WebhookEndpoint,
    connection_event,
)

_ENDPOINT_COLUMNS = (
    "id, app_id, mode, url, description, secret, previous_secret, previous_until, state, failing_since, created_at"
)
_ADD = portable(
    f"INSERT INTO webhook_endpoints ({_ENDPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, 'enabled', NULL, ?)"
)
_OF_APP = portable(
    f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE app_id = ? AND mode = ? AND deleted_at IS NULL "
    "ORDER BY created_at, id"
)
_ONE = portable(f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ? AND app_id = ? AND deleted_at IS NULL")
_ROTATE = portable(
    "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = ?, secret = ? "
    "WHERE id = ? AND app_id = ? AND deleted_at IS NULL"
)
# Each field given replaces its value and each one not given (NULL) keeps it, in the one statement: two changes at
# once (a URL through the API, a disable in the console) both land, where read-then-write lost the first. Any
# change leaves `failing` for `enabled` (a fixed endpoint starts afresh); `disabled` stays unless enabled.
_UPDATE = portable(
    "UPDATE webhook_endpoints SET url = COALESCE(?, url), description = COALESCE(?, description), "
    "state = COALESCE(?, CASE WHEN state = 'disabled' THEN 'disabled' ELSE 'enabled' END), failing_since = NULL "
    "WHERE id = ? AND app_id = ? AND deleted_at IS NULL"
)
_DELETE = portable("UPDATE webhook_endpoints SET deleted_at = ? WHERE id = ? AND app_id = ? AND deleted_at IS NULL")
_DUE = (
    "SELECT d.event_id, d.endpoint_id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
    "WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND (d.claimed_until IS NULL OR d.claimed_until <= ?) "
    "AND e.deleted_at IS NULL AND e.state <> 'disabled' ORDER BY d.next_attempt_at LIMIT ?"
)
_CLAIM_TEMPLATE = (
    "UPDATE webhook_deliveries SET claimed_until = ? WHERE (event_id, endpoint_id) IN ({due}) "
    "AND state = 'pending' AND (claimed_until IS NULL OR claimed_until <= ?) RETURNING event_id, endpoint_id, attempts"
)
_CLAIM = per_dialect(
    sqlite=_CLAIM_TEMPLATE.format(due=_DUE),
    postgres=_CLAIM_TEMPLATE.format(due=f"{_DUE} FOR UPDATE OF d SKIP LOCKED"),
)
_CLAIMED = portable(
    "SELECT v.body, e.url, e.secret, e.previous_secret, e.previous_until, e.mode FROM webhook_events v "
    "JOIN webhook_endpoints e ON e.id = ? WHERE v.id = ?"
)
_DELIVERED = portable(
    "UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1, claimed_until = NULL, "
    "last_attempt_at = ?, last_status = ?, last_error = NULL, delivered_at = ? "
    "WHERE event_id = ? AND endpoint_id = ? AND state = 'pending'"
)
_HEALTHY = portable(
    "UPDATE webhook_endpoints SET state = 'enabled', failing_since = NULL WHERE id = ? AND state = 'failing'"
)
_RETRY = portable(
    "UPDATE webhook_deliveries SET attempts = attempts + 1, claimed_until = NULL, next_attempt_at = ?, "
    "last_attempt_at = ?, last_status = ?, last_error = ? WHERE event_id = ? AND endpoint_id = ? AND state = 'pending'"
)
_GIVE_UP = portable(
    "UPDATE webhook_deliveries SET state = 'failed', attempts = attempts + 1, claimed_until = NULL, "
    "last_attempt_at = ?, last_status = ?, last_error = ? WHERE event_id = ? AND endpoint_id = ? AND state = 'pending'"
)
_FAILING = portable(
    "UPDATE webhook_endpoints SET state = 'failing', failing_since = COALESCE(failing_since, ?) "
    "WHERE id = ? AND state = 'enabled'"
)
_RECENT = portable(
    "SELECT d.event_id, d.endpoint_id, v.type, v.created_at, d.state, d.attempts, d.next_attempt_at, "
    "d.last_attempt_at, d.last_status, d.last_error, d.delivered_at FROM webhook_deliveries d "
    "JOIN webhook_events v ON v.id = d.event_id JOIN webhook_endpoints e ON e.id = d.endpoint_id "
    "WHERE d.endpoint_id = ? AND e.app_id = ? ORDER BY v.created_at DESC, d.event_id LIMIT ?"
)
_RESEND = portable(
    "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?, claimed_until = NULL "
    "WHERE event_id = ? AND endpoint_id = ? "
    "AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE app_id = ? AND deleted_at IS NULL)"
)
_ALERTS_DUE = (
    "SELECT connection_id, window_key, percent FROM member_alerts WHERE sent_at IS NULL AND attempts < ? "
    "AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY created_at LIMIT ?"
)
_CLAIM_ALERTS_TEMPLATE = (
    "UPDATE member_alerts SET claimed_until = ?, attempts = attempts + 1 "
    "WHERE (connection_id, window_key, percent) IN ({due}) AND sent_at IS NULL "
    "AND (claimed_until IS NULL OR claimed_until <= ?) RETURNING connection_id, window_key, percent, spent, cap"
)
_CLAIM_ALERTS = per_dialect(
    sqlite=_CLAIM_ALERTS_TEMPLATE.format(due=_ALERTS_DUE),
    postgres=_CLAIM_ALERTS_TEMPLATE.format(due=f"{_ALERTS_DUE} FOR UPDATE SKIP LOCKED"),
)
_ALERT_ADDRESS = portable(
    "SELECT m.email, a.name, c.app_user_id FROM connections c JOIN members m ON m.id = c.member_id "
    "JOIN apps a ON a.id = c.app_id WHERE c.id = ?"
)
_ALERT_SENT = portable(
    "UPDATE member_alerts SET sent_at = ?, claimed_until = NULL WHERE connection_id = ? AND window_key = ? "
    "AND percent = ?"
)
_SET_ALERT_PERCENT = portable(
    "UPDATE connections SET alert_percent = ? WHERE id = ? AND member_id = ? AND app_user_id NOT LIKE 'grant:%'"
)
_FUNDING_NOTICE = portable(
    "INSERT INTO funding_notices (connection_id, window_key, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
)
_CONNECTION = portable(f"SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = ?")


def _endpoint(row: Row) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row[0],
        app_id=row[1],
        mode=cast("Mode", row[2]),
        url=row[3],
        description=row[4],
        sealed_secret=row[5],
        sealed_previous_secret=row[6],
        previous_until=None if row[7] is None else from_text(row[7]),
        state=cast("EndpointState", row[8]),
        failing_since=None if row[9] is None else from_text(row[9]),
        created_at=from_text(row[10]),
    )


def _when(text: str | None) -> datetime | None:
    return None if text is None else from_text(text)


class SqlWebhooks(SqlConcern):
    """`webhook_protocols.Webhooks` and `webhook_protocols.MemberAlerts` over an engine."""

    async def add_webhook_endpoint(
        self, endpoint_id: str, app_id: str, mode: Mode, url: str, description: str, sealed_secret: str, now: datetime
    ) -> WebhookEndpoint:
        """Register an endpoint; it receives the events made from now on."""
        params = (endpoint_id, app_id, mode, url, description, sealed_secret, to_text(now))
        await self._engine.write(lambda db: db.run(_ADD, *params))
        found = await self.webhook_endpoint(app_id, endpoint_id)
        assert found is not None  # added just now
        return found

    async def webhook_endpoints(self, app_id: str, mode: Mode) -> list[WebhookEndpoint]:
        """An app's endpoints in one mode, oldest first."""
        return [_endpoint(r) for r in await self._engine.all(_OF_APP, app_id, mode)]

    async def webhook_endpoint(self, app_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        """One of an app's endpoints (None for another app's, or a deleted one)."""
        row = await self._engine.one(_ONE, endpoint_id, app_id)
        return _endpoint(row) if row else None

    async def rotate_webhook_secret(
        self, app_id: str, endpoint_id: str, sealed_secret: str, previous_until: datetime
    ) -> WebhookEndpoint | None:
        """Sign with a new secret from now on, and with the current one too until `previous_until`."""
        params = (to_text(previous_until), sealed_secret, endpoint_id, app_id)
        if await self._engine.write(lambda db: db.run(_ROTATE, *params)) != 1:
            return None
        return await self.webhook_endpoint(app_id, endpoint_id)

    async def update_webhook_endpoint(
        self,
        app_id: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> WebhookEndpoint | None:
        """Change what is given of an endpoint's URL, description and whether it receives events (see `_UPDATE`)."""
        state: EndpointState | None = None if enabled is None else "enabled" if enabled else "disabled"
        params = (url, description, state, endpoint_id, app_id)
        if await self._engine.write(lambda db: db.run(_UPDATE, *params)) != 1:
            return None
        return await self.webhook_endpoint(app_id, endpoint_id)

    async def delete_webhook_endpoint(self, app_id: str, endpoint_id: str, now: datetime) -> bool:
        """Stop delivering to an endpoint, for good (its past deliveries stay on the books)."""
        return await self._engine.write(lambda db: db.run(_DELETE, to_text(now), endpoint_id, app_id)) == 1

    async def claim_deliveries(self, now: datetime, lease_until: datetime, limit: int) -> list[DueDelivery]:
        """Claim up to `limit` due deliveries until `lease_until`, with what sending each needs."""
        return await self._engine.write(lambda db: _claim(db, to_text(now), to_text(lease_until), limit))

    async def delivery_succeeded(self, event_id: str, endpoint_id: str, status: int, now: datetime) -> None:
        """The endpoint answered 2xx: delivered, and the endpoint is healthy again."""

        async def work(db: Executor) -> None:
            if await db.run(_DELIVERED, to_text(now), status, to_text(now), event_id, endpoint_id) == 1:
                await db.run(_HEALTHY, endpoint_id)

        await self._engine.write(work)

    async def delivery_failed(
        self, event_id: str, endpoint_id: str, status: int | None, error: str, now: datetime, retry_at: datetime | None
    ) -> None:
        """An attempt failed: try again at `retry_at`, or (None) give up and mark the endpoint failing."""

        async def work(db: Executor) -> None:
            if retry_at is not None:
                await db.run(_RETRY, to_text(retry_at), to_text(now), status, error, event_id, endpoint_id)
            elif await db.run(_GIVE_UP, to_text(now), status, error, event_id, endpoint_id) == 1:
                await db.run(_FAILING, to_text(now), endpoint_id)

        await self._engine.write(work)

    async def recent_deliveries(self, app_id: str, endpoint_id: str, limit: int = 20) -> list[DeliveryRecord]:
        """An endpoint's deliveries, newest event first."""
        rows = await self._engine.all(_RECENT, endpoint_id, app_id, limit)
        return [
            DeliveryRecord(
                event_id=r[0],
                endpoint_id=r[1],
                type=r[2],
                created_at=from_text(r[3]),
                state=cast("DeliveryState", r[4]),
                attempts=int(r[5]),
                next_attempt_at=from_text(r[6]),
                last_attempt_at=_when(r[7]),
                last_status=None if r[8] is None else int(r[8]),
                last_error=r[9],
                delivered_at=_when(r[10]),
            )
            for r in rows
        ]

    async def resend_delivery(self, app_id: str, endpoint_id: str, event_id: str, now: datetime) -> bool:
        """Send one delivery again, now (delivered or failed: the receiver dedupes by `webhook-id`)."""
        return await self._engine.write(lambda db: db.run(_RESEND, to_text(now), event_id, endpoint_id, app_id)) == 1

    async def claim_member_alerts(
        self, now: datetime, lease_until: datetime, limit: int, max_attempts: int
    ) -> list[DueAlert]:
        """Claim up to `limit` threshold emails not yet sent (nor tried `max_attempts` times) until `lease_until`."""
        return await self._engine.write(
            lambda db: _claim_alerts(db, to_text(now), to_text(lease_until), limit, max_attempts)
        )

    async def member_alert_sent(self, connection_id: str, window_key: str, percent: int, now: datetime) -> None:
        """A threshold email went out."""
        await self._engine.write(lambda db: db.run(_ALERT_SENT, to_text(now), connection_id, window_key, percent))

    async def set_alert_percent(self, member_id: str, connection_id: str, percent: int | None) -> bool:
        """Choose the member's threshold email for one of their connections (None: no email)."""
        return await self._engine.write(lambda db: db.run(_SET_ALERT_PERCENT, percent, connection_id, member_id)) == 1

    async def note_funding_invalid(
        self, connection_id: str, window_key: str, reason: FundingProblem, now: datetime
    ) -> bool:
        """Announce `funding.invalid` for a connection, unless it was announced this window already."""
        return await self._engine.write(lambda db: _note_funding_invalid(db, connection_id, window_key, reason, now))


async def _note_funding_invalid(
    db: Executor, connection_id: str, window_key: str, reason: FundingProblem, now: datetime
) -> bool:
    if await db.run(_FUNDING_NOTICE, connection_id, window_key, to_text(now)) != 1:
        return False
    row = await db.one(_CONNECTION, connection_id)
    if row is None:
        return False
    await record_event(db, connection_event("funding.invalid", connection_from_row(row), now, reason=reason))
    return True


async def _claim(db: Executor, now: str, lease_until: str, limit: int) -> list[DueDelivery]:
    claimed = await db.all(_CLAIM, lease_until, now, now, limit, now)
    due: list[DueDelivery] = []
    for event_id, endpoint_id, attempts in claimed:
        row = await db.one(_CLAIMED, endpoint_id, event_id)
        assert row is not None  # a delivery's event and endpoint are never deleted
        due.append(
            DueDelivery(event_id, endpoint_id, int(attempts), row[0], row[1], row[2], row[3], _when(row[4]), row[5])
        )
    return due


async def _claim_alerts(db: Executor, now: str, lease_until: str, limit: int, max_attempts: int) -> list[DueAlert]:
    claimed = await db.all(_CLAIM_ALERTS, lease_until, max_attempts, now, limit, now)
    due: list[DueAlert] = []
    for connection_id, window_key, percent, spent, cap in claimed:
        row = await db.one(_ALERT_ADDRESS, connection_id)
        if row is not None:
            due.append(DueAlert(connection_id, window_key, int(percent), row[0], row[1], row[2], int(spent), int(cap)))
    return due
