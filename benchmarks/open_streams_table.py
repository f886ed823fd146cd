"""`open_streams.py`'s results as markdown: a row per hold, and the goals for Wattfare's one worker."""

from __future__ import annotations

from typing import Any


def row_text(hold: dict[str, Any], holds: list[dict[str, Any]]) -> str:
    return " | ".join(str(v) for v in table_row(hold, holds))


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def held(hold: dict[str, Any]) -> bool:
    """Whether (nearly) every stream open at the plateau was in the relay, not queued before it.

    A server behind on its ramp has streams waiting in its accept queue or for the loop: they cost it little
    memory yet, so its RSS per open stream says nothing about what holding a stream costs.
    """
    return hold["rss"]["plateau_streaming"] >= 0.95 * hold["rss"]["plateau_open"]


def direct_for(hold: dict[str, Any], holds: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((h for h in holds if h["target"] == "direct" and h["n"] == hold["n"] and "failed" not in h), None)


def table_row(hold: dict[str, Any], holds: list[dict[str, Any]]) -> list[str]:
    if "failed" in hold:
        return [hold["label"], f"{hold['n']:,}", "-", f"failed: {hold['failed'][:200]}", *["-"] * (len(HEADER) - 4)]
    direct = direct_for(hold, holds)
    probe = hold["ttfb_probe"]["p99_ms"]
    added = None
    if hold["target"] != "direct" and direct is not None and probe is not None and direct["ttfb_probe"]["p99_ms"]:
        added = probe - direct["ttfb_probe"]["p99_ms"]
    cpu, rss, lag, client = hold["cpu"], hold["rss"], hold["lag"], hold["client"]
    errors = ", ".join(f"{v} {k}" for k, v in hold["errors"].items()) or "0"
    if hold.get("listen_overflows"):
        errors += f" ({hold['listen_overflows']:,} accept-queue overflows on the machine)"
    return [
        hold["label"],
        f"{hold['n']:,}",
        f"{hold['streams_ok']:,} / {hold['streams']:,}",
        errors,
        f"{_fmt(rss['per_open_stream_kib'])} ({rss['plateau_open']:,.0f} open"
        + ("" if held(hold) else f", {rss['plateau_streaming']:,.0f} in the relay")
        + ")",
        f"{_fmt(lag['added_p99_ms'])} ({_fmt(lag['idle_p99_ms'], 2)} idle)",
        f"{_fmt(probe)}"
        + ("" if added is None else f" (+{_fmt(added)})")
        + (" backlog" if hold["ttfb_probe"].get("window") == "backlog" else ""),
        f"{_fmt(client['ttfb_p50_ms'])} / {_fmt(client['ttfb_p99_ms'])}",
        f"{_fmt(client['duration_p50_s'], 2)} / {_fmt(client['duration_p99_s'], 2)}",
        _fmt(cpu["server_us_per_token"]),
        f"{cpu['server_s'] / cpu['wall_s']:.2f} / {cpu['standin_s'] / cpu['wall_s']:.2f} / "
        f"{cpu['client_s'] / cpu['wall_s']:.2f} / {cpu['other_s'] / cpu['wall_s']:.2f}",
    ]


HEADER = [
    "target",
    "N",
    "streams ok / all",
    "errors",
    "RSS KiB per open stream",
    "added loop lag p99 ms (probe idle p99)",
    "probe TTFB p99 ms (added vs direct)",
    "bulk TTFB p50 / p99 ms",
    "stream s p50 / p99",
    "server CPU µs / token",
    "cores: server / stand-in / client / other work",
]


def markdown(results: dict[str, Any]) -> str:
    holds = results["holds"]
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(table_row(h, holds)) + " |" for h in holds),
    ]
    goals = [h for h in holds if h["target"].startswith("wattfare") and "failed" not in h]
    if goals:
        lines += ["", "| goal (one worker) | server | N | measured | target | met |", "|---|---|---|---|---|---|"]
        for hold in goals:
            direct = direct_for(hold, holds)
            per_stream = hold["rss"]["per_open_stream_kib"]
            probe = hold["ttfb_probe"]["p99_ms"]
            added = None
            if direct is not None and probe is not None and direct["ttfb_probe"]["p99_ms"] is not None:
                added = probe - direct["ttfb_probe"]["p99_ms"]
            if not held(hold):
                per_stream = None  # see `held`: queued streams, not held ones
            checks = [
                ("RSS per open stream", per_stream, "≤ 20 KiB", per_stream is not None and per_stream <= 20, "KiB"),
                ("added TTFB p99", added, "≤ 5 ms", added is not None and added <= 5, "ms"),
                ("errors", hold["error_count"], "0", hold["error_count"] == 0, ""),
            ]
            for name, value, target, met, unit in checks:
                shown = "-" if value is None else f"{value:,.1f} {unit}".strip()
                if name.startswith("RSS") and not held(hold):
                    shown = "- (most open streams were queued, not in the relay)"
                met_text = "yes" if met else "**no**"
                lines.append(f"| {name} | {hold['label']} | {hold['n']:,} | {shown} | {target} | {met_text} |")
    lines += [
        "",
        '"backlog": the server never had every open stream streaming (it had not caught up with the ramp), so',
        "its probes waited behind the queued starts; otherwise they ran while all N streams were held.",
    ]
    if results.get("skipped"):
        lines += ["", *(f"- {name}: {why.splitlines()[0]}" for name, why in results["skipped"].items())]
    return "\n".join(lines) + "\n"
