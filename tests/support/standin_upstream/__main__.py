"""`python -m tests.support.standin_upstream`: serve the stand-in until interrupted."""

from __future__ import annotations

from tests.support.standin_upstream._process import main

main()
