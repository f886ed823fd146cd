"""`wattfare webhooks`: register an app's webhook endpoints, rotate their secrets, read and resend their deliveries.

What the developer console and the HTTP API do, for the operator: the rules (URLs, descriptions, at most 16
endpoints per app and mode, the day a rotated secret keeps signing) are `wattfare.server.webhooks.endpoints`'.
A signing secret is printed whole on a line of its own, once, like a key (see `cli.output`). Endpoints are named
by their id (`we_…`, from `wattfare webhooks list`); one of another app is not found, as one that does not exist.
"""

from __future__ import annotations

import click

from wattfare.server.billing.key_vault import KeyVault, vault_key
from wattfare.server.cli.database import load_settings, with_store
from wattfare.server.cli.output import moment, show_key, show_rows, success, warning
from wattfare.server.instants import utc_now
from wattfare.server.settings import Settings
from wattfare.server.store import Store
from wattfare.server.store.records import Mode
from wattfare.server.store.webhook_records import DeliveryRecord, WebhookEndpoint
from wattfare.server.webhooks.endpoints import EndpointWithSecret, InvalidEndpointError, add_endpoint, rotate_secret

_MODES = click.Choice(["test", "live"])
_SHOWN_DELIVERIES = 20


@click.group()
def webhooks() -> None:
    """Manage an app's webhook endpoints: add, list, rotate, remove; read and resend deliveries."""


async def _app(store: Store, app_id: str) -> None:
    if await store.get_app(app_id) is None:
        raise click.ClickException(f"no app has the id {app_id!r} (see `wattfare apps list`)")


async def _endpoint(store: Store, app_id: str, endpoint_id: str) -> WebhookEndpoint:
    await _app(store, app_id)
    found = await store.webhook_endpoint(app_id, endpoint_id)
    if found is None:
        raise click.ClickException(
            f"app {app_id} has no webhook endpoint {endpoint_id!r} (see `wattfare webhooks list {app_id}`)"
        )
    return found


async def _vault(store: Store, settings: Settings) -> KeyVault:
    """The key vault the server seals secrets with: the operator's key, or the one kept in the database."""
    vault = KeyVault()
    vault.load(await vault_key(store, settings.encryption_key))
    return vault


def _show_secret(made: EndpointWithSecret, label: str) -> None:
    endpoint = made.endpoint
    show_key(f"Webhook endpoint, {endpoint.mode} mode", endpoint.id)
    show_key(label, made.secret)
    warning("Copy the secret now: it is not shown again. Verify each delivery's signature with it.")


@webhooks.command("add")
@click.argument("app_id")
@click.argument("url")
@click.option("--mode", type=_MODES, default="test", show_default=True, help="Whose events: test or live keys'.")
@click.option("--description", default="", help="A note for the app's developers (one line, at most 200 characters).")
def webhooks_add(app_id: str, url: str, mode: Mode, description: str) -> None:
    """Register URL for APP_ID's events in --mode; print the endpoint's id and its signing secret (shown once).

    Live-mode URLs must be public https:// ones; test-mode ones may be http:// and local.
    """
    settings = load_settings()

    async def run(store: Store) -> EndpointWithSecret:
        await _app(store, app_id)
        vault = await _vault(store, settings)
        try:
            return await add_endpoint(store, vault, app_id, mode, url, description, utc_now())
        except InvalidEndpointError as exc:
            hint = "URL" if exc.param == "url" else f"'--{exc.param}'"
            raise click.BadParameter(str(exc), param_hint=hint) from None

    made = with_store(settings, run)
    _show_secret(made, "Signing secret")


@webhooks.command("list")
@click.argument("app_id")
@click.option("--mode", type=_MODES, default=None, help="Only this mode's endpoints (default: both).")
def webhooks_list(app_id: str, mode: Mode | None) -> None:
    """List APP_ID's webhook endpoints: id, mode, state (enabled, failing or disabled) and URL."""

    async def run(store: Store) -> list[WebhookEndpoint]:
        await _app(store, app_id)
        modes: tuple[Mode, ...] = (mode,) if mode is not None else ("test", "live")
        return [endpoint for m in modes for endpoint in await store.webhook_endpoints(app_id, m)]

    found = with_store(load_settings(), run)
    rows = [(e.id, e.mode, e.state, e.url) for e in found]
    show_rows(("ID", "MODE", "STATE", "URL"), rows, empty="This app has no webhook endpoints.")


