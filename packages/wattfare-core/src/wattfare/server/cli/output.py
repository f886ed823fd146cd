"""How the `wattfare` command prints: keys whole on lines of their own, lists as plain aligned columns.

Nothing here wraps, folds or truncates. A key cut short by a table's width is useless once the screen that
showed it is gone (and it is shown once), so keys never go inside a table or a panel; plain lines also survive
pipes, `grep` and copying at any terminal width. Styles are dropped by click when stdout is not a terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import click

from wattfare.server.instants import utc_text


def heading(text: str) -> None:
    """A bold line."""
    click.secho(text, bold=True)


def show_key(label: str, plaintext: str) -> None:
    """A key, whole and unstyled, on the line below its label (so a triple-click copies exactly the key)."""
    click.echo(click.style(f"{label}:", bold=True))
    click.echo(plaintext)


def success(text: str) -> None:
    """A green line."""
    click.secho(text, fg="green")


def warning(text: str) -> None:
    """A yellow line."""
    click.secho(text, fg="yellow")


def moment(when: datetime | None) -> str:
    """An instant as the command prints it: ISO 8601 UTC to the second, `-` when absent."""
    return utc_text(when) if when else "-"


def show_rows(headers: Sequence[str], rows: Sequence[Sequence[str]], *, empty: str) -> None:
    """A list as columns padded to their widest cell, two spaces apart; `empty` when there are no rows."""
    if not rows:
        click.echo(empty)
        return
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    click.secho(line(headers), bold=True)
    for row in rows:
        click.echo(line(row))
