"""One of a user's requests held in flight, so that the user's next request finds their budget busy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare


@contextmanager
def holding(server: ServerProcess, user_id: str, model: str, max_tokens: int) -> Iterator[None]:
    """One of `user_id`'s requests in flight, its hold held, for the block (read to its end, or left).

    The request streams `model` in a thread of its own; the block starts once its first chunk has arrived
    (Wattfare reserves before it asks the model provider), and leaving the block stops reading it, which
    settles it, unless it already ended.
    """
    started, leave = threading.Event(), threading.Event()

    def run() -> None:
        with Wattfare(server.secret, server.base_url, max_retries=0) as wf:
            stream = wf.user(user_id).stream(
                model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=max_tokens
            )
            with stream:
                for _ in stream:
                    started.set()
                    if leave.is_set():
                        break

    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(run)
        try:
            assert started.wait(15) or held.result(), "the held request never started"
            yield
        finally:
            leave.set()
            held.result(timeout=30)
