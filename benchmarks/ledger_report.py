"""`ledger_scale.py`'s results as figures: a summary per engine, the goals of issue 20, and a markdown table."""

from __future__ import annotations

import statistics
from typing import Any

# Goal: (endpoint result, figure judged, bound in ms). p99 where the bound is meant per request. The
# whole app's month comes in pages of app users since ddb4ab5: its goal is each page's (first, middle and late
# pages alike); reading every page is reported beside the goals, with no bound of its own (it grows with the app).
GOALS: dict[str, tuple[str, str, float]] = {
    "GET /status p99": ("status", "p99_ms", 5.0),
    "GET /usage one user-month p99": ("usage_user_month", "p99_ms", 20.0),
    "GET /usage app-month, a page of 1,000 users p99": ("usage_app_page", "p99_ms", 500.0),
    "/account p99 (client side, loopback)": ("account", "p99_ms", 50.0),
}
# The proxy "unchanged": within the run-to-run noise of this machine (10%).
THROUGHPUT_KEPT = 0.9


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _proxy(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        kind = "big" if run["target"].endswith("-big") else "empty"
        by.setdefault(kind, []).append(run)
    ratios = [
        big["rps"] / empty["rps"]
        for big in by.get("big", [])
        for empty in by.get("empty", [])
        if big["round"] == empty["round"] and empty["rps"]
    ]
    out: dict[str, Any] = {"throughput_ratio": _median(ratios)}
    for kind, kind_runs in by.items():
        wal = [r["wal_bytes_per_request"] for r in kind_runs if r["wal_bytes_per_request"] is not None]
        growth = [r["database_growth_bytes_per_request"] for r in kind_runs]
        out[kind] = {
            "rps": _median([r["rps"] for r in kind_runs]),
            "p99_ms": _median([r["p99_ms"] for r in kind_runs]),
            "cpu_ms_per_request": _median([r["cpu_ms_per_request"] for r in kind_runs]),
            "process_write_bytes_per_request": _median([r["process_write_bytes_per_request"] for r in kind_runs]),
            "database_growth_bytes_per_request": _median(growth) if None not in growth else None,
            "wal_bytes_per_request": _median(wal) if wal else None,
        }
    return out


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Per engine: the goals, met or not, and the figures the table shows."""
    summary: dict[str, Any] = {}
    for engine, found in results["engines"].items():
        endpoints = found["endpoints"]
        goals = {
            goal: {
                "measured_ms": endpoints[name][figure],
                "bound_ms": bound,
                "met": endpoints[name][figure] <= bound and set(endpoints[name]["statuses"]) == {"200"},
                "statuses": endpoints[name]["statuses"],
            }
            for goal, (name, figure, bound) in GOALS.items()
        }
        proxy = _proxy(found["proxy"])
        goals["proxy throughput big / empty"] = {
            "measured": proxy["throughput_ratio"],
            "bound": THROUGHPUT_KEPT,
            "met": proxy["throughput_ratio"] >= THROUGHPUT_KEPT,
        }
        summary[engine] = {"goals": goals, "proxy": proxy, "bytes_per_row": found["ledger_size"]["bytes_per_row"]}
    return summary


def _pair(found: dict[str, Any], name: str) -> str:
    return f"{found[name]['p50_ms']:,.2f} / {found[name]['p99_ms']:,.2f}"


def _bytes_written(proxy: dict[str, Any], kind: str) -> str:
    figures = proxy.get(kind, {})
    wal = figures.get("wal_bytes_per_request")
    if wal is not None:
        return f"{wal:,.0f} WAL, {figures['database_growth_bytes_per_request']:,.0f} stored"
    return f"{figures.get('process_write_bytes_per_request', float('nan')):,.0f} to disk"


def markdown(results: dict[str, Any]) -> str:
    """The table for the README and the report."""
    config = results["config"]
    engines = list(results["engines"])
    head = (
        f"Ledger at scale: {config['rows']:,} ledger rows over {config['users']:,} users and 12 months; "
        f"{config['samples']} sequential requests per endpoint after a warm-up, timed on the client over "
        f"loopback; the proxy at c={config['connections']}, {config['rounds']} rounds of {config['duration_s']:g} s, "
        "big and empty database in turn.\n\n"
    )
    seeded = [
        f"{engine} {found['seed_seconds']:,.0f} s"
        for engine, found in results["engines"].items()
        if found.get("seed_seconds") is not None
    ]
    if seeded:
        head += f"Seeding took {', '.join(seeded)}.\n\n"
    lines = [f"| figure | {' | '.join(engines)} |", f"|---|{'---|' * len(engines)}"]

    def row(label: str, cell: Any) -> None:
        lines.append(f"| {label} | {' | '.join(cell(e) for e in engines)} |")

    found = results["engines"]
    summary = results["summary"]
    row(
        "GET /status p50 / p99 ms (empty db, in turn)",
        lambda e: f"{_pair(found[e]['endpoints'], 'status')} ({_pair(found[e], 'status_on_empty')})",
    )
    row("GET /usage one user-month p50 / p99 ms", lambda e: _pair(found[e]["endpoints"], "usage_user_month"))
    row(
        "GET /usage heaviest user-month p50 / p99 ms",
        lambda e: _pair(found[e]["endpoints"], "usage_heaviest_user_month"),
    )
    row(
        "GET /usage app-month, a page of 1,000 users p50 / p99 ms (p50 first / middle / late page; KB)",
        lambda e: _app_page(found[e]["endpoints"]["usage_app_page"]),
    )
    row(
        "GET /usage app-month, every page by nextAfter: s a walk (pages, users, rows)",
        lambda e: _all_pages(found[e]["endpoints"]["usage_app_all_pages"]),
    )
    row("/account p50 / p99 ms", lambda e: _pair(found[e]["endpoints"], "account"))
    for case in (
        "usage_user_month",
        "usage_heaviest_user_month",
        "usage_app_page_first",
        "usage_app_page_middle",
        "usage_app_month",
        "account_daily_spend",
    ):
        label = "usage_app_month (one statement, the console's)" if case == "usage_app_month" else case
        row(f"query alone: {label} ms", lambda e, c=case: f"{found[e]['queries'][c]['query_ms']:,.2f}")
    row("ledger bytes per row (table + indexes)", lambda e: _row_bytes(summary[e]["bytes_per_row"]))
    row(
        "proxy req/s c=32 big / empty (ratio)",
        lambda e: (
            f"{summary[e]['proxy']['big']['rps']:,.0f} / {summary[e]['proxy']['empty']['rps']:,.0f} "
            f"({summary[e]['proxy']['throughput_ratio']:.2f})"
        ),
    )
    row(
        "proxy CPU ms/req big / empty",
        lambda e: (
            f"{summary[e]['proxy']['big']['cpu_ms_per_request']:.3f} / "
            f"{summary[e]['proxy']['empty']['cpu_ms_per_request']:.3f}"
        ),
    )
    row(
        "bytes written per request big / empty",
        lambda e: f"{_bytes_written(summary[e]['proxy'], 'big')} / {_bytes_written(summary[e]['proxy'], 'empty')}",
    )
    goals = ["", "| goal | " + " | ".join(engines) + " |", f"|---|{'---|' * len(engines)}"]
    for goal in next(iter(summary.values()))["goals"]:
        cells = []
        for engine in engines:
            judged = summary[engine]["goals"][goal]
            value = judged.get("measured_ms", judged.get("measured"))
            bound = judged.get("bound_ms", judged.get("bound"))
            relation = "<=" if "bound_ms" in judged else ">="
            refused = {code: n for code, n in judged.get("statuses", {}).items() if code != "200"}
            note = f", answered {refused}" if refused else ""
            cells.append(f"{value:,.2f} ({relation} {bound:g}{note}) {'yes' if judged['met'] else '**no**'}")
        goals.append(f"| {goal} | {' | '.join(cells)} |")
    walks = [found[e]["endpoints"]["usage_app_all_pages"] for e in engines]
    cells = [
        f"{w['seconds_median'] * 1000:,.0f} ms, {w['pages']} pages (reported, no goal"
        f"{'' if w['matches_single_statement']['same_rows'] else '; **rows differ from the single statement**'})"
        for w in walks
    ]
    goals.append(f"| GET /usage app-month, every page | {' | '.join(cells)} |")
    return head + "\n".join(lines + goals) + "\n"


def _app_page(timed: dict[str, Any]) -> str:
    by = timed["by_cursor"]
    spread = " / ".join(f"{by[label]['p50_ms']:,.1f}" for label in ("first", "middle", "late"))
    return f"{timed['p50_ms']:,.1f} / {timed['p99_ms']:,.1f} ({spread}; {timed['response_bytes'] / 1e3:,.0f} KB)"


def _all_pages(walked: dict[str, Any]) -> str:
    seconds = ", ".join(f"{s:,.2f}" for s in walked["seconds"])
    checked = walked["matches_single_statement"]["same_rows"]
    same = "the single statement's rows" if checked else "**not** the single statement's rows"
    return f"{seconds} ({walked['pages']} pages, {walked['users']:,} users, {walked['rows']:,} rows: {same})"


def _row_bytes(per_row: dict[str, float]) -> str:
    parts = ", ".join(f"{name} {size:.0f}" for name, size in per_row.items() if name not in ("table", "total"))
    return f"{per_row['total']:.0f} ({per_row['table']:.0f} table; {parts})"
