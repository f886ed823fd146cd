"""`pg_scale.py`'s own PostgreSQL database (`bench_pg` on 127.0.0.1:5432): psql, its URL, made and dropped."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

from processes import stop_all
from servers import log

PG_HOST, PG_PORT = "127.0.0.1", 5432
DATABASE = "bench_pg"


def psql(sql: str, database: str = "postgres") -> str:
    command = ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", "postgres", "-d", database, "-AtX"]
    done = subprocess.run(
        [*command, "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode:
        raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def database_url(port: int = PG_PORT, database: str = DATABASE) -> str:
    return f"postgresql://postgres@{PG_HOST}:{port}/{database}"


@contextlib.contextmanager
def own_database(name: str = DATABASE) -> Iterator[None]:
    """Create `name` (`bench_pg`; dropping one a failed run left behind) and drop it at the end."""
    psql(f"DROP DATABASE IF EXISTS {name}")
    psql(f"CREATE DATABASE {name}")
    try:
        yield
    finally:
        stop_all()  # its clients first, so the drop finds nobody connected
        try:
            psql(f"DROP DATABASE IF EXISTS {name}")
        except RuntimeError as exc:
            log(f"could not drop {name}: {exc}")


def postgres_settings() -> dict[str, str]:
    names = ("server_version", "max_connections", "synchronous_commit", "fsync", "shared_buffers", "wal_level")
    return {name: psql(f"SHOW {name}").strip() for name in names}
