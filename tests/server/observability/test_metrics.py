"""Metrics: each event counts once under bounded labels, and several processes' samples merge at a scrape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from wattfare.server.observability import metrics
from wattfare.server.observability.request_log import RequestRecord, begin, end


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_settlement_counts_its_kind_and_its_spend_by_mode() -> None:
    before = (
        sample("wattfare_settlements_total", kind="settled"),
        sample("wattfare_spent_nano_usd_total", mode="live"),
    )

    metrics.settled("live", "charge", 1234, 0, 0.5)

    after = (sample("wattfare_settlements_total", kind="settled"), sample("wattfare_spent_nano_usd_total", mode="live"))
    assert after == (before[0] + 1, before[1] + 1234)


def test_a_charge_the_cap_cut_counts_as_absorbed() -> None:
    settled = sample("wattfare_settlements_total", kind="settled")
    absorbed = sample("wattfare_settlements_total", kind="absorbed")
    absorbed_nanos = sample("wattfare_absorbed_nano_usd_total", mode="test")

    metrics.settled("test", "estimated", 900, 100, 1.0)

    assert sample("wattfare_settlements_total", kind="settled") == settled
    assert sample("wattfare_settlements_total", kind="absorbed") == absorbed + 1
    assert sample("wattfare_absorbed_nano_usd_total", mode="test") == absorbed_nanos + 100


def test_a_settlement_notes_its_cost_on_the_request_record() -> None:
    record = RequestRecord(0.0)
    token = begin(record)
    try:
        metrics.reserved("test", 5000)
        metrics.settled("test", "charge", 42, 0, 0.1)
    finally:
        end(token)

    assert (record.held_nano, record.cost_nano) == (5000, 42)


def test_live_holds_keep_the_in_flight_gauge() -> None:
    live = metrics.LiveHolds()
    baseline = sample("wattfare_holds_in_flight")

    live.add("req_a")
    live.add("req_b")
    live.add("req_a")
    assert sample("wattfare_holds_in_flight") == baseline + 2
    live.discard("req_a")
    live.discard("req_unknown")
    assert sample("wattfare_holds_in_flight") == baseline + 1
    live.discard("req_b")
    assert sample("wattfare_holds_in_flight") == baseline
    assert live == set()


def test_the_exposition_adds_the_scrape_time_values() -> None:
    age = GaugeMetricFamily("wattfare_price_list_age_seconds", "age", labels=["mode"])
    age.add_metric(["test"], 12.5)

    text = metrics.exposition([metrics.ScrapeTime([age])]).decode()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["wattfare_price_list_age_seconds"].samples[0].value == 12.5
    assert "wattfare_requests" in families


_WORKER = """
import sys
from wattfare.server.observability import metrics
metrics.request_done("POST /api/v1/chat/completions", "test", "ok", 0.01, metrics.RequestRecord(0.0))
metrics.LiveHolds().add("req_" + sys.argv[1])
if sys.argv[1] == "dead":
    metrics.worker_exited()
"""


def test_workers_samples_merge_at_a_scrape_and_an_exited_workers_holds_do_not_count(tmp_path: Path) -> None:
    env = {**os.environ, metrics.MULTIPROC_DIR_VARIABLE: str(tmp_path)}
    for name in ("one", "two", "dead"):
        subprocess.run([sys.executable, "-c", _WORKER, name], env=env, check=True)
    merged = subprocess.run(
        [
            sys.executable,
            "-c",
            "from wattfare.server.observability import metrics; print(metrics.exposition().decode())",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(merged)
        for s in family.samples
    }
    key = (("code", "ok"), ("endpoint", "POST /api/v1/chat/completions"), ("mode", "test"))
    assert samples[("wattfare_requests_total", key)] == 3
    # livesum: the exited worker's gauge file was removed, the others' still count (their pids are gone too,
    # but only `worker_exited` says so: uvicorn's workers call it when they stop).
    assert samples[("wattfare_holds_in_flight", ())] == 2
