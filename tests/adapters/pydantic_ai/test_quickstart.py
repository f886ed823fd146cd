"""The Pydantic AI quickstarts of the README and of the package's guide, run as written against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.wattfare_server import ServerProcess
from wattfare import Wattfare

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.xdist_group("pydantic_ai")


def python_block(document: Path, after: str) -> str:
    """The first ```python block of `document` after the line holding `after`."""
    text = document.read_text()
    return text[text.index(after) :].split("```python\n", 1)[1].split("```", 1)[0]


def run(code: str, server: ServerProcess) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTFARE_", "OPENROUTER_", "OPENAI_"))}
    env |= {"WATTFARE_SECRET_KEY": server.secret, "WATTFARE_BASE_URL": server.base_url}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("document", "after"),
    [(REPO / "README.md", "**Pydantic AI**"), (REPO / "packages/wattfare-pydantic-ai/README.md", "## Quickstart")],
    ids=["readme", "package_guide"],
)
def test_the_quickstart_runs_and_charges_user_42(
    document: Path, after: str, wattfare_server: ServerProcess, wattfare: Wattfare
) -> None:
    before = sum(row.requests for row in wattfare.usage("user_42").data)

    ran = run(python_block(document, after), wattfare_server)

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("Sandbox read the tool result: Sunny in Paris")
    assert sum(row.requests for row in wattfare.usage("user_42").data) > before
