"""Quickstart: a streamed completion charged to one of your users, until their cap runs out.

Run `make dev` in another terminal, then:  set -a; . .wattfare/dev.env; set +a; python examples/quickstart.py
"""

from __future__ import annotations

import uuid

from wattfare import BudgetExceededError, Wattfare

wf = Wattfare()  # reads WATTFARE_SECRET_KEY and WATTFARE_BASE_URL
user_id = f"user_{uuid.uuid4().hex[:8]}"  # your app's id for its user
wf.create_session(user_id, monthly_usd="0.001")  # test keys connect the user at once, with this cap
user = wf.user(user_id)

with user.stream(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}]) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)
print(f"\ncost ${stream.cost_usd}, left ${user.status().remaining_usd}")

try:
    while True:  # keep spending until the cap says no
        user.chat(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Tell me more"}])
except BudgetExceededError as exc:
    print(f"cap reached; resets at {exc.resets_at:%Y-%m-%d %H:%M} UTC")
