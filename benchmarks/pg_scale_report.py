"""`pg_scale.py`'s results as markdown: round trips per request, throughput, and the what-if."""

from __future__ import annotations

from typing import Any

import pg_one_trip

MAIN_CALLS = ("budget read", "reserve", "settle")


def markdown(results: dict[str, Any]) -> str:
    lines: list[str] = []
    trips = results.get("trips")
    if trips:
        lines += [
            "Round trips per request (statements in brackets; BEGIN/COMMIT counted apart), background loops' idle "
            "traffic subtracted; each call's round trips include the pool's reset query after it.",
            "",
            "| request | budget read | reserve | settle | other | total round trips | statements | BEGIN/COMMIT |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for scenario, data in trips.items():
            if not isinstance(data, dict) or "calls" not in data:
                continue
            calls = data["calls"]

            def cell(name: str, calls: dict[str, Any] = calls) -> str:
                row = calls.get(name)
                if row is None:
                    return "0"
                return f"{row['round_trips_with_reset']:.2f} ({row['statements']:.2f})"

            other_rt = sum(r["round_trips_with_reset"] for k, r in calls.items() if k not in MAIN_CALLS)
            other_st = sum(r["statements"] for k, r in calls.items() if k not in MAIN_CALLS)
            total = data["total"]
            lines.append(
                f"| {scenario} | {cell('budget read')} | {cell('reserve')} | {cell('settle')} | "
                f"{other_rt:.2f} ({other_st:.2f}) | {total['round_trips_with_reset']:.2f} | "
                f"{total['statements']:.2f} | {total['transaction_control']:.2f} |"
            )
        lines += ["", "The other calls, round trips per request (statements):", ""]
        for scenario, data in trips.items():
            if isinstance(data, dict) and "calls" in data:
                others = [
                    f"{call} {row['round_trips_with_reset']:.2f} ({row['statements']:.2f})"
                    for call, row in data["calls"].items()
                    if call not in MAIN_CALLS and abs(row["round_trips_with_reset"]) >= 0.005
                ]
                lines.append(f"- {scenario}: {'; '.join(others) or 'none'}")
        lines.append("")
    throughput = results.get("throughput")
    if throughput:
        lines += [
            "Throughput on one PostgreSQL database, non-streamed, 1,000 users (median of rounds).",
            "",
            "| deployment | req/s | per instance | p50 / p99 ms | CPU ms/req: Wattfare | PG backends | PG aux | nginx "
            "| wrk | all | req/s per core used | cores used: ours / others |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, row in throughput["median"].items():
            cpu = row["cpu_ms_per_request"]
            per = " + ".join(f"{v:,.0f}" for v in row["rps_per_instance"])
            lines.append(
                f"| {name} | {row['rps']:,.0f} | {per} | {row['p50_ms']:.2f} / {row['p99_ms']:.2f} | "
                f"{cpu['wattfare']:.3f} | {cpu['postgres_backends']:.3f} | {cpu['postgres_aux']:.3f} | "
                f"{cpu['nginx']:.3f} | {cpu['wrk']:.3f} | {row['cpu_ms_per_request_total']:.3f} | "
                f"{row['rps_per_core']:,.0f} | {row['cores']['ours']:.2f} / {row['cores']['other_work']:.2f} |"
            )
        lines += ["", f"Books after the throughput runs: {throughput['books']}.", ""]
    whatif = results.get("whatif")
    if whatif:
        lines += pg_one_trip.markdown(whatif)
    return "\n".join(lines)
