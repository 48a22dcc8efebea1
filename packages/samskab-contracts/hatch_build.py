"""Where samskab-contracts takes its files and metadata from (hatchling hooks).

The modules are ``contracts/*.py`` of the repository (or of the unpacked sdist, which
carries them), plus a ``py.typed`` marker: the models are typed, and consuming services'
type checkers use them. Version, Python requirement and the pins of the distributions
``contracts/`` imports are the top-level project's (an unpacked sdist has them in its
PKG-INFO instead).
"""

from __future__ import annotations

import re
import tomllib
from email.parser import Parser
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.metadata.plugin.interface import MetadataHookInterface

# The distributions contracts/ imports (tests/unit/test_contracts_package.py keeps this list
# equal to what the code imports); tzdata because zoneinfo needs it where the OS has none.
DEPENDENCIES = ("pydantic", "email-validator", "tzdata")


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    if match is None:
        raise ValueError(f"unreadable requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def _sources(root: Path) -> Path:
    """``contracts/`` of the unpacked sdist, or else of the repository."""
    unpacked = root / "contracts"
    return unpacked if unpacked.is_dir() else root.parents[1] / "contracts"


class CustomMetadataHook(MetadataHookInterface):
    def update(self, metadata: dict[str, Any]) -> None:
        root = Path(self.root)
        pkg_info = root / "PKG-INFO"
        if pkg_info.is_file():
            known = Parser().parsestr(pkg_info.read_text(encoding="utf-8"))
            metadata["version"] = known["Version"]
            metadata["requires-python"] = known["Requires-Python"]
            metadata["dependencies"] = known.get_all("Requires-Dist") or []
            return
        with (root.parents[1] / "pyproject.toml").open("rb") as file:
            project: dict[str, Any] = tomllib.load(file)["project"]
        pins = {_requirement_name(req): req for req in project["dependencies"]}
        missing = [name for name in DEPENDENCIES if name not in pins]
        if missing:
            raise ValueError(f"the top-level pyproject.toml pins none of {missing}")
        metadata["version"] = project["version"]
        metadata["requires-python"] = project["requires-python"]
        metadata["dependencies"] = [pins[name] for name in DEPENDENCIES]


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        modules = sorted(_sources(Path(self.root)).glob("*.py"))
        if not modules:
            raise FileNotFoundError(f"no contracts/*.py for {self.root}")
        included = build_data["force_include"]
        for module in modules:
            included[str(module)] = f"contracts/{module.name}"
        if self.target_name == "wheel":
            marker = Path(self.directory) / "py.typed"
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_bytes(b"")
            included[str(marker)] = "contracts/py.typed"
