"""The member's spend per day this month, drawn on the server as SVG geometry (no chart library, no script).

A day's bar is its whole spend; the part its embeddings cost is drawn as a segment at the bar's foot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from wattfare.metering import Window
from wattfare.server.store.account_records import DailySpend
from wattfare.server.text_formats import usd_text

WIDTH = 620
HEIGHT = 180
_TOP = 12
_BOTTOM = 24  # room for the day labels
_LEFT = 64  # room for the scale's labels ("$0", the busiest day's amount), left of the axis: never over a bar
_GAP = 2


@dataclass(frozen=True, slots=True)
class Bar:
    """One day's bar: its box in SVG units, its label and its tooltip."""

    x: float
    y: float
    width: float
    height: float
    day: int
    label: str | None
    title: str
    amount: int
    # The segment (at the bar's foot) for what the day's embeddings cost, and that amount.
    embeddings_y: float = 0.0
    embeddings_height: float = 0.0
    embeddings_amount: int = 0


@dataclass(frozen=True, slots=True)
class DailyChart:
    """A month of daily bars and the scale they are drawn against."""

    width: int
    height: int
    left: int
    baseline: float
    top: int
    bars: list[Bar]
    scale_label: str
    total: int
    embeddings_total: int = 0


def daily_chart(spend: list[DailySpend], window: Window) -> DailyChart:
    """Bars for every day of the window (empty days included), scaled to the busiest day."""
    by_day: dict[str, int] = {}
    embeddings_by_day: dict[str, int] = {}
    for item in spend:
        by_day[item.day] = by_day.get(item.day, 0) + item.amount
        if item.endpoint == "embeddings":
            embeddings_by_day[item.day] = embeddings_by_day.get(item.day, 0) + item.amount
    first: date = window.start.date()
    days = (window.end.date() - first).days
    peak = max([amount for amount in by_day.values() if amount > 0], default=0)
    baseline = HEIGHT - _BOTTOM
    usable = baseline - _TOP
    slot = (WIDTH - _LEFT) / days
    bars: list[Bar] = []
    for index in range(days):
        day = first + timedelta(days=index)
        amount = by_day.get(day.isoformat(), 0)
        embedded = embeddings_by_day.get(day.isoformat(), 0)
        # A day with any spend shows at least a sliver, so a cheap day is not mistaken for an idle one.
        height = 0.0 if amount <= 0 else max(1.5, usable * amount / peak)
        segment = 0.0 if embedded <= 0 else min(height, max(1.0, height * embedded / amount))
        title = f"{day.day} {day:%b}: {usd_text(amount)}"
        if embedded:
            title += f" (embeddings {usd_text(embedded)})"
        bars.append(
            Bar(
                x=round(_LEFT + index * slot + _GAP / 2, 2),
                y=round(baseline - height, 2),
                width=round(slot - _GAP, 2),
                height=round(height, 2),
                day=day.day,
                label=str(day.day) if day.day == 1 or day.day % 5 == 0 else None,
                title=title,
                amount=amount,
                embeddings_y=round(baseline - segment, 2),
                embeddings_height=round(segment, 2),
                embeddings_amount=embedded,
            )
        )
    return DailyChart(
        WIDTH,
        HEIGHT,
        _LEFT,
        baseline,
        _TOP,
        bars,
        usd_text(peak),
        sum(by_day.values()),
        embeddings_total=sum(embeddings_by_day.values()),
    )
