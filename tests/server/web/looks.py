"""How a page looks to a person, checked: a screenshot at each size into a folder git ignores, and axe-core.

Screenshots go to `test-artifacts/screenshots/` (ignored by git), one per page and state and size, named
`<name>-<size>.png`, for a person to look through after a run. axe-core (its JS ships in
axe-playwright-python, no network) runs on each size; a serious or critical violation fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from axe_playwright_python.sync_playwright import Axe  # pyright: ignore[reportMissingTypeStubs]
from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[3]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
POPUP = {"width": 520, "height": 720}  # the size wattfare.js opens the consent window at
PHONE = {"width": 390, "height": 844}
SIZES = {"desktop": DESKTOP, "popup": POPUP, "phone": PHONE}
BLOCKING = ("serious", "critical")

_axe = Axe()
# What sticks out of the window (for the failure message).
_WIDE = """() => [...document.querySelectorAll("body *")]
  .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .slice(0, 8).map((e) => e.tagName + "." + e.className + (e.dataset.test ? "[" + e.dataset.test + "]" : ""))"""


def axe_problems(page: Page) -> list[str]:
    """The serious and critical axe-core violations of the page as it is now, one line each."""
    results: Any = _axe.run(page)  # pyright: ignore[reportUnknownMemberType]
    violations: list[dict[str, Any]] = results.response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[node['target'] for node in v['nodes']][:3]}"
        for v in violations
        if v["impact"] in BLOCKING
    ]


def look(page: Page, name: str, sizes: tuple[str, ...] = ("desktop", "popup", "phone")) -> None:
    """Screenshot `page` at each of `sizes` and assert axe finds nothing serious there; the size is left as the last."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    problems: list[str] = []
    for size in sizes:
        page.set_viewport_size(SIZES[size])  # pyright: ignore[reportArgumentType]
        page.screenshot(path=SCREENSHOTS / f"{slug}-{size}.png", full_page=True)
        problems += [f"{size}: {problem}" for problem in axe_problems(page)]
        # Nothing wider than the window: a person never scrolls sideways to read a page.
        overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} at {size} is {overflow}px wider than the window: {page.evaluate(_WIDE)}"
    assert not problems, f"{name}: " + "\n".join(problems)
