"""The AsyncAPI documents of the built services, committed under ``docs/asyncapi/``.

``.venv/bin/python -m stack.asyncapi`` writes ``docs/asyncapi/<service>.json`` for every
built service; ``--check`` writes nothing and exits 1 when a committed document is missing,
differs from what the code gives now, or belongs to no built service.

Each document is what ``faststream docs gen --factory services.<name>.app:create_app``
gives, made in-process, with two differences that keep a committed document meaningful:
the settings come from fixed placeholders only (no environment variable, ``.env`` or
secret can change a document: the NATS address shows in it, a NATS user would add a
security scheme), and the title and version name the service and the project instead of
faststream's defaults. The JSON has sorted keys and a fixed layout, so the same code always
gives the same bytes. ``tests/unit/test_asyncapi_compat.py`` compares the committed
documents with fresh ones (stack/asyncapi_compat.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from faststream import FastStream
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from services import registry

ROOT = Path(__file__).resolve().parent.parent
DIRECTORY = ROOT / "docs" / "asyncapi"
# Fills every setting a service requires (its token secrets, the social service's Page id
# and token): long enough for a TokenSecret, and plainly nobody's secret.
PLACEHOLDER = "asyncapi-document-placeholder-not-a-secret-0000000000"


def _attribute(target: str) -> Any:
    """``module:name`` of the registry (``ServiceEntry.settings_class``, ``app_factory``)."""
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _only_given(
    cls: type[BaseSettings],
    /,
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    **other_sources: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    # pydantic-settings passes the environment, .env and secrets sources by keyword: none used.
    return (init_settings,)


def settings_for(name: str) -> BaseSettings:
    """The service's settings from its defaults and the placeholders, nothing else."""
    declared: type[BaseSettings] = _attribute(registry.entry(name).settings_class)
    # A subclass, so that isinstance checks in create_app still hold.
    offline = type(
        f"Documented{declared.__name__}",
        (declared,),
        {"settings_customise_sources": classmethod(_only_given)},
    )
    required = {
        key: PLACEHOLDER for key, field in declared.model_fields.items() if field.is_required()
    }
    settings: BaseSettings = offline(**required)
    return settings


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def document(name: str) -> dict[str, Any]:
    """The AsyncAPI document of one built service, as JSON-able data."""
    factory: Callable[[BaseSettings], FastStream] = _attribute(registry.entry(name).app_factory)
    app = factory(settings_for(name))
    schema = app.schema
    schema.title = f"samskab {name}"
    schema.version = project_version()
    doc: dict[str, Any] = schema.to_specification().to_jsonable()
    return doc


def render(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """Every built service's document, rendered, by service name."""
    return {name: render(document(name)) for name in registry.built()}


def stale(directory: Path, fresh: Mapping[str, str]) -> list[str]:
    """What is wrong with the committed documents in ``directory`` (empty: nothing)."""
    problems = []
    for name, text in fresh.items():
        path = directory / f"{name}.json"
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from what the code gives")
    for path in sorted(directory.glob("*.json")):
        if path.stem not in fresh:
            problems.append(f"{path}: no built service {path.stem!r}")
    return problems


def write(directory: Path, fresh: Mapping[str, str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in fresh.items():
        path = directory / f"{name}.json"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack.asyncapi", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a document is stale"
    )
    parser.add_argument("--directory", type=Path, default=DIRECTORY, help="default: %(default)s")
    args = parser.parse_args(argv)
    fresh = generate()
    if args.check:
        problems = stale(args.directory, fresh)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("regenerate with: .venv/bin/python -m stack.asyncapi", file=sys.stderr)
            return 1
        return 0
    for path in write(args.directory, fresh):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
