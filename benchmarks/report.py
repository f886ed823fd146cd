"""Turning a run's raw measurements into the summary, the markdown table and the chart.

Each figure is the median over rounds of that round's value; "added" figures subtract the direct
figure (the same statistic of the stand-in served without a proxy).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

ORDER = ["direct", "bare", "wattfare", "litellm"]
LABELS = {
    "direct": "direct (nginx)",
    "bare": "bare pass-through",
    "wattfare": "Wattfare",
    "litellm": "LiteLLM proxy",
    "wattfare-2w": "Wattfare, 2 workers",
}
README_START = "<!-- bench:latest -->"
README_END = "<!-- /bench:latest -->"


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    runs = results["runs"]
    conn = results["config"]["connections"]
    spread = results["config"]["users"]

    def pick(target: str, scenario: str, field: str, users: int | None = None) -> float | None:
        return _median(
            [
                r[field]
                for r in runs
                if r["target"] == target and r["scenario"] == scenario and (users is None or r["users"] == users)
            ]
        )

    def ttfb(target: str, field: str) -> float | None:
        return _median([t[field] for t in results["ttfb"] if t["target"] == target])

    present = [name for name in ORDER if any(r["target"] == name for r in runs)]
    targets: dict[str, dict[str, Any]] = {}
    for name in present:
        users = spread if name.startswith("wattfare") else 1
        row = {
            "c1_p50_ms": pick(name, "c1", "p50_ms"),
            "c1_p99_ms": pick(name, "c1", "p99_ms"),
            "c1_cpu_ms": pick(name, "c1", "cpu_ms_per_request"),
            "ttfb_p50_ms": ttfb(name, "ttfb_p50_ms"),
            "ttfb_p99_ms": ttfb(name, "ttfb_p99_ms"),
            "stream_total_p50_ms": ttfb(name, "total_p50_ms"),
            "rps": pick(name, f"c{conn}", "rps", users),
            "p50_ms": pick(name, f"c{conn}", "p50_ms", users),
            "p99_ms": pick(name, f"c{conn}", "p99_ms", users),
            "cpu_ms": pick(name, f"c{conn}", "cpu_ms_per_request", users),
            "stream_rps": pick(name, f"c{conn}-stream", "rps", users),
            "stream_p50_ms": pick(name, f"c{conn}-stream", "p50_ms", users),
            "stream_p99_ms": pick(name, f"c{conn}-stream", "p99_ms", users),
            "stream_cpu_ms": pick(name, f"c{conn}-stream", "cpu_ms_per_request", users),
            "peak_rss_mib": results["memory_mib"].get(name),
            "errors": sum(sum(r["errors"].values()) for r in runs if r["target"] == name),
        }
        targets[name] = row
    direct = targets.get("direct", {})
    for row in targets.values():
        for field in ("c1_p50_ms", "c1_p99_ms", "ttfb_p50_ms", "ttfb_p99_ms"):
            base = direct.get(field)
            row[f"added_{field}"] = None if base is None or row[field] is None else row[field] - base

    contention: dict[str, dict[str, float | None]] = {}
    for name in ("wattfare", "wattfare-2w"):
        one = pick(name, f"c{conn}", "rps", 1)
        many = pick(name, f"c{conn}", "rps", spread)
        if one is not None or many is not None:
            contention[name] = {
                "one_user_rps": one,
                "spread_rps": many,
                "one_user_p99_ms": pick(name, f"c{conn}", "p99_ms", 1),
                "spread_p99_ms": pick(name, f"c{conn}", "p99_ms", spread),
                "cpu_ms_one_user": pick(name, f"c{conn}", "cpu_ms_per_request", 1),
                "cpu_ms_spread": pick(name, f"c{conn}", "cpu_ms_per_request", spread),
                "errors": sum(sum(r["errors"].values()) for r in runs if r["target"] == name),
            }
    if "wattfare-2w" in contention:
        contention["wattfare-2w"]["peak_rss_mib"] = results["memory_mib"].get("wattfare-2w")

    def ratio(target: str, other: str) -> float | None:
        """Median over rounds of one round's throughput ratio: both measured in the same minutes, so a
        machine that is slower in one round (as shared ones are, without it showing in /proc) cancels out."""
        scenario = f"c{conn}"
        by_round: dict[int, dict[str, float]] = {}
        for r in runs:
            wanted = spread if r["target"].startswith("wattfare") else 1
            if r["scenario"] == scenario and r["users"] == wanted and r["target"] in (target, other):
                by_round.setdefault(r["round"], {})[r["target"]] = r["rps"]
        return _median([v[target] / v[other] for v in by_round.values() if v.get(other) and target in v])

    ratios = {"litellm": ratio("wattfare", "litellm"), "bare": ratio("wattfare", "bare")}
    return {"targets": targets, "contention": contention, "goals": _goals(targets, ratios)}


def _goals(t: dict[str, dict[str, Any]], ratios: dict[str, float | None]) -> list[dict[str, Any]]:
    w = t.get("wattfare")
    if not w:
        return []
    goals: list[dict[str, Any]] = []

    def add(goal: str, value: float | None, limit: float, *, at_least: bool, unit: str) -> None:
        ok = None if value is None else (value >= limit if at_least else value <= limit)
        goals.append({"goal": goal, "value": value, "limit": limit, "at_least": at_least, "unit": unit, "met": ok})

    add("throughput vs LiteLLM (c=32)", ratios["litellm"], 10, at_least=True, unit="x")
    add("throughput vs bare pass-through (c=32)", ratios["bare"], 0.6, at_least=True, unit="x")
    add("added latency p50 (c=1)", w["added_c1_p50_ms"], 1.5, at_least=False, unit="ms")
    add("added latency p99 (c=1)", w["added_c1_p99_ms"], 5, at_least=False, unit="ms")
    add("added streaming TTFB p50 (c=1)", w["added_ttfb_p50_ms"], 2, at_least=False, unit="ms")
    add("CPU per request (c=32)", w["cpu_ms"], 1, at_least=False, unit="ms")
    return goals


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    s = results["summary"]
    cfg = results["config"]
    conn = cfg["connections"]
    noise = results["noise"]
    foreign = _median([n["foreign_cores"] for n in noise])
    labels = dict(LABELS)
    labels["bare"] = f"bare pass-through ({cfg.get('bare_client', 'httpx')})"
    lines = [
        f"Run {results['generated']} on {results['machine']['cpus']} CPUs ({results['machine']['platform']}), "
        f"Python {results['machine']['python']}, {results['machine']['nginx']}, LiteLLM "
        f"{results['machine']['litellm'] or 'skipped'}; {cfg['rounds']} interleaved rounds of {cfg['duration_s']:g} s "
        f"wrk runs, {cfg['ttfb_requests']} TTFB samples per target per round; Wattfare log level "
        f"{cfg['wattfare_log_level']}. Median of rounds. Other work on the machine during the run: "
        f"{_f(foreign)} cores (median of rounds){': ' + cfg['note'] if cfg['note'] else ''}.",
        "",
        f"| target | added p50 / p99 ms (c=1) | added TTFB p50 / p99 ms (c=1, stream) | req/s (c={conn}) "
        f"| p50 / p99 ms (c={conn}) | stream req/s (c={conn}) | CPU ms/req (c={conn}: json / stream) | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in s["targets"].items():
        if name == "direct":
            added = f"({_f(r['c1_p50_ms'])} / {_f(r['c1_p99_ms'])} absolute)"
            ttfb = f"({_f(r['ttfb_p50_ms'])} / {_f(r['ttfb_p99_ms'])} absolute)"
        else:
            added = f"{_f(r['added_c1_p50_ms'])} / {_f(r['added_c1_p99_ms'])}"
            ttfb = f"{_f(r['added_ttfb_p50_ms'])} / {_f(r['added_ttfb_p99_ms'])}"
        errors = f" ({r['errors']} errors)" if r["errors"] else ""
        lines.append(
            f"| {labels.get(name, name)}{errors} | {added} | {ttfb} | {_f(r['rps'], 0)} "
            f"| {_f(r['p50_ms'])} / {_f(r['p99_ms'])} | {_f(r['stream_rps'], 0)} "
            f"| {_f(r['cpu_ms'], 3)} / {_f(r['stream_cpu_ms'], 3)} | {_f(r['peak_rss_mib'], 0)} |"
        )
    for name, why in results["skipped"].items():
        lines.append(f"| {labels.get(name, name)} | skipped: {why.splitlines()[0][:120]} | | | | | | |")
    if s["goals"]:
        lines += ["", "| goal (issue 8) | measured | target | met |", "|---|---|---|---|"]
        for g in s["goals"]:
            unit = g["unit"]
            measured = "–" if g["value"] is None else f"{g['value']:.2f} {unit}"
            bound = f"{'≥' if g['at_least'] else '≤'} {g['limit']:g} {unit}"
            met = "–" if g["met"] is None else ("yes" if g["met"] else "**no**")
            lines.append(f"| {g['goal']} | {measured} | {bound} | {met} |")
        lines += ["", "Throughput ratios are the median of each round's ratio (both measured in the same minutes)."]
    if s["contention"]:
        lines += [
            "",
            f"Metering under contention (c={conn}, non-streamed): every request on one user's cap row vs spread over "
            f"{cfg['users']} users.",
            "",
            "| server | one row req/s | spread req/s | one row p99 ms | spread p99 ms | CPU ms/req one / spread |",
            "|---|---|---|---|---|---|",
        ]
        for name, c in s["contention"].items():
            errors = f" ({c['errors']} errors)" if c["errors"] else ""
            lines.append(
                f"| {labels.get(name, name)}{errors} | {_f(c['one_user_rps'], 0)} | {_f(c['spread_rps'], 0)} "
                f"| {_f(c['one_user_p99_ms'])} | {_f(c['spread_p99_ms'])} "
                f"| {_f(c['cpu_ms_one_user'], 3)} / {_f(c['cpu_ms_spread'], 3)} |"
            )
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib)")
        return
    targets = results["summary"]["targets"]
    names: list[str] = list(targets)
    labels = [LABELS.get(n, n).replace(" ", "\n", 1) for n in names]
    colours = {"direct": "#8c8c8c", "bare": "#5b8def", "wattfare": "#e8871e", "litellm": "#c23b22"}
    colour = [colours.get(n, "#999999") for n in names]
    conn = results["config"]["connections"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))

    def bars(ax: Any, values: list[float | None], title: str, unit: str, *, log: bool = False) -> None:
        shown = [v or 0.0 for v in values]
        drawn = ax.bar(labels, shown, color=colour)
        ax.set_title(title)
        ax.set_ylabel(unit)
        if log and all(v > 0 for v in shown):
            ax.set_yscale("log")
        for rect, value in zip(drawn, values, strict=True):
            text = "–" if value is None else (f"{value:,.0f}" if value >= 100 else f"{value:.3g}")
            ax.annotate(
                text, (rect.get_x() + rect.get_width() / 2, rect.get_height()), ha="center", va="bottom", fontsize=8
            )

    bars(
        axes[0][0],
        [targets[n]["rps"] for n in names],
        f"throughput, c={conn} (higher is better)",
        "requests/s",
        log=True,
    )
    bars(axes[0][1], [targets[n]["cpu_ms"] for n in names], f"server CPU per request, c={conn}", "ms", log=True)
    ax = axes[1][0]
    proxies = [n for n in names if n != "direct"]
    x = range(len(proxies))
    p50 = [targets[n]["added_c1_p50_ms"] or 0 for n in proxies]
    p99 = [targets[n]["added_c1_p99_ms"] or 0 for n in proxies]
    ttfb = [targets[n]["added_ttfb_p50_ms"] or 0 for n in proxies]
    width = 0.27
    ax.bar([i - width for i in x], p50, width, label="added p50")
    ax.bar(list(x), p99, width, label="added p99")
    ax.bar([i + width for i in x], ttfb, width, label="added stream TTFB p50")
    ax.set_xticks(list(x), [LABELS.get(n, n).replace(" ", "\n", 1) for n in proxies])
    ax.set_title("added latency at c=1 (lower is better)")
    ax.set_ylabel("ms (log)")
    if all(v > 0 for v in p50 + p99 + ttfb):
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    bars(axes[1][1], [targets[n]["peak_rss_mib"] for n in names], "peak memory (sum of VmHWM)", "MiB")
    fig.suptitle(f"Wattfare benchmark {results['generated']} ({results['machine']['cpus']} CPUs, shared machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def update_readme(readme: Path, table: str) -> None:
    """Replace the table between the README's markers with the latest one."""
    if not readme.exists():
        return
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return
    readme.write_text(text[: start + len(README_START)] + "\n" + table + text[end:])
