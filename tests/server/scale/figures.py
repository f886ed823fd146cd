"""`FIGURES.md`: what the scale-out tests measured on their last run, for the README to quote.

Each test owns one section and rewrites only that one, so a run of a single test keeps the others'
figures. Sections always appear in the order of `SECTIONS`.
"""

from __future__ import annotations

import os
import platform
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

# The committed file is rewritten only on request (`WATTFARE_WRITE_FIGURES=1`, `make figures`), so an
# ordinary test run leaves the work tree clean; otherwise the figures go to a scratch copy.
FIGURES = (
    Path(__file__).with_name("FIGURES.md")
    if os.environ.get("WATTFARE_WRITE_FIGURES") == "1"
    else Path(tempfile.gettempdir()) / "wattfare-scale-FIGURES.md"
)
SECTIONS = ("storm", "revocation", "kill-9", "database-down", "fuzzing")
_HEADER = (
    "# Scale-out figures (PostgreSQL)\n\n"
    "Written by `pytest tests/server/scale` (each test rewrites its own section). Every figure comes from a\n"
    "real run of several `wattfare serve` processes on loopback sharing one PostgreSQL database, with the\n"
    "stand-in upstream (`tests/support/standin_upstream`, with a deep accept queue) as the model provider.\n"
)
_SECTION = re.compile(r"<!-- (?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /(?P=name) -->", re.DOTALL)


def record(section: str, title: str, rows: list[tuple[str, object]]) -> None:
    """Rewrite `section` of FIGURES.md as a table of `rows`, stamped with the time and the machine."""
    assert section in SECTIONS, section
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    existing = FIGURES.read_text() if FIGURES.exists() else ""
    bodies = {match["name"]: match["body"] for match in _SECTION.finditer(existing)}
    bodies[section] = f"## {title}\n\n_Last run: {stamp}._\n\n| figure | value |\n|---|---|\n{table}\n"
    blocks = [f"<!-- {name} -->\n{bodies[name]}<!-- /{name} -->\n" for name in SECTIONS if name in bodies]
    FIGURES.write_text(_HEADER + "\n" + "\n".join(blocks))