@webhooks.command("rotate")
@click.argument("app_id")
@click.argument("endpoint_id")
def webhooks_rotate(app_id: str, endpoint_id: str) -> None:
    """Give ENDPOINT_ID a new signing secret and print it (shown once); the old one signs too for 24 hours."""
    settings = load_settings()

    async def run(store: Store) -> EndpointWithSecret:
        await _endpoint(store, app_id, endpoint_id)
        rotated = await rotate_secret(store, await _vault(store, settings), app_id, endpoint_id, utc_now())
        if rotated is None:
            raise click.ClickException(f"webhook endpoint {endpoint_id} was removed meanwhile; nothing was changed")
        return rotated

    rotated = with_store(settings, run)
    _show_secret(rotated, "New signing secret")
    click.echo("The old secret keeps signing deliveries beside the new one for 24 hours: deploy the new one meanwhile.")


@webhooks.command("remove")
@click.argument("app_id")
@click.argument("endpoint_id")
def webhooks_remove(app_id: str, endpoint_id: str) -> None:
    """Stop delivering to ENDPOINT_ID, for good (its past deliveries stay on the books)."""

    async def run(store: Store) -> WebhookEndpoint:
        found = await _endpoint(store, app_id, endpoint_id)
        if not await store.delete_webhook_endpoint(app_id, endpoint_id, utc_now()):
            raise click.ClickException(f"webhook endpoint {endpoint_id} was removed meanwhile")
        return found

    removed = with_store(load_settings(), run)
    success(f"Removed webhook endpoint {removed.id} ({removed.mode} mode, {removed.url}) of app {app_id}.")


def _delivery_row(delivery: DeliveryRecord) -> tuple[str, ...]:
    last = "-" if delivery.last_status is None else str(delivery.last_status)
    return (
        delivery.event_id,
        delivery.type,
        moment(delivery.created_at),
        delivery.state,
        str(delivery.attempts),
        last,
        moment(delivery.next_attempt_at if delivery.state == "pending" else None),
        " ".join((delivery.last_error or "-").split()),
    )


@webhooks.command("deliveries")
@click.argument("app_id")
@click.argument("endpoint_id")
def webhooks_deliveries(app_id: str, endpoint_id: str) -> None:
    """List ENDPOINT_ID's recent deliveries, newest event first: event, type, state, attempts, last answer."""

    async def run(store: Store) -> list[DeliveryRecord]:
        await _endpoint(store, app_id, endpoint_id)
        return await store.recent_deliveries(app_id, endpoint_id, _SHOWN_DELIVERIES)

    found = with_store(load_settings(), run)
    show_rows(
        ("EVENT", "TYPE", "CREATED", "STATE", "ATTEMPTS", "STATUS", "NEXT", "ERROR"),
        [_delivery_row(d) for d in found],
        empty="No deliveries to this endpoint yet.",
    )


@webhooks.command("resend")
@click.argument("app_id")
@click.argument("endpoint_id")
@click.argument("event_id")
def webhooks_resend(app_id: str, endpoint_id: str, event_id: str) -> None:
    """Send EVENT_ID to ENDPOINT_ID again, now (a running server's delivery loop sends it; same `webhook-id`)."""

    async def run(store: Store) -> None:
        await _endpoint(store, app_id, endpoint_id)
        if not await store.resend_delivery(app_id, endpoint_id, event_id, utc_now()):
            raise click.ClickException(
                f"webhook endpoint {endpoint_id} has no delivery of {event_id!r} "
                f"(see `wattfare webhooks deliveries {app_id} {endpoint_id}`)"
            )

    with_store(load_settings(), run)
    success(f"Queued {event_id} for {endpoint_id} again: a running server sends it within seconds.")
