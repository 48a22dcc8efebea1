"""``contracts/`` stands alone: it imports nothing of the services, and it builds, offline,
into the wheel samskab-contracts (packages/samskab-contracts) that other internal services
install to speak to ours."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
PACKAGE = ROOT / "packages" / "samskab-contracts"
MODULES = sorted(CONTRACTS.glob("*.py"))
# Third-party modules contracts/ may import, and the distribution that brings each.
# pydantic_core comes with pydantic, which pins it.
THIRD_PARTY = {
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "email_validator": "email-validator",
}
# Imported by nobody, but zoneinfo needs it for Europe/Copenhagen (contracts/events.py)
# where the OS has no time zone database.
DATA_ONLY = {"tzdata"}
# The rest of the repository: none of it may be loaded by importing the contracts.
FIRST_PARTY = {"services", "web", "cli", "stack", "tests", "bench"}


def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hatch_build", PACKAGE / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def imported_roots(path: Path) -> set[str]:
    """The top-level names a module imports, anywhere in it (local imports too)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            # A relative import stays inside contracts/.
            roots.add("contracts" if node.level else (node.module or "").split(".")[0])
    return roots


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_contracts_import_only_the_standard_library_pydantic_and_themselves(path: Path) -> None:
    allowed = set(sys.stdlib_module_names) | set(THIRD_PARTY) | {"__future__", "contracts"}
    assert imported_roots(path) - allowed == set()


def test_the_package_depends_on_exactly_what_contracts_import() -> None:
    used = set().union(*(imported_roots(path) for path in MODULES)) & set(THIRD_PARTY)
    assert {THIRD_PARTY[name] for name in used} | DATA_ONLY == set(hooks().DEPENDENCIES)


def wheel(directory: Path, source: Path = PACKAGE) -> Path:
    """Built as an integrator would, by pip, and without an index: it must not need one
    (hatchling comes with samskab's dev extras)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "-q",
            "-w",
            str(directory),
            str(source),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    (built,) = directory.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_the_contracts_and_nothing_else(built_wheel: Path) -> None:
    with zipfile.ZipFile(built_wheel) as archive:
        names = set(archive.namelist())
        metadata = Parser().parsestr(
            archive.read("samskab_contracts-0.1.0.dist-info/METADATA").decode()
        )
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]

    code = {name for name in names if not name.startswith("samskab_contracts-")}
    assert code == {f"contracts/{path.name}" for path in MODULES} | {"contracts/py.typed"}
    assert metadata["Name"] == "samskab-contracts"
    assert metadata["Version"] == project["version"]
    assert built_wheel.name == f"samskab_contracts-{project['version']}-py3-none-any.whl"
    assert metadata["Requires-Python"] == project["requires-python"]
    # The same pins as the project's, so both install side by side.
    assert set(metadata.get_all("Requires-Dist") or []) <= set(project["dependencies"])


def test_the_wheels_contracts_import_without_the_repository(
    built_wheel: Path, tmp_path: Path
) -> None:
    """Imported from the unpacked wheel, in a directory away from the repository: every
    module loads, and none of services/, web/, cli/, stack/ comes along."""
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(built_wheel) as archive:
        archive.extractall(unpacked)
    script = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(unpacked)!r})\n"
        f"for name in {[path.stem for path in MODULES]!r}:\n"
        "    importlib.import_module('contracts.' + name)\n"
        "print(json.dumps({'file': sys.modules['contracts'].__file__,\n"
        "                  'roots': sorted({m.split('.')[0] for m in sys.modules})}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    loaded = json.loads(result.stdout)
    assert Path(loaded["file"]).is_relative_to(unpacked)
    assert set(loaded["roots"]) & FIRST_PARTY == set()


def test_a_wheel_built_from_the_sdist_is_the_same(built_wheel: Path, tmp_path: Path) -> None:
    """``python -m build`` makes the wheel from the sdist: it carries all it needs, and the
    build is reproducible."""
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from hatchling.build import build_sdist; print(build_sdist(sys.argv[1]))",
            str(tmp_path),
        ],
        cwd=PACKAGE,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    name = made.stdout.strip().splitlines()[-1]
    with tarfile.open(tmp_path / name) as archive:
        archive.extractall(tmp_path / "sdist", filter="data")
    (source,) = (tmp_path / "sdist").iterdir()
    again = wheel(tmp_path / "again", source)
    assert again.name == built_wheel.name
    assert again.read_bytes() == built_wheel.read_bytes()
