"""Requests timed on `ledger_scale.py`'s client, one after another, and their latencies summarised."""

from __future__ import annotations

import time
from typing import Any

import httpx


def latency_summary(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]

    return {
        "samples": len(ordered),
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": ordered[-1],
        "mean_ms": sum(ordered) / len(ordered),
    }


def time_requests(client: httpx.Client, requests: list[tuple[str, dict[str, str]]], warmup: int) -> dict[str, Any]:
    """Each request in turn on one keep-alive connection; the first `warmup` are not counted."""
    times: list[float] = []
    sizes: list[int] = []
    statuses: dict[str, int] = {}
    for index, (path, params) in enumerate(requests):
        started = time.perf_counter()
        response = client.get(path, params=params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} {params} answered {response.status_code}: {response.text[:300]}")
        if index >= warmup:
            times.append(elapsed)
            sizes.append(len(response.content))
            statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
    return {**latency_summary(times), "response_bytes": round(sum(sizes) / len(sizes)), "statuses": statuses}
