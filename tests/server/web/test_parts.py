"""The small parts behind the pages: origins, the key vault, the spend chart, the CLI's credit grants."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.server.web.servers import clean_env, rows
from tests.support.wattfare_server import provision
from wattfare.metering import window_containing
from wattfare.server.access.origins import OriginError, normalize_origin, parse_origins
from wattfare.server.billing.key_vault import KeyVault, VaultError, new_vault_key
from wattfare.server.store.account_records import DailySpend
from wattfare.server.web.charts import daily_chart


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("https://App.Example.com", "https://app.example.com"),
        ("https://app.example.com:443/", "https://app.example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://localhost:80", "http://localhost"),
        ("http://[::1]:3000", "http://[::1]:3000"),
    ],
)
def test_origins_are_kept_exactly_as_browsers_send_them(given: str, origin: str) -> None:
    assert normalize_origin(given) == origin


@pytest.mark.parametrize(
    "given", ["*", "null", "app.example.com", "ftp://x.example", "https://x.example/app", "https://u:p@x.example"]
)
def test_anything_but_an_origin_is_refused(given: str) -> None:
    with pytest.raises(OriginError):
        normalize_origin(given)


def test_origins_are_deduplicated_and_bounded() -> None:
    assert parse_origins("https://a.example, https://A.example\nhttp://b.example") == [
        "https://a.example",
        "http://b.example",
    ]
    with pytest.raises(OriginError):
        parse_origins(" ".join(f"https://{n}.example" for n in range(21)))


def test_a_sealed_key_opens_only_for_its_member_under_the_same_vault_key() -> None:
    vault, other = KeyVault(), KeyVault()
    vault.load(new_vault_key())
    other.load(new_vault_key())
    sealed = vault.seal("sk-or-v1-secret", "mem_a")
    assert "sk-or-v1-secret" not in sealed
    assert vault.open(sealed, "mem_a") == "sk-or-v1-secret"
    assert vault.seal("sk-or-v1-secret", "mem_a") != sealed  # a fresh nonce each time
    for attempt in (lambda: vault.open(sealed, "mem_b"), lambda: other.open(sealed, "mem_a")):
        with pytest.raises(VaultError):
            attempt()
    with pytest.raises(ValueError, match="32 bytes"):
        KeyVault().load("too-short")


def test_the_chart_has_a_bar_per_day_scaled_to_the_busiest() -> None:
    window = window_containing(datetime(2026, 2, 10, tzinfo=UTC))
    chart = daily_chart([DailySpend("2026-02-03", 500), DailySpend("2026-02-10", 1000)], window)
    assert len(chart.bars) == 28
    heights = {bar.day: bar.height for bar in chart.bars if bar.height}
    assert heights[10] == pytest.approx(2 * heights[3])
    assert set(heights) == {3, 10}
    assert chart.total == 1500
    assert chart.scale_label == "$0.000001"


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(WATTFARE_DATABASE_URL=f"sqlite:///{db}", COLUMNS="200")
    command = [sys.executable, "-m", "wattfare.server.cli.main", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_credits_grant_appends_to_the_ledger_and_refuses_what_it_cannot_grant(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    provision(db)
    unknown = _cli(db, "credits", "grant", "nobody@example.com", "5")
    assert unknown.returncode == 1
    assert unknown.stderr == "Error: no member has the email nobody@example.com (see `wattfare members list`)\n"
    with sqlite3.connect(db) as connection:
        connection.execute(
            "INSERT INTO members (id, email, password_hash, created_at) "
            "VALUES ('mem_1', 'ann@example.com', 'x', '2026-11-01T00:00:00.000000+00:00')"
        )
    for bad in ("0", "-3", "ten"):
        assert _cli(db, "credits", "grant", "ann@example.com", bad).returncode == 2
    assert _cli(db, "credits", "grant", "Ann@Example.com", "2.5").returncode == 0
    granted = _cli(db, "credits", "grant", "ann@example.com", "0.5", "--note", "apology")
    assert granted.returncode == 0
    assert "$3.000000000 available" in granted.stdout
    assert rows(db, "SELECT kind, amount, note FROM credit_ledger ORDER BY seq") == [
        ("grant", 2_500_000_000, "operator grant"),
        ("grant", 500_000_000, "apology"),
    ]
    assert rows(db, "SELECT granted, spent, reserved FROM credit_accounts") == [(3_000_000_000, 0, 0)]


def test_apps_create_registers_allowed_origins(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    made = _cli(db, "apps", "create", "Shop", "--origin", "https://Shop.example", "--origin", "http://127.0.0.1:3000")
    assert made.returncode == 0, made.stdout + made.stderr
    assert rows(db, "SELECT origin FROM app_origins ORDER BY origin") == [
        ("http://127.0.0.1:3000",),
        ("https://shop.example",),
    ]
    assert _cli(db, "apps", "create", "Bad", "--origin", "https://x.example/path").returncode == 2
