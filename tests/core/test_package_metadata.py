"""Each of the six packages: one version source, `__version__` equal to the installed metadata, and `py.typed`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]

# distribution -> (its directory, the modules it ships; the first holds `__version__`)
PACKAGES = {
    "wattfare-core": ("wattfare-core", ["wattfare"]),
    "wattfare-langchain": ("wattfare-langchain", ["wattfare_langchain"]),
    "wattfare-llamaindex": ("wattfare-llamaindex", ["wattfare_llamaindex", "llama_index.llms.wattfare"]),
    "wattfare-litellm": ("wattfare-litellm", ["wattfare_litellm"]),
    "wattfare-pydantic-ai": ("wattfare-pydantic-ai", ["wattfare_pydantic_ai"]),
    "wattfare-agents": ("wattfare-agents", ["wattfare_agents"]),
}

# Each imported in a fresh interpreter, all six at once: the adapters pull in their frameworks (LiteLLM alone
# takes seconds), and LiteLLM must not go to the network for its price map.
PROBE = """
import importlib, importlib.metadata, json, sys
dist, module = sys.argv[1:]
mod = importlib.import_module(module)
print(json.dumps({
    "metadata": importlib.metadata.version(dist),
    "version": mod.__version__,
    "exported": "__version__" in mod.__all__,
    "all_sorted": list(mod.__all__) == sorted(mod.__all__),
}))
"""


@pytest.fixture(scope="module")
def imported() -> dict[str, dict[str, object]]:
    env = os.environ | {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    probes = {
        dist: subprocess.Popen(
            [sys.executable, "-c", PROBE, dist, modules[0]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for dist, (_, modules) in PACKAGES.items()
    }
    report: dict[str, dict[str, object]] = {}
    for dist, probe in probes.items():
        out, err = probe.communicate(timeout=120)
        assert probe.returncode == 0, err
        report[dist] = json.loads(out.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("dist", PACKAGES)
def test_the_package_version_is_the_installed_distribution_version(
    dist: str, imported: dict[str, dict[str, object]]
) -> None:
    report = imported[dist]

    assert report["version"] == report["metadata"]
    assert report["exported"], "`__version__` belongs in `__all__`"
    assert report["all_sorted"]


@pytest.mark.parametrize("dist", PACKAGES)
def test_the_version_is_written_once_in_the_package(dist: str) -> None:
    directory, modules = PACKAGES[dist]
    root = REPO / "packages" / directory
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())

    assert "version" not in pyproject["project"]
    assert pyproject["project"]["dynamic"] == ["version"]
    source = root / pyproject["tool"]["hatch"]["version"]["path"]
    assert source == root / "src" / modules[0] / "_version.py"
    assert '__version__ = "' in source.read_text()


@pytest.mark.parametrize("dist", PACKAGES)
def test_every_shipped_module_has_py_typed(dist: str) -> None:
    directory, modules = PACKAGES[dist]
    src = REPO / "packages" / directory / "src"

    for module in modules:
        assert (src / module.replace(".", "/") / "py.typed").is_file(), module


@pytest.mark.parametrize("dist", [d for d in PACKAGES if d != "wattfare-core"])
def test_each_adapter_accepts_the_core_version_of_the_work_tree(
    dist: str, imported: dict[str, dict[str, object]]
) -> None:
    pyproject = tomllib.loads((REPO / "packages" / PACKAGES[dist][0] / "pyproject.toml").read_text())
    core = next(Requirement(r) for r in pyproject["project"]["dependencies"] if r.startswith("wattfare-core"))

    assert core.specifier.contains(Version(str(imported["wattfare-core"]["version"])))
