"""Webhook endpoints over HTTP (`/api/v1/webhooks/endpoints`): being built."""

from __future__ import annotations

from starlette.routing import Route

routes: list[Route] = []
