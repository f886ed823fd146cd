"""WAL checkpoints off the request path: a thread with its own connection folds the WAL back.

By default SQLite checkpoints inside whichever COMMIT pushes the WAL past 1,000 pages: that request then
copies ~4 MB into the database file and waits for `fdatasync`, several milliseconds on the event loop
(a p99 spike for whoever is unlucky). Here the serving connection never checkpoints; this thread runs a
PASSIVE checkpoint every interval instead. PASSIVE never blocks writers or readers, and the sqlite3
module releases the GIL while it runs, so it overlaps the event loop on another core.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("wattfare.store")

# Once checkpointed, the WAL restarts from its beginning; this caps the file a burst may leave behind
# (applied by whichever connection restarts it, so the serving one sets it too).
JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


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
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
            while not self._stopping.wait(self._every):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the next round retries; a full WAL only grows meanwhile
                    log.warning("WAL checkpoint failed: %s", exc)
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()

    def stop(self) -> None:
        """Run a last checkpoint and stop."""
        self._stopping.set()
        self._thread.join()
