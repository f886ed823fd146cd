"""One dependency story: every distribution a pyproject.toml names has exactly one exact pin in constraints.txt.

pip installs the workspace with `-c constraints.txt` and the root's `[dependency-groups] dev` (the only list of
development tools), so a name declared without a pin would install whatever version the index offers that day.
Only the declared -> pinned direction is checked: constraints.txt also pins what the declared names pull in.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PYPROJECTS = [REPO / "pyproject.toml", *sorted(REPO.glob("packages/*/pyproject.toml"))]
PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!-]+)")


def _load(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def _declared() -> list[tuple[str, Requirement]]:
    """(where, requirement) for each dependency, extra and dependency-group entry of every pyproject.toml."""
    found: list[tuple[str, Requirement]] = []
    for path in PYPROJECTS:
        where = path.relative_to(REPO).as_posix()
        data = _load(path)
        project = data.get("project", {})
        found += [(where, Requirement(r)) for r in project.get("dependencies", [])]
        for extra, requirements in project.get("optional-dependencies", {}).items():
            found += [(f"{where} [{extra}]", Requirement(r)) for r in requirements]
        for group, entries in data.get("dependency-groups", {}).items():
            # `{include-group = "..."}` entries name another group, whose own entries are read in its turn.
            found += [(f"{where} group {group}", Requirement(e)) for e in entries if isinstance(e, str)]
    return found


def _workspace() -> set[str]:
    """Our own distributions: installed from the work tree, never pinned."""
    return {canonicalize_name(_load(path)["project"]["name"]) for path in PYPROJECTS}


def _pin_lines() -> list[str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _pins() -> dict[str, list[Version]]:
    pins: dict[str, list[Version]] = {}
    for line in _pin_lines():
        if match := PIN.fullmatch(line):  # other lines fail test_every_line_of_constraints_is_one_exact_pin
            pins.setdefault(canonicalize_name(match["name"]), []).append(Version(match["version"]))
    return pins


DECLARED = [(where, req) for where, req in _declared() if canonicalize_name(req.name) not in _workspace()]


def test_every_line_of_constraints_is_one_exact_pin() -> None:
    bad = [line for line in _pin_lines() if PIN.fullmatch(line) is None]

    assert bad == [], "constraints.txt holds only `name==version` lines (and comments)"


def test_no_distribution_is_pinned_twice() -> None:
    names = Counter(canonicalize_name(line.split("==", 1)[0]) for line in _pin_lines())

    assert sorted(name for name, count in names.items() if count > 1) == []


def test_the_declared_names_include_the_packages_and_the_dev_group() -> None:
    names = {canonicalize_name(req.name) for _, req in DECLARED}

    # Guards the reader: a renamed table must not leave the tests below checking nothing.
    assert {"httpx", "starlette", "langchain-core", "llama-index-core", "litellm", "pytest", "pytest-cov"} <= names


@pytest.mark.parametrize(("where", "requirement"), DECLARED, ids=lambda v: str(v))
def test_every_declared_distribution_has_one_pin_inside_its_declared_range(
    where: str, requirement: Requirement
) -> None:
    pinned = _pins().get(canonicalize_name(requirement.name), [])

    assert len(pinned) == 1, f"{requirement.name} ({where}) needs exactly one `==` pin in constraints.txt"
    assert requirement.specifier.contains(pinned[0], prereleases=True), (
        f"constraints.txt pins {requirement.name}=={pinned[0]}, outside {where}'s {requirement}"
    )


def test_the_dev_tools_have_one_list() -> None:
    makefile = (REPO / "Makefile").read_text()

    assert sorted(p.name for p in REPO.glob("requirements*.txt")) == []
    assert "--group dev" in makefile
    assert re.search(r"(^|\s)(-r|--requirement)\s", makefile) is None
