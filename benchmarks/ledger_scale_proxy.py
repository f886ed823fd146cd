"""The proxy's non-streamed throughput in `ledger_scale.py`: wrk at c=32, the big and the empty database in turn.

With the CPU and the bytes written per request (and, on PostgreSQL, the database's growth and WAL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import standin
from ledger_inspect import PostgresDatabase, SqliteDatabase
from ledger_scale_served import Served
from load import Target, run_wrk, wrk_script
from processes import Server
from servers import log


def _write_bytes(server: Server) -> int:
    """Bytes the server's processes caused to be written to storage (`/proc/<pid>/io`, write_bytes)."""
    total = 0
    for pid in server.tree():
        try:
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                if line.startswith("write_bytes:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def proxy_rounds(targets: list[Served], tmp: Path, rounds: int, seconds: float, users: int) -> list[dict[str, Any]]:
    """wrk at c=32 on each server in turn, rounds alternating which goes first; one record per run."""
    runs: list[dict[str, Any]] = []
    scripts: dict[str, Path] = {}
    for served in targets:
        target = _target(served)
        scripts[served.label] = tmp / f"wrk-{served.label}.lua"
        scripts[served.label].write_text(wrk_script(target, stream=False, users=users))
    for rnd in range(-1, rounds):  # round -1: a warm-up (and the empty database's users connect)
        order = targets if rnd % 2 == 0 else targets[::-1]
        for served in order:
            postgres = served.database if isinstance(served.database, PostgresDatabase) else None
            cpu, written = served.server.cpu(), _write_bytes(served.server)
            wal, stored = (postgres.wal_position(), postgres.database_bytes()) if postgres else (0, 0)
            url = f"{served.base}/api/v1/chat/completions"
            result = run_wrk(scripts[served.label], url, connections=32, seconds=3 if rnd < 0 else seconds, threads=2)
            if result.failed:
                raise RuntimeError(f"{served.label}: wrk errors {result.errors}\n{served.server.log_tail()}")
            if rnd < 0:
                continue
            count = max(result.requests, 1)
            record = {
                "round": rnd,
                "target": served.label,
                "requests": result.requests,
                "rps": result.rps,
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "cpu_ms_per_request": 1000 * (served.server.cpu() - cpu) / count,
                "process_write_bytes_per_request": (_write_bytes(served.server) - written) / count,
                # PostgreSQL only: SQLite's file and WAL sizes move with checkpoints, not with each write.
                "database_growth_bytes_per_request": (postgres.database_bytes() - stored) / count if postgres else None,
                "wal_bytes_per_request": (postgres.wal_position() - wal) / count if postgres else None,
                "sqlite_wal_file_bytes": served.database.wal_file_bytes()
                if isinstance(served.database, SqliteDatabase)
                else None,
            }
            runs.append(record)
            log(
                f"  round {rnd} {served.label:<22} {result.rps:8.1f} req/s  p50 {result.p50_ms:6.2f}  "
                f"p99 {result.p99_ms:7.2f} ms  cpu {record['cpu_ms_per_request']:.3f} ms/req"
            )
    return runs


def _target(served: Served) -> Target:
    headers = {"Authorization": f"Bearer {served.secret}"}
    model = standin.MODEL
    return Target(served.label, served.port, "/api/v1/chat/completions", model, model, headers, "Wattfare-User")
