"""The markdown table of `ledger_archive_scale.py`'s results: one line per engine."""

from __future__ import annotations

from typing import Any


def _mb(count: int) -> str:
    return f"{count / 1e6:,.1f}"


def _db_bytes(engine: str, size: dict[str, Any]) -> int:
    return size["pages_bytes"] if engine == "sqlite" else size["ledger_total_relation_bytes"]


def markdown(results: dict[str, Any]) -> str:
    """The table: one line per engine."""
    lines = [
        "| engine | ledger rows before → after | archived → roll-up rows | archive s (CPU s) | rows/s | file MB "
        "(B/row) | DB MB as seeded (vacuumed) → archived → vacuumed | books equal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for engine, found in results["engines"].items():
        if "books" not in found:
            continue
        archive = found["archive"]
        seeded, compacted, archived, vacuumed = (
            _mb(_db_bytes(engine, found[key]))
            for key in ("size_before", "size_before_vacuumed", "size_after", "size_after_vacuum")
        )
        cpu = f"{archive['process_cpu_seconds']:.1f}"
        if archive["postgres_cpu_seconds"] is not None:
            cpu += f" + {archive['postgres_cpu_seconds']:.1f} server"
        lines.append(
            f"| {engine} | {found['size_before']['ledger_rows']:,} → {found['size_after']['ledger_rows']:,} "
            f"| {archive['rows']:,} → {archive['roll_ups']:,} | {archive['wall_seconds']:.1f} ({cpu}) "
            f"| {archive['rows_per_second']:,} | {_mb(archive['file_bytes'])} ({archive['file_bytes_per_row']:.0f}) "
            f"| {seeded} ({compacted}) → {archived} → {vacuumed} "
            f"| {'yes' if found['books']['books_equal'] else '**no**'} |"
        )
    lines.append("")
    lines.append(
        "DB MB: SQLite page_count × page_size; PostgreSQL pg_total_relation_size('ledger'). \"vacuumed\": after "
        "VACUUM (SQLite) or VACUUM FULL ledger (PostgreSQL); the seeded database's is measured on a copy."
    )
    return "\n".join(lines)
