"""PostgreSQL's CPU for `pg_scale.py` and `ab.py`: our database's backends and the server's shared processes."""

from __future__ import annotations

from pathlib import Path

from pg_scale_database import DATABASE, psql
from processes import cpu_seconds, start_time


def backend_pids(database: str = DATABASE) -> list[int]:
    """The server processes serving connections to our database (pg_stat_activity), not anyone else's."""
    out = psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'")
    return [int(line) for line in out.split()]


def auxiliary_pids() -> list[int]:
    """PostgreSQL's WAL writer, checkpointer and background writer: shared by every database on the server."""
    wanted = ("walwriter", "checkpointer", "background writer")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            # "postgres: walwriter", or on Debian "postgres: 15/main: walwriter"
            if command.startswith("postgres: ") and command.endswith(wanted):
                found.append(int(entry.name))
    return found


class PostgresCpu:
    """CPU seconds of our database's backends (and the shared auxiliary processes) between two readings.

    Backends are named by PID and start time, so a PID reused by another process is never charged; a backend
    that exits between the readings loses its CPU from the count (`lost` says how many did).
    """

    def __init__(self, database: str = DATABASE) -> None:
        self.database = database
        self.backends = {pid: start_time(pid) for pid in backend_pids(database)}
        self.before = {pid: cpu_seconds([pid]) for pid in self.backends}
        self.aux = auxiliary_pids()
        self.aux_before = cpu_seconds(self.aux)

    def read(self) -> dict[str, float]:
        now = {pid: start_time(pid) for pid in backend_pids(self.database)}
        backends = 0.0
        lost = 0
        for pid, started in (self.backends | now).items():
            if start_time(pid) != started:
                lost += 1
                continue
            backends += cpu_seconds([pid]) - (self.before.get(pid, 0.0) if pid in self.backends else 0.0)
        return {"backends": backends, "aux": cpu_seconds(self.aux) - self.aux_before, "lost": lost}
