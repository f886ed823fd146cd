"""WAL checkpoints off the request path: a thread with its own connection folds the WAL back.

By default SQLite checkpoints inside whichever COMMIT pushes the WAL past 1,000 pages: that request then
copies ~4 MB into the database file and waits for `fdatasync`, several milliseconds on the event loop
(a p99 spike for whoever is unlucky). Here the serving connection never checkpoints; this thread runs a
PASSIVE checkpoint every interval instead. PASSIVE never blocks writers or readers, and the sqlite3
module releases the GIL while it runs, so it overlaps the event loop on another core. Once the WAL is
past its size limit, the thread also restarts it between two commits (`_restart`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("wattfare.store")

# Once checkpointed, the WAL restarts from its beginning; this caps the file a burst may leave behind
# (applied by whichever connection restarts it, so the serving one sets it too).
JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
# How long the restart of a WAL past its limit waits for a moment between two commits (see `_restart`).
_RESTART_WAIT_MS = 50


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _restart(db: sqlite3.Connection) -> None:
    """Fold the whole WAL back so the next commit writes it from its start, if no one is reading it now.

    Under sustained writes a PASSIVE checkpoint never ends with the whole WAL copied (commits append to it
    meanwhile), and only a fully copied WAL starts over: it grew past its limit for as long as the load lasted
    (benchmarks/ledger_scale.py). RESTART takes the write lock between two commits (waiting for it at most
    `_RESTART_WAIT_MS`, else the next round tries again), copies what PASSIVE left (about a second's commits)
    and waits for readers to leave the WAL; a COMMIT arriving meanwhile waits those milliseconds, once per
    limit's worth of WAL. The next commit then writes from the WAL's start, and trims the file to its limit.

    RESTART, not TRUNCATE, which also cuts the file to nothing: at one request at a time (1,000 a second, about
    60 KB of WAL each, so a limit's worth every second or two), a TRUNCATE held the write lock 42-65 ms and the
    COMMIT behind it waited 54-80 ms, where a RESTART holds it 3-11 ms; the c=1 p99 went from 25-48 ms to
    6-12 ms (benchmarks/PROFILE.md, §0b).
    """
    db.execute(f"PRAGMA busy_timeout = {_RESTART_WAIT_MS}")
    try:
        db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
    finally:
        db.execute("PRAGMA busy_timeout = 0")


class Checkpointer:
    """Checkpoint one database file every `every_seconds` until stopped."""

    def __init__(self, path: str, every_seconds: float) -> None:
        """Start checkpointing the WAL of the database at `path`."""
        self._path = path
        self._every = every_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wattfare-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # No busy wait (timeout=0) but in `_restart`: PASSIVE never waits for anyone anyway.
        db = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
        wal = Path(f"{self._path}-wal")
        try:
            db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
            while not self._stopping.wait(self._every):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    # Once restarted, the file keeps its size (the limit) and is written over from its start:
                    # it grows past the limit again only when a limit's worth of commits came since.
                    if _size(wal) > JOURNAL_SIZE_LIMIT_BYTES:
                        _restart(db)
                except sqlite3.Error as exc:  # the next round retries; a full WAL only grows meanwhile
                    log.warning("WAL checkpoint failed: %s", exc)
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()

    def stop(self) -> None:
        """Run a last checkpoint and stop."""
        self._stopping.set()
        self._thread.join()
